package io.zenith.wal.log;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Fsync;
import io.zenith.wal.FsyncFailedException;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentName;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;

/**
 * The Kafka-like log of one timeline: WAL bytes addressed by LSN, in PostgreSQL-format segment
 * files ({@code pg_wal} layout: {@code pg_waldump} reads the directory), appended at its end, made
 * durable in groups, readable from any LSN as a tailing stream.
 *
 * <pre>
 * &lt;dir&gt;/000000010000000000000003            a complete segment
 * &lt;dir&gt;/000000010000000000000004.partial    the segment being written (preallocated, zero-filled)
 * </pre>
 *
 * <p><b>Durability:</b> {@link #append} writes ("visible, durable after {@link #flush()}"); {@link
 * #flush()} fsyncs the touched segments (and their directory when a segment was created, completed
 * or renamed) and returns the new flush LSN. A segment is preallocated with zeros and fsynced
 * before its first append, so a crash never leaves stale bytes after the end of the WAL.
 *
 * <p><b>Recovery ({@link #open}):</b> the end of the WAL is the end of the last complete record
 * found by reading from {@code recoverFrom} (a record boundary known to be durable, e.g. the
 * control file's flush LSN minus nothing, or the start of the oldest segment); a torn record at the
 * tail is not WAL: its bytes are zeroed (so that the next append continues cleanly). What the scan
 * found is fsynced before it counts as flushed: a killed process's unsynced writes are in the page
 * cache, readable but not yet durable.
 *
 * <p>The files themselves (names, creation, completion, deletion, the recovery scan) are {@link
 * SegmentFiles}'; this class keeps the positions, the record tracking and the reads.
 *
 * <p>Thread-safety: one writer (append, flush, truncate) at a time, guarded by a lock; readers may
 * read concurrently up to the flush LSN.
 */
public final class WalLog implements AutoCloseable {
  public static final String PARTIAL = WalSegmentName.PARTIAL_SUFFIX;

  private final Path dir;
  private final int segmentSize;
  private final long systemId;
  private final ReentrantLock lock = new ReentrantLock();

  /** The segment files; what changes them is guarded by lock. */
  private final SegmentFiles files;

  /** Guarded by lock. Next byte to append (the write position). */
  private Lsn writeLsn;

  private volatile Lsn flushLsn;
  private volatile Lsn prevRecord = Lsn.INVALID;

  /**
   * Follows appended bytes to find where records end. Guarded by lock. A safekeeper acknowledges
   * only whole records, so the commit LSN it helps compute is always a record boundary.
   */
  private WalRecordAssembler tracker;

  /** End of the last complete record appended; guarded by lock. */
  private Lsn appendedRecordEnd;

  private volatile Lsn flushRecordEnd;
  private final Sinks.Many<Lsn> recordEnds = Sinks.many().replay().latest();
  private final Sinks.Many<Lsn> flushed = Sinks.many().replay().latest();

  private WalLog(Path dir, int segmentSize, long systemId, Lsn end, SegmentAllocator allocator) {
    this.dir = dir;
    this.files = new SegmentFiles(dir, segmentSize, allocator);
    this.segmentSize = segmentSize;
    this.systemId = systemId;
    resetTo(end);
  }

  /** Everything starts at a record boundary {@code end}: after open, creation or truncation. */
  private void resetTo(Lsn end) {
    writeLsn = end;
    flushLsn = end;
    flushed.tryEmitNext(end);
    tracker =
        new WalRecordAssembler(end, new WalRecordAssembler.Options(segmentSize, systemId, true));
    appendedRecordEnd = end;
    flushRecordEnd = end;
    recordEnds.tryEmitNext(end);
  }

  /**
   * Opens (or creates) the log in {@code dir}, finding the end of the WAL by reading records from
   * {@code recoverFrom}, which must be a record boundary the caller knows to be durable (for a new
   * log: where its WAL will start).
   */
  public static WalLog open(Path dir, int segmentSize, long systemId, Lsn recoverFrom)
      throws IOException {
    return open(dir, segmentSize, systemId, recoverFrom, SegmentAllocator.ZEROS);
  }

