package io.zenith.replication.safekeeper.internal.upkeep;

import io.zenith.replication.safekeeper.TimelineStatus;
import io.zenith.replication.safekeeper.internal.TimelineState;
import io.zenith.replication.safekeeper.internal.consensus.TimelineConsensus;
import io.zenith.replication.safekeeper.internal.intake.TimelineIntake;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import io.zenith.wal.log.ControlFile.Positions;
import java.io.IOException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A timeline's upkeep: what it does on its own, every few hundred milliseconds ({@link #maintain}):
 * joins the current term by catching up from the most advanced peer (through {@link
 * TimelineConsensus#adopt}), follows what peers know of the compute (through {@link
 * TimelineIntake}), writes the positions that bound recovery work to the control file (at most
 * every {@link #PERSIST_EVERY}) and removes WAL segments nobody needs any more (retention below the
 * commit LSN, the pageserver's durable position and every peer's flush LSN: ADR 0007; and the
 * backup LSN with WAL offload: ADR 0025).
 *
 * <p>Thread-safety: thread-safe; {@link #maintain} blocks (adoptions copy WAL) and is called by one
 * upkeep thread at a time (the safekeeper's upkeep scheduler); writing positions holds the
 * timeline's lock.
 */
public final class TimelineUpkeep {
  private static final Logger log = LoggerFactory.getLogger(TimelineUpkeep.class);

  /** How often positions that only bound recovery work are written to the control file. */
  private static final Duration PERSIST_EVERY = Duration.ofSeconds(1);

  private final TimelineState state;
  private final TimelineConsensus consensus;
  private final TimelineIntake intake;

  /** When positions were last written; read and written under the timeline's lock. */
  private long persistedAtNanos = System.nanoTime();

  public TimelineUpkeep(TimelineState state, TimelineConsensus consensus, TimelineIntake intake) {
    this.state = state;
    this.consensus = consensus;
    this.intake = intake;
  }

  /**
   * Periodic upkeep (every few hundred milliseconds, on a thread that may block): writes positions
   * that bound recovery work, joins the current term by catching up from the most advanced peer,
   * learns the current term's compute from peers (and that a compute has stopped).
   */
  public void maintain() {
    if (state.closed()) {
      return;
    }
    // Each step on its own: a peer that cannot serve WAL must not keep this safekeeper from
    // learning its compute (which can serve the same WAL) or from persisting its positions.
    upkeepStep("catching up from peers", this::catchUpFromPeers);
    upkeepStep("learning the compute", this::learnCompute);
    upkeepStep("persisting positions", this::persistPositionsIfDue);
    upkeepStep("removing old segments", this::removeOldSegments);
  }

  private interface UpkeepStep {
    void run() throws IOException;
  }

  /** Problems of upkeep steps, by step: a problem is logged at WARN when it changes. */
  private final Map<String, String> upkeepProblems = new ConcurrentHashMap<>();

  private void upkeepStep(String what, UpkeepStep step) {
    try {
      step.run();
      if (upkeepProblems.remove(what) != null) {
        log.info("{}: {} works again", state, what);
      }
    } catch (IOException | RuntimeException e) {
      String problem = String.valueOf(e.getMessage()).replaceAll("\\b[cs][0-9]+ ", "");
      if (!problem.equals(upkeepProblems.put(what, problem))) {
        log.warn("{}: {} failed: {}", state, what, e.getMessage());
      } else {
        log.debug("{}: {} failed: {}", state, what, e.getMessage());
      }
    }
  }

  private void catchUpFromPeers() throws IOException {
    ControlFile c = state.control();
    Lsn flush = state.wal().flushRecordEnd();
    long myLastTerm = state.lastLogTerm(c);
    // A safekeeper that reaches its compute gets the WAL from there.
    boolean streaming = intake.streaming();
    TimelineStatus donor = null;
    for (TimelineStatus p : state.peers().values()) {
      if (p.lastLogTerm() < c.promisedTerm() || p.lastLogTerm() < myLastTerm) {
        continue; // an older term's WAL: elections, not recovery, deal with it
      }
      boolean newerTerm = p.lastLogTerm() > myLastTerm;
      boolean sameTermAhead =
          !streaming && p.lastLogTerm() == myLastTerm && p.flushLsn().isAfter(flush);
      if ((newerTerm || sameTermAhead)
          && (donor == null
              || p.lastLogTerm() > donor.lastLogTerm()
              || p.lastLogTerm() == donor.lastLogTerm()
                  && p.flushLsn().isAfter(donor.flushLsn()))) {
        donor = p;
      }
    }
    if (donor != null) {
      log.info(
          "{}: catching up from safekeeper {} (term {} up to {}; here term {} up to {})",
          state,
          donor.safekeeperId(),
          donor.lastLogTerm(),
          donor.flushLsn(),
          myLastTerm,
          flush);
      consensus.adopt(
          Math.max(c.promisedTerm(), donor.lastLogTerm()),
          donor.history(),
          donor.flushLsn(),
          donor.safekeeperId());
    }
  }

  /**
   * Follows what peers know about computes: drops a compute a peer was told has stopped, and takes
   * up the compute of the current term from a peer (unless it has stopped).
   */
  private void learnCompute() throws IOException {
    ControlFile c = state.control();
    long stopped = c.stoppedComputeTerm();
    int toldBy = state.config().id();
    for (TimelineStatus p : state.peers().values()) {
      if (p.stoppedComputeTerm() > stopped) {
        stopped = p.stoppedComputeTerm();
        toldBy = p.safekeeperId();
      }
    }
    ComputeSource mine = c.compute();
    if (mine != null && mine.term() <= stopped) {
      log.info("{}: safekeeper {} says the compute of term {} has stopped", state, toldBy, stopped);
      intake.stopCompute(mine.term());
      return;
    }
    if (mine != null && mine.term() == c.promisedTerm()) {
      return;
    }
    for (TimelineStatus p : state.peers().values()) {
      ComputeSource s = p.compute();
      if (s != null
          && s.term() > stopped
          && s.term() == c.promisedTerm()
          && s.term() == state.lastLogTerm(c)) {
        log.info(
            "{}: the compute of term {} is {}:{} (from safekeeper {})",
            state,
            s.term(),
            s.host(),
            s.port(),
            p.safekeeperId());
        intake.setCompute(s);
        return;
      }
    }
  }

  /**
   * Retention (ADR 0007): whole segments below the horizon are not needed any more, oldest first.
   * The horizon is the lowest of what is committed (WAL above it may still be truncated by an
   * election), the pageserver's durable position (the {@code apply} of its feedback: it never needs
   * WAL below it again, even after a restart) and every peer's flush LSN (none needs it to catch
   * up). Before the first segment goes, the control file's recovery start (where the next open
   * scans from) is moved to the durable end of the WAL, above the horizon, so a restart never scans
   * from a deleted segment; the files themselves say what is held (a crash midway leaves a
   * contiguous run).
   */
  private void removeOldSegments() throws IOException {
    Lsn horizon = retentionHorizon();
    int seg = state.identity().segmentSize();
    long keepFrom = horizon.value() / seg;
    if (state.oldestLsn().value() / seg >= keepFrom) {
      return;
    }
    state.lock().lock();
    try {
      if (state.closed()) {
        return;
      }
      if (state.control().positions().recoveryStart().value() / seg < keepFrom) {
        persistPositions();
      }
    } finally {
      state.lock().unlock();
    }
    int removed = state.wal().removeSegmentsBefore(horizon);
    if (removed > 0) {
      log.info(
          "{}: removed {} WAL segments below the retention horizon {}; the oldest LSN held is {}",
          state,
          removed,
          horizon,
          state.oldestLsn());
    }
  }

  /**
   * min(commit LSN, the pageserver's durable position, every peer's flush LSN), and with WAL
   * offload also the backup LSN (ADR 0025): WAL not yet in remote storage stays, whatever the
   * pageserver holds, so a remote storage that is down makes the safekeepers keep WAL, never lose
   * it.
   */
  public Lsn retentionHorizon() {
    Lsn horizon = Lsn.min(state.commitLsn(), state.pageserver().applyLsn());
    if (state.config().walOffload()) {
      horizon = Lsn.min(horizon, state.backupLsn());
    }
    return Lsn.min(horizon, peerHorizon());
  }

  /** The lowest flush LSN among peers (a peer never heard of counts as at the timeline start). */
  private Lsn peerHorizon() {
    Lsn h = state.wal().flushRecordEnd();
    if (state.peers().size() < state.config().members() - 1) {
      return state.identity().startLsn();
    }
    for (TimelineStatus p : state.peers().values()) {
      h = Lsn.min(h, p.flushLsn());
    }
    return h;
  }

  private void persistPositionsIfDue() throws IOException {
    state.lock().lock();
    try {
      if (state.closed() || System.nanoTime() - persistedAtNanos < PERSIST_EVERY.toNanos()) {
        return;
      }
      persistPositions();
    } finally {
      state.lock().unlock();
    }
  }

  /**
   * Writes the positions that bound recovery work if they moved. Call with the timeline's lock held
   * (upkeep every {@link #PERSIST_EVERY}, and closing).
   */
  public void persistPositions() throws IOException {
    ControlFile c = state.control();
    Positions p = c.positions();
    Positions now =
        new Positions(
            state.commitLsn(),
            peerHorizon(),
            Lsn.max(p.backupLsn(), state.backupLsn()),
            state.wal().flushRecordEnd());
    PageserverFeedback ps = state.pageserver();
    if (!now.equals(p) || !ps.equals(c.pageserver())) {
      state.persist(c.withPositions(now).withPageserver(ps));
    }
    persistedAtNanos = System.nanoTime();
  }
}
