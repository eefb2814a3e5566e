package io.zenith.replication.safekeeper;

import io.zenith.replication.safekeeper.SafekeeperException.Kind;
import io.zenith.replication.safekeeper.internal.TimelineState;
import io.zenith.replication.safekeeper.internal.consensus.TimelineConsensus;
import io.zenith.replication.safekeeper.internal.intake.TimelineIntake;
import io.zenith.replication.safekeeper.internal.serving.TimelineReads;
import io.zenith.replication.safekeeper.internal.upkeep.TimelineUpkeep;
import io.zenith.replication.server.WalPiece;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import io.zenith.wal.log.ControlFile.TermEntry;
import io.zenith.wal.log.SegmentAllocator;
import io.zenith.wal.log.WalLog;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;

/**
 * One timeline on one safekeeper: its WAL log, its control file, the compute it pulls from, what it
 * knows of its peers, and the rules of DESIGN.md §4.
 *
 * <ul>
 *   <li><b>Terms.</b> It promises a term only above every term it promised ({@link #vote}), durably
 *       before answering, and appends WAL only from the compute of the term it promised last.
 *   <li><b>Histories.</b> Its term history labels its WAL: entry (t, s) says term t's compute wrote
 *       the WAL from s on. Only entries at or below the flush LSN count ({@link
 *       TimelineStatus#history()}), so an adoption interrupted midway never mislabels WAL.
 *   <li><b>Adoption</b> ({@link #adopt}): truncate to the highest common point with a donor's
 *       history, then copy the donor's WAL up to a record end; never below the commit LSN.
 *   <li><b>Acknowledgements</b> name whole durable records only, so the commit LSN (the quorum-th
 *       highest flush LSN among safekeepers with the same last history entry) is a record boundary;
 *       they are held back while the pageserver lags beyond the lag limits.
 *   <li><b>Computes.</b> It pulls WAL from the compute of the term it promised ({@link
 *       #setCompute}) until told the compute has stopped ({@link #stopCompute}); the stopped term
 *       is remembered durably, so that neither a request nor a peer's gossip brings that compute
 *       back.
 *   <li><b>Serving</b>: pageservers get WAL up to the commit LSN ({@link #readCommitted}), peers up
 *       to a flushed record end ({@link #readFlushed}).
 * </ul>
 *
 * <p>This class is the timeline's API; its jobs are separate classes in {@code
 * io.zenith.replication.safekeeper.internal}: {@code TimelineState} (what they share: the log, the
 * control file, peers, the commit LSN), {@code consensus.TimelineConsensus} (votes, adoptions),
 * {@code intake.TimelineIntake} (the compute: pulling, appends, acknowledgements), {@code
 * serving.TimelineReads} (WAL to pageservers, standbys and peers) and {@code upkeep.TimelineUpkeep}
 * (peer recovery, learning the compute, positions, retention).
 *
 * <p>Thread-safety: every method may be called from any thread that may block; state changes are
 * serialized by a lock, appends and fsyncs of the compute's WAL run on the timeline's I/O thread.
 */