  /**
   * {@link #open(Path, int, long, Lsn)} with new segments getting their space from {@code
   * allocator} (tests simulate a full disk there).
   */
  public static WalLog open(
      Path dir, int segmentSize, long systemId, Lsn recoverFrom, SegmentAllocator allocator)
      throws IOException {
    if (!WalFormat.isValidSegmentSize(segmentSize)) {
      throw new IllegalArgumentException("invalid segment size " + segmentSize);
    }
    DurableFiles.createDirectories(dir);
    try (Stream<Path> s = Files.list(dir)) {
      for (Path p : s.toList()) {
        if (p.getFileName().toString().endsWith(DurableFiles.TEMP_SUFFIX)) {
          Files.delete(p);
        }
      }
    }
    WalLog log = new WalLog(dir, segmentSize, systemId, recoverFrom, allocator);
    SegmentFiles.ScanResult found = log.files.scanEnd(recoverFrom, systemId);
    Lsn end = found.end();
    log.prevRecord = found.prev();
    log.files.fsyncRange(recoverFrom, end);
    log.resetTo(end);
    log.zeroAfter(end);
    log.files.completeBefore(end);
    return log;
  }

  public Path dir() {
    return dir;
  }

  public int segmentSize() {
    return segmentSize;
  }

  /** End of the durable WAL (a record boundary after recovery; any byte position after appends). */
  public Lsn flushLsn() {
    return flushLsn;
  }

  /** Position of the next byte to append. */
  public Lsn writeLsn() {
    lock.lock();
    try {
      return writeLsn;
    } finally {
      lock.unlock();
    }
  }

  /** Start of the last complete record found by recovery, if known. */
  public Lsn prevRecordAtOpen() {
    return prevRecord;
  }

  /** Updates of the flush LSN, starting with the current one. */
  public Flux<Lsn> flushUpdates() {
    return flushed.asFlux();
  }

  /** End of the last complete record that is durable: what a safekeeper may acknowledge. */
  public Lsn flushRecordEnd() {
    return flushRecordEnd;
  }

  /** Updates of {@link #flushRecordEnd()}, starting with the current one. */
  public Flux<Lsn> flushRecordEndUpdates() {
    return recordEnds.asFlux();
  }

  // ---------------------------------------------------------------- writing

  /**
   * Appends WAL bytes that start exactly at the write position. Visible to readers after {@link
   * #flush()}; durable after {@link #flush()}. The bytes are checked as WAL (page headers, record
   * CRCs) on the way in.
   *
   * @throws IllegalArgumentException if {@code at} is not the write position
   * @throws MalformedWalException if the bytes are not valid WAL: nothing of them is appended and
   *     the log is cut back to the end of its last complete record (durably), where appending may
   *     start again
   * @throws IOException if writing fails (a segment that cannot be allocated: a full disk): the log
   *     is cut back to the end of the last complete record appended before this call, where
   *     appending may start again ({@link #writeLsn()})
   */
  public void append(Lsn at, ByteBuffer data) throws IOException {
    lock.lock();
    try {
      checkUsable();
      if (!at.equals(writeLsn)) {
        throw new IllegalArgumentException("append at " + at + ", but the log ends at " + writeLsn);
      }
      Lsn recordEndBefore = appendedRecordEnd;
      track(data.duplicate());
      ByteBuffer b = data.duplicate();
      long pos = at.value();
      try {
        while (b.hasRemaining()) {
          long seg = pos / segmentSize;
          int off = (int) (pos % segmentSize);
          int n = Math.min(b.remaining(), segmentSize - off);
          FileChannel ch = files.channel(seg);
          ByteBuffer part = b.slice(b.position(), n);
          long p = off;
          while (part.hasRemaining()) {
            p += ch.write(part, p);
          }
          b.position(b.position() + n);
          pos += n;
        }
      } catch (IOException e) {
        // The tracker has seen records that are not (all) written: go back to the last complete
        // record written before, so that nothing unwritten is ever reported as flushed. The
        // rewind only overwrites allocated space, so a full disk does not stop it; an interrupt
        // (ClosedByInterruptException: the writing thread was cancelled) is set aside for it.
        boolean interrupted = Thread.interrupted();
        try {
          truncateLocked(recordEndBefore);
        } catch (IOException t) {
          e.addSuppressed(t); // the log is unusable now (truncateLocked)
        } finally {
          if (interrupted) {
            Thread.currentThread().interrupt();
          }
        }
        throw e;
      }
      writeLsn = Lsn.of(pos);
    } catch (FsyncFailedException e) {
      throw fsyncFailed(e);
    } finally {
      lock.unlock();
    }
  }

