package io.zenith.wal.log;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Fsync;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentName;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.jspecify.annotations.Nullable;

/**
 * The segment files of one {@link WalLog} directory: their names ({@code .partial} while being
 * written), the channels of the segments being written, their creation (preallocated, zero-filled,
 * fsynced), completion (the rename that drops {@code .partial}), deletion, zeroing of a torn tail,
 * and the recovery scan that finds where the WAL ends.
 *
 * <p>Not thread-safe: the methods that change files or channels run under the log's lock; {@link
 * #path}, {@link #existing} and {@link #onDisk} only look at the directory and may run on any
 * thread (a reader racing a completion finds one of the two names, or retries).
 */
final class SegmentFiles {
  /** The log's segments are named for timeline 1: the log keeps PostgreSQL's own layout. */
  private static final int TIMELINE = 1;

  private final Path dir;
  private final int segmentSize;
  private final SegmentAllocator allocator;

  /** Open segment channels by segment number; guarded by the log's lock. */
  private final TreeMap<Long, FileChannel> open = new TreeMap<>();

  /** Whether directory entries changed since the directory was last fsynced; guarded likewise. */
  private boolean dirDirty;

  /** What the recovery scan found: the end of the last complete record, and its start. */
  record ScanResult(Lsn end, Lsn prev) {}

  SegmentFiles(Path dir, int segmentSize, SegmentAllocator allocator) {
    this.dir = dir;
    this.segmentSize = segmentSize;
    this.allocator = allocator;
  }

  /** The file name of segment {@code seg} (without {@code .partial}). */
  String name(long seg) {
    return new WalSegmentName(TIMELINE, seg).fileName(segmentSize);
  }

  Path path(long seg, boolean partial) {
    return dir.resolve(name(seg) + (partial ? WalLog.PARTIAL : ""));
  }

  /** The file of segment {@code seg}, complete or partial, or null if there is none. */
  Path existing(long seg) {
    Path full = path(seg, false);
    if (Files.exists(full)) {
      return full;
    }
    Path partial = path(seg, true);
    return Files.exists(partial) ? partial : null;
  }

  /** Numbers of the segments in the directory, ascending. */
  List<Long> onDisk() {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString())
          .map(
              n ->
                  n.endsWith(WalLog.PARTIAL)
                      ? n.substring(0, n.length() - WalLog.PARTIAL.length())
                      : n)
          .map(n -> WalSegmentName.parse(n, segmentSize))
          .flatMap(Optional::stream)
          .map(WalSegmentName::segmentNumber)
          .distinct()
          .sorted()
          .toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The channel of a segment being written; created (preallocated, zero-filled, fsynced). */
  FileChannel channel(long seg) throws IOException {
    FileChannel ch = open.get(seg);
    if (ch != null && ch.isOpen()) {
      return ch;
    }
    // A channel an interrupt closed (an I/O thread cancelled mid-write) is opened again: the
    // file's bytes are what counts, and fsync works on the file, whatever the descriptor.
    open.remove(seg);
    Path partial = path(seg, true);
    Path full = path(seg, false);
    if (Files.exists(full) && !Files.exists(partial)) {
      // Rewriting a completed segment (after a truncation into it): make it partial again.
      Files.move(full, partial, StandardCopyOption.ATOMIC_MOVE);
      dirDirty = true;
    }
    if (!Files.exists(partial)) {
      Path tmp = dir.resolve(partial.getFileName() + DurableFiles.TEMP_SUFFIX);
      try (FileChannel t =
          FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        allocator.preallocate(t, tmp, segmentSize);
        Fsync.force(t, tmp);
      } catch (IOException e) {
        Files.deleteIfExists(tmp); // what was allocated goes back
        throw new IOException("cannot create WAL segment " + partial + ": " + e.getMessage(), e);
      }
      Files.move(tmp, partial, StandardCopyOption.ATOMIC_MOVE);
      changes++;
      dirDirty = true;
    }
    ch = FileChannel.open(partial, StandardOpenOption.READ, StandardOpenOption.WRITE);
    open.put(seg, ch);
    return ch;
  }

  /**
   * Fsyncs every segment being written (one an interrupt closed is opened again: {@link #channel}).
   */
  void forceOpen() throws IOException {
    for (Long seg : List.copyOf(open.keySet())) {
      Fsync.forceData(channel(seg), path(seg, true));
    }
  }

  /**
   * Segments being written that lie entirely before segment {@code current} are complete: closes
   * them and drops their {@code .partial} suffix (the directory is fsynced by {@link
   * #syncDirectoryIfChanged}).
   */
  void completeOpenBefore(long current) throws IOException {
    for (Iterator<Map.Entry<Long, FileChannel>> it = open.entrySet().iterator(); it.hasNext(); ) {
      var e = it.next();
      if (e.getKey() < current) {
        e.getValue().close();
        Path partial = path(e.getKey(), true);
        if (Files.exists(partial)) {
          Files.move(partial, path(e.getKey(), false), StandardCopyOption.ATOMIC_MOVE);
          dirDirty = true;
        }
        it.remove();
      }
    }
  }

  /** Fsyncs the directory if segments were created or renamed since it last was. */
  void syncDirectoryIfChanged() throws IOException {
    if (dirDirty) {
      Fsync.directory(dir);
      dirDirty = false;
    }
  }

  /** Deletes the segments after segment {@code seg}, closing those being written. */
  void deleteAfter(long seg) throws IOException {
    for (Long s : onDisk()) {
      if (s > seg) {
        FileChannel ch = open.remove(s);
        if (ch != null) {
          ch.close();
        }
        delete(s);
      }
    }
  }

