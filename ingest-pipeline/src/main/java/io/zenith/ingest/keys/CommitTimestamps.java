package io.zenith.ingest.keys;

import io.zenith.layer.TimelineView;
import io.zenith.layer.Value;
import io.zenith.layer.Version;
import io.zenith.wal.Lsn;
import java.time.Instant;
import java.util.Optional;

/**
 * Which LSN corresponds to a wall-clock time: the versions of {@link KeySpace#COMMIT_TIMESTAMP},
 * one at the end LSN of every commit record with the record's commit time as its value, searched by
 * LSN. Used by {@code lsn_by_timestamp}, branches and computes at a time, and GC's {@code
 * pitr_interval}.
 *
 * <p>A search reads only {@link TimelineView#newest} of one key: the newest commit at or below an
 * LSN, through the ancestors below a branch point, whatever the layers (in-memory, delta, image).
 * Each value is an image, so every version is a base and GC treats the key like any other: it keeps
 * the newest version at or below its cutoff and deletes the older ones. An image layer made at LSN
 * L holds the key at L with the time of the last commit at or below L; reading it there finds "a
 * commit at L", and that is still right for the search: the commits visible at L are the same.
 *
 * <p>Commit times in WAL are almost, but not strictly, increasing with the LSN: a backend takes its
 * commit time before it inserts its record, so concurrent commits can be a few microseconds out of
 * order, and a clock that steps back breaks the order for longer. The search assumes the order;
 * where it does not hold, the answer is one of the commits whose times straddle the time asked for.
 *
 * <p>Stateless, so thread-safe; reads are as thread-safe as the view.
 */
public final class CommitTimestamps {
  private CommitTimestamps() {}

  /** 2000-01-01 00:00:00 UTC, PostgreSQL's epoch, in Unix seconds. */
  static final long PG_EPOCH_UNIX_SECONDS = 946_684_800L;

  /** A commit: the end LSN of its record (or where an image layer recorded it) and its time. */
  public record Commit(Lsn lsn, long pgMicros) {
    public Instant time() {
      return toInstant(pgMicros);
    }
  }

  /** What a search for a time found. */
  public sealed interface Result {}

  /**
   * Exactly the commits at or before the time are visible at {@code lsn}: the end of the last such
   * commit, or the GC cutoff when that commit lies below it and no later commit comes before it.
   */
  public record Found(Lsn lsn, Commit commit) implements Result {}

  /**
   * The time is before the first commit of the timeline's history (its ancestors' included): its
   * state then is not known. {@code start} is the earliest LSN readable (the history's start, or
   * the GC cutoff if that is later); {@code firstCommit} the earliest commit there is.
   */
  public record BeforeStart(Lsn start, Commit firstCommit) implements Result {}

  /** The time is after the last commit ingested; no later commit is known. */
  public record AfterEnd(Commit lastCommit) implements Result {}

  /** The state at the time is below the GC cutoff: that history was collected. */
  public record BelowGcCutoff(Lsn cutoff) implements Result {}

  /** The timeline's history has no commit at all; {@code start} is where it starts. */
  public record NoCommits(Lsn start) implements Result {}

  /** The value of a commit-time version: a PostgreSQL {@code TimestampTz}, i64 big-endian. */
  public static Value encode(long pgMicros) {
    byte[] b = new byte[8];
    for (int i = 0; i < 8; i++) {
      b[i] = (byte) (pgMicros >>> (56 - 8 * i));
    }
    return new Value.Image(b);
  }

  /**
   * The commit time a version holds.
   *
   * @throws IllegalStateException if it is not an 8-byte image (a store from another schema)
   */
  public static long decode(Value v) {
    if (!(v instanceof Value.Image img) || img.bytes().length != 8) {
      throw new IllegalStateException("a commit-time version is an 8-byte image, got " + v);
    }
    long m = 0;
    for (byte x : img.bytes()) {
      m = m << 8 | (x & 0xFF);
    }
    return m;
  }

  /** Microseconds since PostgreSQL's epoch (rounded down), saturating at the long range. */
  public static long toPgMicros(Instant t) {
    long seconds = t.getEpochSecond() - PG_EPOCH_UNIX_SECONDS;
    try {
      return Math.addExact(Math.multiplyExact(seconds, 1_000_000L), t.getNano() / 1_000);
    } catch (ArithmeticException e) {
      return seconds < 0 ? Long.MIN_VALUE : Long.MAX_VALUE;
    }
  }

  public static Instant toInstant(long pgMicros) {
    return Instant.ofEpochSecond(
        PG_EPOCH_UNIX_SECONDS + Math.floorDiv(pgMicros, 1_000_000L),
        Math.floorMod(pgMicros, 1_000_000L) * 1_000L);
  }

  /** The newest commit at or below {@code lsn}, through the ancestors. */
  public static Optional<Commit> newest(TimelineView t, Lsn lsn) {
    return t.newest(KeySpace.COMMIT_TIMESTAMP, lsn).map(CommitTimestamps::commit);
  }

  private static Commit commit(Version v) {
    return new Commit(v.lsn(), decode(v.value()));
  }

  /**
   * The last commit at or before {@code time} that the timeline still has, GC cutoff or not: what
   * GC's {@code pitr_interval} needs (the LSN of the last commit older than now − interval). Empty
   * if every commit is later, or there is none.
   */
  public static Optional<Commit> lastCommitAtOrBefore(TimelineView t, Instant time) {
    return search(t, toPgMicros(time)).found();
  }

