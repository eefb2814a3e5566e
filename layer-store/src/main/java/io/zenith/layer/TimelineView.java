package io.zenith.layer;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import reactor.core.publisher.Mono;

/**
 * What readers of a timeline may do: look at its positions and state, wait for an LSN, and read
 * versions at an LSN (through its ancestors below the branch point). Page serving, basebackups and
 * the management APIs take this view; only ingest takes the {@link TimelineWriter}.
 *
 * <p>Thread-safe: any number of threads read concurrently with the ingest thread. A reader sees the
 * versions of every record up to {@link #lastRecordLsn()}; in-memory layers cover LSNs above the
 * index's, so nothing is read twice.
 */
public interface TimelineView {
  TenantId tenant();

  TimelineId id();

  TimelineMetadata metadata();

  /** The timeline this one branched from, if any. */
  Optional<? extends TimelineView> ancestor();

  /** The lowest LSN readable on this timeline: where the history of its root starts. */
  Lsn startLsn();

  /** The last ingested record: its end, and its start. */
  Timeline.RecordPosition position();

  /** End of the last ingested record: everything up to it is readable. */
  Lsn lastRecordLsn();

  /** Everything up to this LSN is in layer files (durable). */
  Lsn diskConsistentLsn();

  /** Everything up to this LSN is in remote storage. */
  Lsn remoteConsistentLsn();

  /** Reads below this LSN are refused: GC may have removed what they need. INVALID: none yet. */
  Lsn gcCutoff();

  /** Why the timeline cannot be used, if it cannot (a corrupt file found on start). */
  Optional<String> brokenReason();

  /**
   * Why flushing this timeline's layers fails, while it does (the cause of the last failure, such
   * as "No space left on device"); empty once a flush works again.
   */
  Optional<String> flushFailure();

  /**
   * Completes once the last record LSN reaches {@code lsn}; fails with LSN_TIMEOUT after {@code
   * timeout}.
   */
  Mono<Void> waitForLsn(Lsn lsn, Duration timeout);

  /**
   * The versions of {@code key} that matter at {@code lsn}, newest first: every version at or below
   * {@code lsn} down to and including the newest base (image, will-init record or tombstone),
   * following the timeline into its ancestors below the branch point. If no base exists the list
   * ends with the oldest version there is (reconstruction starts from a zero page). Empty if the
   * key has no version at or below {@code lsn}.
   */
  List<Version> history(Key key, Lsn lsn);

  /** The newest version at or below {@code lsn}, unless it is a tombstone. */
  Optional<Version> newest(Key key, Lsn lsn);

  /**
   * The smallest key {@code k}, {@code from <= k < end}, that exists at {@code lsn} (its newest
   * version at or below {@code lsn} is not a tombstone), across this timeline and its ancestors.
   */
  Optional<Key> nextKey(Key from, Key end, Lsn lsn);
}