  /**
   * Deletes the segments before segment {@code keepFrom} that are not being written, oldest first,
   * fsyncing the directory after each (so that a crash leaves a contiguous run of segments), and
   * never the last segment on disk. Stops at the first segment it must keep.
   */
  int deleteBefore(long keepFrom) throws IOException {
    List<Long> segs = onDisk();
    int removed = 0;
    for (int i = 0; i < segs.size() - 1; i++) {
      long s = segs.get(i);
      if (s >= keepFrom || open.containsKey(s)) {
        break;
      }
      delete(s);
      Fsync.directory(dir);
      removed++;
    }
    return removed;
  }

  /**
   * The number of the oldest segment on disk, if any. Cached: readers and upkeep ask for it often,
   * and every creation or deletion of a segment goes through this class, which counts them in
   * {@link #changes} after the file operation; a value found under an older count is found again.
   * May run on any thread.
   */
  OptionalLong oldest() {
    long v = changes;
    Oldest o = oldest;
    if (o == null || o.changes() != v) {
      List<Long> segs = onDisk();
      o = new Oldest(v, segs.isEmpty() ? OptionalLong.empty() : OptionalLong.of(segs.getFirst()));
      oldest = o;
    }
    return o.segment();
  }

  /** The oldest segment as found when {@link #changes} was {@code changes}. */
  private record Oldest(long changes, OptionalLong segment) {}

  private volatile @Nullable Oldest oldest;

  /** Segments created or deleted so far; written under the log's lock, after the file operation. */
  private volatile long changes;

  private void delete(long seg) throws IOException {
    Files.deleteIfExists(path(seg, false));
    Files.deleteIfExists(path(seg, true));
    changes++;
  }

  /** Segments the WAL continues past are complete: a crash may have left them {@code .partial}. */
  void completeBefore(Lsn end) throws IOException {
    long current = end.value() / segmentSize;
    boolean renamed = false;
    for (Long s : onDisk()) {
      Path partial = path(s, true);
      if (s < current && Files.exists(partial)) {
        Files.move(
            partial,
            path(s, false),
            StandardCopyOption.ATOMIC_MOVE,
            StandardCopyOption.REPLACE_EXISTING);
        renamed = true;
      }
    }
    if (renamed) {
      Fsync.directory(dir);
    }
  }

  /** Zeroes the bytes of {@code end}'s segment after it (a torn tail or truncated WAL). */
  void zeroAfter(Lsn end) throws IOException {
    long seg = end.value() / segmentSize;
    int off = (int) (end.value() % segmentSize);
    if (off == 0 || existing(seg) == null) {
      return;
    }
    FileChannel ch = channel(seg);
    writeZeros(ch, off, segmentSize);
    Fsync.forceData(ch, path(seg, true));
  }

  /** Writes zeros over [from, to) of {@code ch}, a MiB at a time. */
  static void writeZeros(FileChannel ch, long from, long to) throws IOException {
    ByteBuffer zeros = ByteBuffer.allocate(1 << 20);
    for (long p = from; p < to; ) {
      zeros.clear();
      zeros.limit((int) Math.min(zeros.capacity(), to - p));
      p += ch.write(zeros, p);
    }
  }

  /**
   * Makes the WAL found in [from, end) durable before it counts as flushed: a process killed after
   * writing and before its fsync leaves the bytes in the page cache, where the scan reads them, but
   * a power loss could still take them (PostgreSQL syncs its data directory after a crash for the
   * same reason). Clean files cost next to nothing to fsync.
   */
  void fsyncRange(Lsn from, Lsn end) throws IOException {
    for (long seg = from.value() / segmentSize; seg <= end.value() / segmentSize; seg++) {
      Path p = existing(seg);
      if (p != null) {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
          Fsync.force(ch, p);
        }
      }
    }
    Fsync.directory(dir);
  }

  /** Reads records from {@code from}; the end of the last complete one is the end of the WAL. */
  ScanResult scanEnd(Lsn from, long systemId) throws IOException {
    long seg = from.value() / segmentSize;
    if (existing(seg) == null) {
      return new ScanResult(from, Lsn.INVALID);
    }
    WalRecordAssembler a =
        new WalRecordAssembler(from, new WalRecordAssembler.Options(segmentSize, systemId, true));
    Lsn end = from;
    Lsn prev = Lsn.INVALID;
    long pos = from.value();
    try {
      outer:
      while (true) {
        Path p = existing(pos / segmentSize);
        if (p == null) {
          break;
        }
        byte[] rest;
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
          int off = (int) (pos % segmentSize);
          ByteBuffer b = ByteBuffer.allocate(segmentSize - off);
          while (b.hasRemaining() && ch.read(b, off + b.position()) >= 0) {
            // read the rest of the segment
          }
          rest = Arrays.copyOf(b.array(), b.position());
        }
        for (Iterator<WalRecord> it = a.feed(ByteBuffer.wrap(rest)); it.hasNext(); ) {
          WalRecord r = it.next();
          end = r.end();
          prev = r.lsn();
        }
        if (a.ended() || rest.length < segmentSize - (int) (pos % segmentSize)) {
          break outer;
        }
        pos += rest.length;
      }
    } catch (WalFormatException e) {
      // A torn or garbled tail: the WAL ends at the last complete record before it.
    }
    return new ScanResult(end, prev);
  }

  /** Closes the channels of the segments being written. */
  void closeAll() throws IOException {
    for (FileChannel ch : open.values()) {
      ch.close();
    }
    open.clear();
  }
}