  /**
   * The commit whose time is the start of the timeline's point-in-time window: the earliest time
   * whose state it can still show (branches, read-only computes and exports at a time). That is the
   * last commit at or below the GC cutoff (the state at the cutoff is the state after it), or the
   * first commit of the history when nothing was collected below it. Empty without commits.
   */
  public static Optional<Commit> pitrStart(TimelineView t) {
    return switch (lsnByTimestamp(t, Instant.MIN)) {
      case NoCommits n -> Optional.empty();
      case BeforeStart b -> Optional.of(b.firstCommit());
      case BelowGcCutoff c -> newest(t, c.cutoff());
      case Found f -> Optional.of(f.commit());
      case AfterEnd a -> Optional.of(a.lastCommit());
    };
  }

  /** Where the timeline's history shows the state at {@code time}, under its own GC cutoff. */
  public static Result lsnByTimestamp(TimelineView t, Instant time) {
    return lsnByTimestamp(t, time, t.metadata().gcCutoff());
  }

  /**
   * Where the timeline's history shows the state at {@code time}, if the timeline's GC cutoff were
   * {@code gcCutoff} (invalid: none). Below a branch point the ancestors' cutoffs apply too.
   */
  public static Result lsnByTimestamp(TimelineView t, Instant time, Lsn gcCutoff) {
    long target = toPgMicros(time);
    Search s = search(t, target);
    if (s.last().isEmpty()) {
      return new NoCommits(t.startLsn());
    }
    Commit last = s.last().get();
    if (last.pgMicros() < target) {
      return new AfterEnd(last);
    }
    Commit next = s.next();
    if (s.found().isEmpty()) {
      // The oldest commit GC keeps is the newest at or below its cutoff: older ones may be gone.
      Lsn cutoff = cutoffAt(t, gcCutoff, next.lsn());
      if (cutoff.isValid() && !next.lsn().isAfter(cutoff)) {
        return new BelowGcCutoff(cutoff);
      }
      return new BeforeStart(Lsn.max(t.startLsn(), cutoff), next);
    }
    Commit found = s.found().get();
    Lsn cutoff = cutoffAt(t, gcCutoff, found.lsn());
    if (!found.lsn().isBefore(cutoff)) {
      return new Found(found.lsn(), found);
    }
    // Between this commit and the next the same commits are visible: the cutoff may lie there.
    if (next == null || next.lsn().isAfter(cutoff)) {
      Lsn at = cutoffAt(t, gcCutoff, cutoff);
      if (!cutoff.isBefore(at)) {
        return new Found(cutoff, found);
      }
      cutoff = at;
    }
    return new BelowGcCutoff(cutoff);
  }

  /**
   * The GC cutoff that applies to reading {@code lsn} on {@code t}: its own, and below a branch
   * point its ancestor's (which keeps only what its children need at their branch points).
   */
  static Lsn cutoffAt(TimelineView t, Lsn own, Lsn lsn) {
    Lsn cutoff = own;
    TimelineView v = t;
    while (v.ancestor().isPresent() && lsn.isBefore(v.metadata().ancestorLsn())) {
      v = v.ancestor().get();
      cutoff = Lsn.max(cutoff, v.metadata().gcCutoff());
    }
    return cutoff;
  }

  /**
   * A search's outcome: the last commit of all, the last commit at or before the time, and the
   * first commit after that one (null when there is none).
   */
  private record Search(Optional<Commit> last, Optional<Commit> found, Commit next) {}

  /**
   * Binary search over LSNs for the last commit at or before {@code target}: each probe is one
   * {@link TimelineView#newest} read, at most about 64 of them (fewer for a short history).
   */
  private static Search search(TimelineView t, long target) {
    Optional<Commit> last = newest(t, t.lastRecordLsn());
    if (last.isEmpty()) {
      return new Search(last, Optional.empty(), null);
    }
    if (last.get().pgMicros() <= target) {
      return new Search(last, last, null);
    }
    // Invariant: the newest commit at or below lo (if any) is at or before the target; hi is a
    // commit after it, and no commit lies between lo and hi.lsn that is at or before the target.
    // The search starts at the timeline's GC cutoff: reads below it are refused, and what GC kept
    // of the commits below it is the newest one at or below it.
    long lo = 0;
    Commit hi = last.get();
    Optional<Commit> found = Optional.empty();
    Lsn floor = t.gcCutoff();
    if (floor.isValid()) {
      Optional<Commit> atFloor = newest(t, floor);
      if (atFloor.isPresent() && atFloor.get().pgMicros() > target) {
        return new Search(last, Optional.empty(), atFloor.get());
      }
      lo = floor.value();
      found = atFloor;
    }
    while (Long.compareUnsigned(hi.lsn().value() - lo, 1) > 0) {
      long mid = lo + Long.divideUnsigned(hi.lsn().value() - lo, 2);
      Optional<Commit> c = newest(t, Lsn.of(mid));
      if (c.isEmpty() || c.get().pgMicros() <= target) {
        lo = mid;
        found = c;
      } else {
        hi = c.get();
      }
    }
    return new Search(last, found, hi);
  }
}
