package io.zenith.layer.testing;

import io.zenith.layer.LayerDisk;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.time.Duration;

/**
 * A slow disk for layer files ({@link LayerDisk}): each layer file's first write waits for a
 * settable delay, so that every flush of a frozen layer takes at least that long (the backpressure
 * scenario: ingest outruns the flushes). {@link Duration#ZERO} (the default) makes it a direct
 * disk. Flushes of layers without versions write no file and are not slowed. Thread-safe.
 */
public final class SlowLayerDisk implements LayerDisk {
  private volatile Duration delay = Duration.ZERO;

  /** Slows each later layer file down by {@code delay}; zero turns it off. */
  public void setDelay(Duration delay) {
    this.delay = delay;
  }

  @Override
  public void append(FileChannel file, Path path, ByteBuffer bytes) throws IOException {
    Duration d = delay;
    if (!d.isZero() && file.position() == 0) {
      try {
        Thread.sleep(d);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new InterruptedIOException("slow layer disk interrupted");
      }
    }
    LayerDisk.DIRECT.append(file, path, bytes);
  }
}