  private void track(ByteBuffer b) throws IOException {
    String problem;
    try {
      while (tracker.step(b) != null) {
        // only the ends matter
      }
      if (!tracker.ended()) {
        appendedRecordEnd = tracker.lastRecordEnd();
        return;
      }
      problem = "the WAL ends (" + tracker.endReason().orElse("") + ")";
    } catch (WalFormatException e) {
      problem = e.getMessage();
    }
    Lsn at = writeLsn;
    Lsn keep = appendedRecordEnd;
    truncateLocked(keep);
    throw new MalformedWalException(
        "WAL appended at " + at + " is malformed, cut back to " + keep + ": " + problem);
  }

  /**
   * A write failed and so did cutting the log back to its last whole record: what the record
   * tracker saw is not what the files hold, so nothing more is appended or reported as flushed
   * until the log is opened again (which scans the files). Guarded by lock.
   */
  private IOException unusable;

  /**
   * An fsync failed: nothing is fsynced again (it could report success for lost data) and every
   * later write throws this same error. Guarded by lock.
   */
  private FsyncFailedException fsyncFailed;

  private FsyncFailedException fsyncFailed(FsyncFailedException e) {
    if (fsyncFailed == null) {
      fsyncFailed = e;
    }
    return e;
  }

  private void checkNoFsyncFailure() {
    if (fsyncFailed != null) {
      throw fsyncFailed;
    }
  }

  private void checkUsable() throws IOException {
    checkNoFsyncFailure();
    if (unusable != null) {
      throw new IOException(
          "the WAL log in " + dir + " must be opened again after a failed write", unusable);
    }
  }

  /** Bytes offered for appending that are not valid WAL. */
  public static final class MalformedWalException extends IOException {
    @java.io.Serial private static final long serialVersionUID = 1L;

    MalformedWalException(String message) {
      super(message);
    }
  }

  /**
   * Makes everything appended durable: fsyncs touched segments, completes segments the write
   * position has left (renaming {@code .partial}), fsyncs the directory if entries changed.
   *
   * @return the new flush LSN
   */
  public Lsn flush() throws IOException {
    lock.lock();
    try {
      checkUsable();
      long current = writeLsn.value() / segmentSize;
      files.forceOpen();
      // Segments entirely before the write position are complete: drop their .partial suffix.
      files.completeOpenBefore(current);
      files.syncDirectoryIfChanged();
      flushLsn = writeLsn;
      flushed.tryEmitNext(flushLsn);
      if (!appendedRecordEnd.equals(flushRecordEnd)) {
        flushRecordEnd = appendedRecordEnd;
        recordEnds.tryEmitNext(flushRecordEnd);
      }
      return flushLsn;
    } catch (FsyncFailedException e) {
      throw fsyncFailed(e);
    } finally {
      lock.unlock();
    }
  }

  /**
   * Discards WAL at and after {@code lsn} (a record boundary): zeroes the rest of its segment and
   * deletes later segments. Durable on return.
   */
  public void truncate(Lsn lsn) throws IOException {
    lock.lock();
    try {
      checkNoFsyncFailure();
      truncateLocked(lsn);
    } catch (FsyncFailedException e) {
      throw fsyncFailed(e);
    } finally {
      lock.unlock();
    }
  }

  /** Truncation; if it fails midway the files no longer match the log's state: unusable. */
  private void truncateLocked(Lsn lsn) throws IOException {
    try {
      files.deleteAfter(lsn.value() / segmentSize);
      files.zeroAfter(lsn);
      // Everything before lsn becomes the flush LSN: make what was written there durable too.
      files.forceOpen();
      Fsync.directory(dir);
      resetTo(lsn);
    } catch (IOException | RuntimeException e) {
      unusable = e instanceof IOException io ? io : new IOException(e);
      throw e;
    }
  }

  /**
   * Deletes whole segments that end at or before {@code horizon} (retention), oldest first, each
   * deletion durable (the directory fsynced) before the next: a crash midway leaves the log a
   * contiguous run of segments from a later one on, which {@link #open} takes as it is (the oldest
   * held LSN is the start of the oldest segment on disk). Never deletes the segment holding the end
   * of the durable WAL, a segment being written, or the last segment on disk, so the log always
   * knows where it starts once it holds WAL. The caller makes sure that the position it recovers
   * from at the next open ({@link #open}'s {@code recoverFrom}) is not in a deleted segment.
   *
   * @return how many segments were removed
   */
  public int removeSegmentsBefore(Lsn horizon) throws IOException {
    lock.lock();
    try {
      checkNoFsyncFailure();
      long keepFrom = Lsn.min(horizon, flushRecordEnd).value() / segmentSize;
      return files.deleteBefore(keepFrom);
    } catch (FsyncFailedException e) {
      throw fsyncFailed(e);
    } finally {
      lock.unlock();
    }
  }

