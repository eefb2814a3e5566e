package io.zenith.layer.testing;

import io.zenith.layer.LayerDisk;
import io.zenith.wal.testing.FreeSpace;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;

/**
 * A disk with a settable amount of free space, for layer files ({@link LayerDisk}): the bytes of a
 * layer file take from it and, when it runs out, the write has put what fitted and fails as Linux
 * does ({@code IOException("No space left on device")}). Space given back by deleted files is not
 * counted: {@link #setFree} is the test's "space is back". Thread-safe.
 */
public final class FullLayerDisk implements LayerDisk {
  public static final String ENOSPC = FreeSpace.ENOSPC;

  private final FreeSpace free;

  private FullLayerDisk(long free) {
    this.free = new FreeSpace(free);
  }

  /** A disk with {@code bytes} free. */
  public static FullLayerDisk withFree(long bytes) {
    return new FullLayerDisk(bytes);
  }

  /** A disk with (practically) unlimited space, until {@link #setFree} says otherwise. */
  public static FullLayerDisk unlimited() {
    return new FullLayerDisk(Long.MAX_VALUE);
  }

  public void setFree(long bytes) {
    free.set(bytes);
  }

  /** How many writes failed for lack of space. */
  public long refusals() {
    return free.refusals();
  }

  @Override
  public void append(FileChannel file, Path path, ByteBuffer bytes) throws IOException {
    int want = bytes.remaining();
    int granted = (int) free.take(want);
    ByteBuffer part = bytes.slice(bytes.position(), granted);
    LayerDisk.DIRECT.append(file, path, part);
    bytes.position(bytes.position() + granted);
    if (granted < want) {
      throw free.refuse();
    }
  }
}
