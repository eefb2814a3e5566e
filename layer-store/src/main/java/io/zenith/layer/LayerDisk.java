package io.zenith.layer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;

/**
 * Writes the bytes of new layer files: {@link #DIRECT} writes them to the file. This is where a
 * full disk shows for the layer store: a flush whose layer file cannot get its bytes fails before
 * anything is durable, leaves the store as it was, and is retried (see {@link
 * Timeline#flushOldestFrozen}).
 *
 * <p>The seam through which tests simulate a full disk ({@code
 * io.zenith.layer.testing.FullLayerDisk}): it is a parameter of {@link LayerStore#open(Path,
 * LayerStoreConfig, LayerDisk)}, not a switch production code reads. Implementations must be
 * thread-safe (timelines flush in parallel).
 */
@FunctionalInterface
public interface LayerDisk {

  /**
   * Writes all of {@code bytes} at the position of {@code file}, the temporary file of the layer
   * file {@code path}. A failure may leave part of the bytes written: the caller deletes the file.
   *
   * @throws IOException as the file system reports it ("No space left on device")
   */
  void append(FileChannel file, Path path, ByteBuffer bytes) throws IOException;

  /** Writes to the file. */
  LayerDisk DIRECT =
      (file, path, bytes) -> {
        while (bytes.hasRemaining()) {
          file.write(bytes);
        }
      };
}
