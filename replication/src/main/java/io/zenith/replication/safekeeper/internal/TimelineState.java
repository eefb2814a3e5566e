package io.zenith.replication.safekeeper.internal;

import io.zenith.replication.safekeeper.SafekeeperConfig;
import io.zenith.replication.safekeeper.SafekeeperException;
import io.zenith.replication.safekeeper.SafekeeperException.Kind;
import io.zenith.replication.safekeeper.TimelineStatus;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import io.zenith.wal.log.ControlFile.TermEntry;
import io.zenith.wal.log.WalLog;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;

/**
 * What every part of one safekeeper timeline shares (consensus, intake, serving, upkeep): its WAL
 * log, its durable control file, what its peers said, the commit LSN and the pageserver's
 * positions, and the lock that serializes changes of the control file. The parts are separate
 * classes with one job each; this is the state they agree on, and the rules that only read it
 * (which WAL a history labels, what may be acknowledged, how far readers may go).
 *
 * <p>Thread-safety: thread-safe. The control file is replaced only under {@link #lock()} (after it
 * was written, {@link #persist}); readers see it through a volatile field without the lock. The
 * commit LSN and the pageserver's positions only grow, each under this object's monitor (a
 * different lock from {@link #lock()}, as before the split: gossip and flushes update them without
 * waiting for a control-file write). The commit LSN is set before its update is emitted, so a
 * reader woken by {@link #commitUpdates()} reads it itself (level-triggered wake-ups).
 */
public final class TimelineState {
  private final SafekeeperConfig config;
  private final Path dir;
  private final WalLog wal;
  private final ReentrantLock lock = new ReentrantLock();

  /** The durable state; replaced (under lock) only after it was written. */
  private volatile ControlFile control;

  private final Map<Integer, TimelineStatus> peers = new ConcurrentHashMap<>();

  /** When each peer's status of this timeline last arrived ({@link System#nanoTime}), by id. */
  private final Map<Integer, Long> peerHeardNanos = new ConcurrentHashMap<>();

  /** The end of the WAL known to be in remote storage (ours or a peer's upload); only grows. */
  private volatile Lsn backupLsn;

  private volatile Lsn commitLsn;
  private final Sinks.Many<Lsn> commits = Sinks.many().replay().latest();
  private volatile PageserverFeedback pageserver;
  private volatile boolean closed;

  public TimelineState(SafekeeperConfig config, Path dir, ControlFile control, WalLog wal) {
    this.config = config;
    this.dir = dir;
    this.control = control;
    this.wal = wal;
    this.commitLsn = control.positions().commitLsn();
    this.pageserver = control.pageserver();
    this.backupLsn = control.positions().backupLsn();
    commits.tryEmitNext(commitLsn);
  }

  public SafekeeperConfig config() {
    return config;
  }

  public Path dir() {
    return dir;
  }

  public WalLog wal() {
    return wal;
  }

  /** Serializes changes of the control file and appends to the log. */
  public ReentrantLock lock() {
    return lock;
  }

  /** The control file as last written. */
  public ControlFile control() {
    return control;
  }

  public Identity identity() {
    return control.identity();
  }

  /** Writes {@code next} durably, then makes it current. Call with the lock held. */
  public void persist(ControlFile next) throws IOException {
    next.write(dir);
    control = next;
  }

  public boolean closed() {
    return closed;
  }

  /** Marks the timeline closed: changes are refused from now on. Call with the lock held. */
  public void markClosed() {
    closed = true;
  }

  public void checkOpen() {
    if (closed) {
      throw new SafekeeperException(Kind.CLOSED, "timeline " + this + " is closed");
    }
  }

  // ------------------------------------------------------------------ histories

  /** History entries that label WAL held (start at or below {@code end}). */
  public static List<TermEntry> upTo(List<TermEntry> history, Lsn end) {
    int n = 0;
    while (n < history.size() && !history.get(n).start().isAfter(end)) {
      n++;
    }
    return history.subList(0, n);
  }

  /** The term of the last history entry that labels WAL held (0 before any). */
  public long lastLogTerm(ControlFile c) {
    List<TermEntry> h = upTo(c.history(), wal.flushRecordEnd());
    return h.isEmpty() ? 0 : h.getLast().term();
  }

  // ------------------------------------------------------------------ positions

  /**
   * How far pageservers and standbys can read now: the commit LSN, capped by the local flush record
   * end (ADR 0003: a safekeeper may learn a commit LSN beyond its own WAL from a peer).
   */
  public Lsn servableLsn() {
    return Lsn.min(commitLsn, wal.flushRecordEnd());
  }

