package io.zenith.wal.log;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;

/**
 * Gives a new WAL segment file its space before its first byte of WAL: {@link #ZEROS} writes the
 * whole segment with zeros, as PostgreSQL preallocates {@code pg_wal} segments. This is where a
 * full disk shows: appends go into space allocated here (overwriting allocated blocks needs no new
 * space), so a log that cannot get a segment stops before it would need one.
 *
 * <p>The seam through which tests simulate a full disk ({@code io.zenith.wal.testing.FullDisk}): it
 * is a parameter of {@link WalLog#open(Path, int, long, io.zenith.wal.Lsn, SegmentAllocator)}, not
 * a switch production code reads. Implementations must be thread-safe (logs of several timelines
 * share one).
 */
@FunctionalInterface
public interface SegmentAllocator {

  /**
   * Fills {@code file} (newly created at {@code path}, empty) with {@code size} bytes; the caller
   * fsyncs it. A failure may leave part of the bytes written: the caller deletes the file.
   *
   * @throws IOException as the file system reports it ("No space left on device")
   */
  void preallocate(FileChannel file, Path path, long size) throws IOException;

  /** Writes zeros, a MiB at a time. */
  SegmentAllocator ZEROS = (file, path, size) -> SegmentFiles.writeZeros(file, 0, size);
}
