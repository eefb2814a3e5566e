package io.zenith.wal.testing;

import io.zenith.wal.log.SegmentAllocator;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;

/**
 * A disk with a settable amount of free space, for WAL logs ({@link SegmentAllocator}): segment
 * preallocation takes from it and, when it runs out, has written what fitted and fails as Linux
 * does ({@code IOException("No space left on device")}). Space given back by deleted files is not
 * counted: {@link #setFree} is the test's "space is back". Thread-safe.
 */
public final class FullDisk implements SegmentAllocator {
  public static final String ENOSPC = FreeSpace.ENOSPC;

  private final FreeSpace free;

  private FullDisk(long free) {
    this.free = new FreeSpace(free);
  }

  /** A disk with {@code bytes} free. */
  public static FullDisk withFree(long bytes) {
    return new FullDisk(bytes);
  }

  /** A disk with (practically) unlimited space, until {@link #setFree} says otherwise. */
  public static FullDisk unlimited() {
    return new FullDisk(Long.MAX_VALUE);
  }

  public void setFree(long bytes) {
    free.set(bytes);
  }

  /** How many preallocations failed for lack of space. */
  public long refusals() {
    return free.refusals();
  }

  @Override
  public void preallocate(FileChannel file, Path path, long size) throws IOException {
    long granted = free.take(size);
    SegmentAllocator.ZEROS.preallocate(file, path, granted);
    if (granted < size) {
      throw free.refuse();
    }
  }
}