  /** The first LSN this log still holds (segments below it were removed, or it starts there). */
  public Lsn oldestLsn() {
    Lsn start = identity().startLsn();
    return Lsn.max(start, wal.oldestLsn().orElse(start));
  }

  /**
   * Bytes of WAL segment files retention removed: from the segment of the timeline's start LSN up
   * to the oldest held. Derived from the files (they are what is durable), so it survives restarts.
   */
  public long removedBytes() {
    int seg = identity().segmentSize();
    long first = identity().startLsn().value() / seg;
    long oldest = oldestLsn().value() / seg;
    return Math.max(0, oldest - first) * seg;
  }

  public Lsn commitLsn() {
    return commitLsn;
  }

  /** The commit LSN, then every change of it (emitted after it is set). */
  public Flux<Lsn> commitUpdates() {
    return commits.asFlux();
  }

  /** Ends {@link #commitUpdates()} (the timeline closed). */
  public void completeCommitUpdates() {
    commits.tryEmitComplete();
  }

  /** The flush LSN held back by the lag limits against the pageserver's positions. */
  public Lsn ackLsn() {
    return control.lagLimits().ackLimit(wal.flushRecordEnd(), pageserver);
  }

  public PageserverFeedback pageserver() {
    return pageserver;
  }

  /** Takes the highest of each position; returns whether anything moved. */
  public boolean mergePageserver(PageserverFeedback f) {
    PageserverFeedback before = pageserver;
    PageserverFeedback after;
    synchronized (this) {
      after = pageserver.max(f);
      pageserver = after;
    }
    return !after.equals(before);
  }

  /** The end of the WAL known to be in remote storage (0/0 before the first upload). */
  public Lsn backupLsn() {
    return backupLsn;
  }

  /** Raises the backup LSN (an upload here, or a peer's status); returns whether it moved. */
  public synchronized boolean mergeBackupLsn(Lsn lsn) {
    if (lsn.isAfter(backupLsn)) {
      backupLsn = lsn;
      return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ peers

  /** The latest status each peer reported about this timeline (gossip), by safekeeper id: live. */
  public Map<Integer, TimelineStatus> peers() {
    return peers;
  }

  /** Records that peer {@code id}'s status of this timeline arrived now (for liveness). */
  public void heardFrom(int id) {
    peerHeardNanos.put(id, System.nanoTime());
  }

  /**
   * The members heard from within {@code window} (this safekeeper always counts), sorted: the
   * candidates to upload this timeline's WAL (ADR 0025).
   */
  public List<Integer> liveMembers(java.time.Duration window) {
    long now = System.nanoTime();
    List<Integer> live = new ArrayList<>();
    live.add(config.id());
    peerHeardNanos.forEach(
        (id, at) -> {
          if (now - at <= window.toNanos() && id != config.id()) {
            live.add(id);
          }
        });
    live.sort(Comparator.naturalOrder());
    return live;
  }

  /**
   * Raises the commit LSN to the quorum-th highest flush LSN among the safekeepers whose last
   * history entry is this one's, or to what such a peer knows of the quorum.
   */
  public synchronized void recomputeCommit() {
    ControlFile c = control;
    Lsn flush = wal.flushRecordEnd();
    List<TermEntry> mine = upTo(c.history(), flush);
    if (mine.isEmpty()) {
      return;
    }
    TermEntry last = mine.getLast();
    List<Lsn> flushes = new ArrayList<>();
    flushes.add(flush);
    Lsn best = commitLsn;
    for (TimelineStatus p : peers.values()) {
      if (last.equals(p.lastEntry())) {
        flushes.add(p.flushLsn());
        // A peer in the same term may know more of the quorum than this one.
        best = Lsn.max(best, p.commitLsn());
      }
    }
    if (flushes.size() >= config.quorum()) {
      flushes.sort(Comparator.reverseOrder());
      best = Lsn.max(best, flushes.get(config.quorum() - 1));
    }
    if (best.isAfter(commitLsn)) {
      commitLsn = best;
      commits.tryEmitNext(best);
    }
  }

  /** As log lines name the timeline: {@code sk<id> <tenant>/<timeline>}. */
  @Override
  public String toString() {
    Identity id = control.identity();
    return "sk" + config.id() + " " + id.tenant() + "/" + id.timeline();
  }
}