public final class SafekeeperTimeline implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(SafekeeperTimeline.class);

  private final TimelineState state;
  private final TimelineIntake intake;
  private final TimelineConsensus consensus;
  private final TimelineReads reads;
  private final TimelineUpkeep upkeep;

  private SafekeeperTimeline(
      SafekeeperConfig config, Path dir, ControlFile control, WalLog wal, WalFetcher fetcher) {
    this.state = new TimelineState(config, dir, control, wal);
    this.intake = new TimelineIntake(state);
    this.consensus = new TimelineConsensus(state, intake, fetcher);
    this.reads = new TimelineReads(state);
    this.upkeep = new TimelineUpkeep(state, consensus, intake);
  }

  /**
   * Creates the timeline in {@code dir} (which must not hold one): no term yet, WAL to start at
   * {@code identity.startLsn()}, the pageserver assumed to hold everything before it.
   */
  public static SafekeeperTimeline create(
      Path dir, Identity identity, LagLimits limits, SafekeeperConfig config, WalFetcher fetcher)
      throws IOException {
    return create(dir, identity, limits, config, fetcher, SegmentAllocator.ZEROS);
  }

  /** {@link #create(Path, Identity, LagLimits, SafekeeperConfig, WalFetcher)} on {@code disk}. */
  public static SafekeeperTimeline create(
      Path dir,
      Identity identity,
      LagLimits limits,
      SafekeeperConfig config,
      WalFetcher fetcher,
      SegmentAllocator disk)
      throws IOException {
    if (ControlFile.read(dir).isPresent()) {
      throw new SafekeeperException(
          Kind.ALREADY_EXISTS,
          "timeline " + identity.tenant() + "/" + identity.timeline() + " exists already");
    }
    DurableFiles.createDirectories(dir);
    ControlFile.create(identity, limits).write(dir);
    return open(dir, config, fetcher, disk);
  }

  /** Opens the timeline in {@code dir}: control file, then the WAL scanned for its end. */
  public static SafekeeperTimeline open(Path dir, SafekeeperConfig config, WalFetcher fetcher)
      throws IOException {
    return open(dir, config, fetcher, SegmentAllocator.ZEROS);
  }

  /**
   * {@link #open(Path, SafekeeperConfig, WalFetcher)} with new WAL segments taking their space from
   * {@code disk} (the seam where tests fill the disk).
   */
  public static SafekeeperTimeline open(
      Path dir, SafekeeperConfig config, WalFetcher fetcher, SegmentAllocator disk)
      throws IOException {
    ControlFile c =
        ControlFile.read(dir)
            .orElseThrow(() -> new IOException("no safekeeper control file in " + dir));
    Identity id = c.identity();
    WalLog wal =
        WalLog.open(dir, id.segmentSize(), id.systemId(), c.positions().recoveryStart(), disk);
    SafekeeperTimeline t = new SafekeeperTimeline(config, dir, c, wal, fetcher);
    log.info(
        "{}: opened, term {}, history {}, WAL ends at {}, commit {}",
        t,
        c.promisedTerm(),
        TermHistory.format(c.history()),
        wal.flushRecordEnd(),
        c.positions().commitLsn());
    t.intake.startIfDue();
    return t;
  }

  public Identity identity() {
    return state.identity();
  }

  public Path dir() {
    return state.dir();
  }

  /** The end of the last complete durable record: how far peers can copy from here. */
  public Lsn flushRecordEnd() {
    return state.wal().flushRecordEnd();
  }

  /**
   * How far pageservers and standbys can read now: the commit LSN, capped by the local flush record
   * end (ADR 0003: a safekeeper may learn a commit LSN beyond its own WAL from a peer).
   */
  public Lsn servableLsn() {
    return state.servableLsn();
  }

  /** The first LSN this log still holds (segments below it were removed, or it starts there). */
  public Lsn oldestLsn() {
    return state.oldestLsn();
  }

  /** The commit LSN, then every change of it. */
  public Flux<Lsn> commitUpdates() {
    return state.commitUpdates();
  }

  public TimelineStatus status() {
    ControlFile c = state.control();
    WalLog wal = state.wal();
    Lsn flush = wal.flushRecordEnd();
    return new TimelineStatus(
        state.config().id(),
        c.identity(),
        c.promisedTerm(),
        TimelineState.upTo(c.history(), flush),
        flush,
        wal.writeLsn(),
        state.commitLsn(),
        state.ackLsn(),
        state.pageserver(),
        c.lagLimits(),
        c.compute(),
        c.stoppedComputeTerm(),
        intake.stateName(),
        intake.lastError(),
        state.oldestLsn(),
        state.removedBytes(),
        state.backupLsn());
  }

  // ------------------------------------------------------------------ elections

  /**
   * Answers a proposed term: granted only if it is above every term promised before, in which case
   * the promise is durable before this returns, the compute of the old term is no longer read, and
   * the answer reports the WAL held after flushing what was received.
   */
  @SuppressWarnings("try")
  public VoteResponse vote(long term) throws IOException {
    try (LogContext.Scope s = logContext()) {
      return consensus.vote(term);
    }
  }

  /**
   * Makes this log a copy of a donor's up to {@code upTo}: truncates it to the highest common point
   * of the two histories, labels it with {@code history} and copies the donor's WAL from there to
   * {@code upTo} (the end of a complete record). An election calls it on every voter with the
   * donor's history plus the new term's entry (T, upTo); peer recovery with a peer's history and
   * flush LSN. Blocking (copies WAL).
   *
   * @param term the caller's term: at least the one promised here (promised now if higher)
   * @return the status afterwards
   * @throws SafekeeperException TERM_CONFLICT for a stale term, UNSAFE if the common point is below
   *     the commit LSN, INVALID for an impossible history, IO if the donor cannot serve the WAL
   */
  @SuppressWarnings("try")
  public TimelineStatus adopt(long term, List<TermEntry> history, Lsn upTo, int donorId)
      throws IOException {
    try (LogContext.Scope s = logContext()) {
      consensus.adopt(term, history, upTo, donorId);
    }
    return status();
  }

  // ------------------------------------------------------------------ the compute

  /**
   * Starts pulling from the compute of {@code source.term()}, which must be the term promised here
   * and the term of this log's WAL (the election ended here), and not a term whose compute stopped.
   */
  @SuppressWarnings("try")
  public void setCompute(ComputeSource source) throws IOException {
    try (LogContext.Scope s = logContext()) {
      intake.setCompute(source);
    }
  }

  /**
   * Forgets the compute of {@code term}, which has stopped, durably (as {@link #setCompute}), then
   * stops pulling from it. The term is remembered ({@link TimelineStatus#stoppedComputeTerm()}): no
   * compute of it is taken up again, from a request or from a peer, and peers that still have it
   * drop it when they hear of this through gossip. With no compute set nothing changes but that
   * memory (up to the promised term): stopping twice is harmless.
   *
   * @throws SafekeeperException TERM_CONFLICT when the compute here belongs to another term (a
   *     stale stop must not disturb a newer compute)
   */
  @SuppressWarnings("try")
  public void stopCompute(long term) throws IOException {
    try (LogContext.Scope s = logContext()) {
      intake.stopCompute(term);
    }
  }

  /**
   * Appends WAL pulled from the compute of {@code term} (refused once a higher term is promised):
   * what the intake does with each chunk; tests drive it directly.
   */
  void appendFromCompute(long term, Lsn at, ByteBuffer data) {
    intake.appendFromCompute(term, at, data);
  }

  /** Makes appended WAL durable; returns what may be acknowledged to the compute now. */
  Lsn flushAndAck() {
    return intake.flushAndAck();
  }

  // ------------------------------------------------------------------ peers and the pageserver

  /** What a peer said about this timeline (gossip): for the commit LSN and pageserver positions. */
  public void onPeerStatus(TimelineStatus peer) {
    if (peer.safekeeperId() == state.config().id()) {
      return;
    }
    state.peers().put(peer.safekeeperId(), peer);
    state.heardFrom(peer.safekeeperId());
    state.mergeBackupLsn(peer.backupLsn());
    onPageserverFeedback(peer.pageserver());
    state.recomputeCommit();
  }

  /** The latest status each peer reported about this timeline (gossip), by safekeeper id. */
  public Map<Integer, TimelineStatus> peers() {
    return Map.copyOf(state.peers());
  }

  /**
   * Positions the pageserver reported (received, disk-consistent, durable position: ADR 0007);
   * callers pass only the configured pageserver's feedback (and peers' views of it).
   */
  public void onPageserverFeedback(PageserverFeedback f) {
    if (state.mergePageserver(f)) {
      intake.reportAck();
    }
  }

  // ------------------------------------------------------------------ WAL offload (ADR 0025)

  /** The end of the WAL known to be in remote storage (0/0 before the first upload). */
  public Lsn backupLsn() {
    return state.backupLsn();
  }

  /**
   * Records that the WAL below {@code lsn} is in remote storage: durably in the control file before
   * it counts (retention may remove WAL below it, here and, through gossip, on the peers).
   */
  public void recordBackupLsn(Lsn lsn) throws IOException {
    state.lock().lock();
    try {
      state.checkOpen();
      ControlFile c = state.control();
      ControlFile.Positions p = c.positions();
      if (lsn.isAfter(p.backupLsn())) {
        state.persist(
            c.withPositions(
                new ControlFile.Positions(
                    p.commitLsn(), p.peerHorizonLsn(), lsn, p.recoveryStart())));
      }
      state.mergeBackupLsn(lsn);
    } finally {
      state.lock().unlock();
    }
  }

  /** The members heard from within {@code window}, this one included, sorted by id. */
  public List<Integer> liveMembers(java.time.Duration window) {
    return state.liveMembers(window);
  }

  /**
   * The bytes of WAL segment {@code segmentNumber}, which must be held and flushed (blocking: reads
   * a whole segment).
   */
  public byte[] readSegment(long segmentNumber) throws IOException {
    int seg = state.identity().segmentSize();
    Lsn from = Lsn.of(segmentNumber * seg);
    Lsn to = Lsn.of((segmentNumber + 1) * seg);
    if (to.isAfter(state.wal().flushRecordEnd())) {
      throw new IllegalStateException(
          this
              + ": segment "
              + segmentNumber
              + " is not complete (flushed up to "
              + state.wal().flushRecordEnd()
              + ")");
    }
    byte[] out = new byte[seg];
    int[] at = {0};
    try {
      state
          .wal()
          .read(from, to, 1 << 20)
          .toIterable(1)
          .forEach(
              b -> {
                int n = b.remaining();
                b.get(out, at[0], n);
                at[0] += n;
              });
    } catch (RuntimeException e) {
      if (reactor.core.Exceptions.unwrap(e) instanceof IOException io) {
        throw io;
      }
      throw e;
    }
    if (at[0] != seg) {
      throw new IOException(
          this + ": read " + at[0] + " bytes of segment " + segmentNumber + ", expected " + seg);
    }
    return out;
  }

  /** The LSN below which upkeep removes WAL segments now (ADR 0007, 0025). */
  public Lsn retentionHorizon() {
    return upkeep.retentionHorizon();
  }

  /** The timeline's settings (this safekeeper's). */
  public SafekeeperConfig config() {
    return state.config();
  }

  // ------------------------------------------------------------------ configuration

  /** Sets the timeline's compute replication lag limits (durable). */
  public void setLagLimits(LagLimits limits) throws IOException {
    state.lock().lock();
    try {
      state.checkOpen();
      state.persist(state.control().withLagLimits(limits));
    } finally {
      state.lock().unlock();
    }
    intake.reportAck();
  }

  // ------------------------------------------------------------------ serving

  /**
   * The WAL from {@code from} on, as far as it is committed, tailing: for pageservers (and
   * standbys), who must never see WAL a later election could truncate. Blocking reads run on {@code
   * readers}; the stream's contract is {@link TimelineReads#readCommitted}'s.
   */
  public Flux<WalPiece> readCommitted(Lsn from, Scheduler readers) {
    return reads.readCommitted(from, logContext(readers));
  }

  /**
   * The durable WAL from {@code from} up to {@code upTo}, which must be at or below the end of its
   * last complete durable record: for peers copying it.
   */
  public Flux<WalPiece> readFlushed(Lsn from, Lsn upTo, Scheduler readers) {
    return reads.readFlushed(from, upTo, logContext(readers));
  }

  // ------------------------------------------------------------------ upkeep

  /**
   * Periodic upkeep (every few hundred milliseconds, on a thread that may block): writes positions
   * that bound recovery work, joins the current term by catching up from the most advanced peer,
   * learns the current term's compute from peers (and that a compute has stopped).
   */
  @SuppressWarnings("try")
  public void maintain() {
    try (LogContext.Scope s = logContext()) {
      upkeep.maintain();
    }
  }

  /** This timeline's ids in the log lines of work entering here ({@link LogContext}). */
  private LogContext.Scope logContext() {
    Identity id = identity();
    return LogContext.scope(id.tenant(), id.timeline());
  }

  /** {@code readers} with this timeline's ids in the log lines of its tasks. */
  private Scheduler logContext(Scheduler readers) {
    Identity id = identity();
    return LogContext.scheduler(readers, id.tenant(), id.timeline());
  }

  /** Stops pulling, writes its positions and closes the log. */
  @Override
  public void close() throws IOException {
    if (state.closed()) {
      return;
    }
    intake.stop();
    state.lock().lock();
    try {
      state.markClosed();
      state.wal().flush();
      upkeep.persistPositions();
      state.wal().close();
    } finally {
      state.lock().unlock();
      state.completeCommitUpdates();
      intake.dispose();
    }
  }

  @Override
  public String toString() {
    return state.toString();
  }
}