  /** The oldest LSN still held (start of the oldest segment), if any. */
  public Optional<Lsn> oldestLsn() {
    OptionalLong seg = files.oldest();
    return seg.isEmpty() ? Optional.empty() : Optional.of(Lsn.of(seg.getAsLong() * segmentSize));
  }

  // ---------------------------------------------------------------- reading

  /**
   * The log's bytes from {@code from} up to {@code upTo} (exclusive, e.g. a commit LSN), as chunks
   * of at most {@code chunkSize}. Reads only flushed WAL. Blocking file reads: subscribe on a
   * scheduler that may block.
   */
  public Flux<ByteBuffer> read(Lsn from, Lsn upTo, int chunkSize) {
    return Flux.generate(
        () -> from.value(),
        (Long pos, reactor.core.publisher.SynchronousSink<ByteBuffer> sink) -> {
          long end = Lsn.min(upTo, flushLsn).value();
          if (pos >= end) {
            sink.complete();
            return pos;
          }
          long seg = pos / segmentSize;
          int off = (int) (pos % segmentSize);
          int n = (int) Math.min(Math.min(chunkSize, end - pos), segmentSize - off);
          ByteBuffer buf = ByteBuffer.allocate(n);
          Path p = files.existing(seg);
          if (p == null) {
            sink.error(
                new IOException(
                    "WAL segment "
                        + files.name(seg)
                        + " for "
                        + Lsn.of(pos)
                        + " is not in "
                        + dir));
            return pos;
          }
          try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
            while (buf.hasRemaining()) {
              if (ch.read(buf, off + buf.position()) < 0) {
                break;
              }
            }
          } catch (IOException e) {
            sink.error(e);
            return pos;
          }
          buf.flip();
          int len = buf.remaining(); // before the subscriber consumes it
          sink.next(buf);
          return pos + len;
        });
  }

  /**
   * Tailing read, level-triggered: the log's bytes from {@code from} on, as far as {@code limit}
   * allows (e.g. the minimum of the flush record end and the commit LSN), never beyond what is
   * flushed. The limit is read anew whenever {@code changes} signals, after the signal arrived; a
   * signal's value means nothing, it only says "look again". So signals may come from several
   * threads, may be conflated while the reader is busy (only one stays pending) or be spurious: as
   * long as whoever moves the limit signals after moving it, no WAL the limit allows stays unread.
   * Completes when {@code changes} does.
   *
   * <p>Why not values: a limit combined from two positions' update streams ({@code
   * Flux.combineLatest} over two sinks emitted on two threads, the reader requesting one at a time)
   * lost updates under load, and a tail that missed the last update of a quiet log never woke again
   * (issue 9: the safekeeper stopped sending with its commit LSN ahead).
   *
   * <p>Thread: reads run on whichever thread delivers a signal or a request; subscribe on, and
   * publish {@code changes} on, a scheduler that may block. Demand: one signal at a time is
   * requested, and only while no read is in progress; chunks are read as they are requested.
   */
  public Flux<ByteBuffer> tail(Lsn from, Supplier<Lsn> limit, Publisher<?> changes, int chunkSize) {
    return Flux.defer(
        () -> {
          long[] pos = {from.value()};
          return Flux.from(changes)
              .onBackpressureLatest()
              .concatMap(
                  change -> {
                    Lsn upTo = Lsn.min(limit.get(), flushLsn);
                    if (upTo.value() <= pos[0]) {
                      return Flux.empty();
                    }
                    return read(Lsn.of(pos[0]), upTo, chunkSize)
                        .doOnNext(b -> pos[0] += b.remaining());
                  },
                  0);
        });
  }

  // ------------------------------------------------------------- internals

  private void zeroAfter(Lsn end) throws IOException {
    lock.lock();
    try {
      files.zeroAfter(end);
    } finally {
      lock.unlock();
    }
  }

  @Override
  public void close() throws IOException {
    lock.lock();
    try {
      files.closeAll();
      flushed.tryEmitComplete();
      recordEnds.tryEmitComplete();
    } finally {
      lock.unlock();
    }
  }
}
