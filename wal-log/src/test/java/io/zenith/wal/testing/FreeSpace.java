package io.zenith.wal.testing;

import java.io.IOException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The free space of a simulated disk, shared by the full-disk seams of the WAL log ({@link
 * FullDisk}) and the layer store ({@code io.zenith.layer.testing.FullLayerDisk}): writes take from
 * it, and a write that finds too little has put what fitted and fails as Linux does. Space given
 * back by deleted files is not counted: {@link #set} is the test's "space is back". Thread-safe.
 */
public final class FreeSpace {
  /** The message of Linux's {@code ENOSPC}. */
  public static final String ENOSPC = "No space left on device";

  private final AtomicLong free;
  private final AtomicLong refusals = new AtomicLong();

  public FreeSpace(long bytes) {
    this.free = new AtomicLong(bytes);
  }

  public void set(long bytes) {
    free.set(bytes);
  }

  /** How many writes failed for lack of space. */
  public long refusals() {
    return refusals.get();
  }

  /** Takes up to {@code size} bytes; returns how many were granted. */
  public long take(long size) {
    while (true) {
      long f = free.get();
      long granted = Math.min(f, size);
      if (free.compareAndSet(f, f - granted)) {
        return granted;
      }
    }
  }

  /** Counts a refused write; returns the exception to throw for it. */
  public IOException refuse() {
    refusals.incrementAndGet();
    return new IOException(ENOSPC);
  }
}
