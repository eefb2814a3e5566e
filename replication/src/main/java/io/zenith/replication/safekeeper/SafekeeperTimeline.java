package io.zenith.replication.safekeeper;

import io.netty.buffer.Unpooled;
import io.netty.util.ReferenceCountUtil;
import io.zenith.replication.safekeeper.SafekeeperException.Kind;
import io.zenith.replication.server.WalPiece;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import io.zenith.wal.log.ControlFile.Positions;
import io.zenith.wal.log.ControlFile.TermEntry;
import io.zenith.wal.log.SegmentAllocator;
import io.zenith.wal.log.WalLog;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.stream.Stream;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

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
 * <p>Thread-safety: every method may be called from any thread that may block; state changes are
 * serialized by a lock, appends and fsyncs of the compute's WAL run on the timeline's I/O thread.
 */
public final class SafekeeperTimeline implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(SafekeeperTimeline.class);
  private static final int READ_CHUNK = 128 * 1024;

  /** How often positions that only bound recovery work are written to the control file. */
  private static final Duration PERSIST_EVERY = Duration.ofSeconds(1);

  private final SafekeeperConfig config;
  private final Path dir;
  private final WalLog wal;
  private final WalFetcher fetcher;
  private final Scheduler io;
  private final ReentrantLock lock = new ReentrantLock();

  /** Serializes adoptions (elections and peer recovery). */
  private final ReentrantLock adoptLock = new ReentrantLock();

  /** The durable state; replaced (under lock) only after it was written. */
  private volatile ControlFile control;

  private final Map<Integer, TimelineStatus> peers = new ConcurrentHashMap<>();
  private volatile Lsn commitLsn;
  private final Sinks.Many<Lsn> commits = Sinks.many().replay().latest();
  private volatile PageserverFeedback pageserver;
  private volatile @Nullable ComputeIntake intake;
  private volatile boolean closed;
  private long persistedAtNanos = System.nanoTime();

  private SafekeeperTimeline(
      SafekeeperConfig config, Path dir, ControlFile control, WalLog wal, WalFetcher fetcher) {
    this.config = config;
    this.dir = dir;
    this.control = control;
    this.wal = wal;
    this.fetcher = fetcher;
    this.commitLsn = control.positions().commitLsn();
    this.pageserver = control.pageserver();
    this.io =
        Schedulers.newSingle("sk-" + control.identity().timeline().toString().substring(0, 8));
    commits.tryEmitNext(commitLsn);
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
    t.startIntakeIfDue();
    return t;
  }

  public Identity identity() {
    return control.identity();
  }

  public Path dir() {
    return dir;
  }

  /** The end of the last complete durable record: how far peers can copy from here. */
  public Lsn flushRecordEnd() {
    return wal.flushRecordEnd();
  }

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

  /** The commit LSN, then every change of it. */
  public Flux<Lsn> commitUpdates() {
    return commits.asFlux();
  }

  // ------------------------------------------------------------------ status

  public TimelineStatus status() {
    ControlFile c = control;
    Lsn flush = wal.flushRecordEnd();
    ComputeIntake in = intake;
    return new TimelineStatus(
        config.id(),
        c.identity(),
        c.promisedTerm(),
        upTo(c.history(), flush),
        flush,
        wal.writeLsn(),
        commitLsn,
        ackLsn(),
        pageserver,
        c.lagLimits(),
        c.compute(),
        c.stoppedComputeTerm(),
        in == null ? "idle" : in.state(),
        in == null ? null : in.lastError());
  }

  /** History entries that label WAL held (start at or below {@code end}). */
  private static List<TermEntry> upTo(List<TermEntry> history, Lsn end) {
    int n = 0;
    while (n < history.size() && !history.get(n).start().isAfter(end)) {
      n++;
    }
    return history.subList(0, n);
  }

  private long lastLogTerm(ControlFile c) {
    List<TermEntry> h = upTo(c.history(), wal.flushRecordEnd());
    return h.isEmpty() ? 0 : h.getLast().term();
  }

  // ------------------------------------------------------------------ elections

  /**
   * Answers a proposed term: granted only if it is above every term promised before, in which case
   * the promise is durable before this returns, the compute of the old term is no longer read, and
   * the answer reports the WAL held after flushing what was received.
   */
  public VoteResponse vote(long term) throws IOException {
    lock.lock();
    try {
      checkOpen();
      ControlFile c = control;
      if (term <= c.promisedTerm()) {
        log.info("{}: refused term {} (promised {})", this, term, c.promisedTerm());
        return voteAnswer(false);
      }
      persist(c.withPromisedTerm(term).withCompute(null));
    } finally {
      lock.unlock();
    }
    stopIntake();
    wal.flush();
    VoteResponse r = voteAnswer(true);
    log.info(
        "{}: voted for term {}; WAL of term {} up to {}",
        this,
        term,
        r.lastLogTerm(),
        r.flushLsn());
    return r;
  }

  private VoteResponse voteAnswer(boolean granted) {
    ControlFile c = control;
    Lsn flush = wal.flushRecordEnd();
    return new VoteResponse(
        config.id(), granted, c.promisedTerm(), upTo(c.history(), flush), flush, commitLsn);
  }

  /**
   * Makes this log a copy of a donor's up to {@code upTo}: truncates it to the highest common point
   * of the two histories, labels it with {@code history} and copies the donor's WAL from there to
   * {@code upTo} (the end of a complete record). An election calls it on every voter with the
   * donor's history plus the new term's entry (T, upTo); peer recovery with a peer's history and
   * flush LSN. Blocking (copies WAL).
   *
   * @param term the caller's term: at least the one promised here (promised now if higher)
   * @throws SafekeeperException TERM_CONFLICT for a stale term, UNSAFE if the common point is below
   *     the commit LSN, INVALID for an impossible history, IO if the donor cannot serve the WAL
   */
  public TimelineStatus adopt(long term, List<TermEntry> history, Lsn upTo, int donorId)
      throws IOException {
    List<TermEntry> target = List.copyOf(history);
    validateTarget(term, target, upTo);
    adoptLock.lock();
    try {
      stopIntake();
      wal.flush();
      Lsn common = truncateForAdoption(term, target, upTo, donorId);
      if (common.isBefore(upTo)) {
        copyFromDonor(control.promisedTerm(), donorId, common, upTo);
      }
      lock.lock();
      try {
        ControlFile c = control;
        persist(
            c.withPositions(
                new Positions(
                    c.positions().commitLsn(),
                    c.positions().peerHorizonLsn(),
                    c.positions().backupLsn(),
                    wal.flushRecordEnd())));
      } finally {
        lock.unlock();
      }
      recomputeCommit();
      log.info(
          "{}: adopted history {} from safekeeper {} up to {}",
          this,
          TermHistory.format(target),
          donorId,
          upTo);
    } finally {
      adoptLock.unlock();
    }
    startIntakeIfDue();
    return status();
  }

  private void validateTarget(long term, List<TermEntry> target, Lsn upTo) {
    if (target.isEmpty()) {
      throw new SafekeeperException(Kind.INVALID, "a history to adopt must not be empty");
    }
    if (target.getLast().term() > term) {
      throw new SafekeeperException(
          Kind.INVALID,
          "the history's last term " + target.getLast().term() + " is above term " + term);
    }
    if (target.getLast().start().isAfter(upTo)) {
      throw new SafekeeperException(
          Kind.INVALID,
          "the history's last entry starts at "
              + target.getLast().start()
              + ", after the end "
              + upTo);
    }
    if (target.getFirst().start().isBefore(identity().startLsn())) {
      throw new SafekeeperException(
          Kind.INVALID,
          "the history starts at "
              + target.getFirst().start()
              + ", before the timeline's start "
              + identity().startLsn());
    }
    try {
      control.withHistory(target);
    } catch (IllegalArgumentException e) {
      throw new SafekeeperException(Kind.INVALID, e.getMessage());
    }
  }

  /** Steps 1–3 of an adoption, durably in this order: promise, truncate, relabel. */
  private Lsn truncateForAdoption(long term, List<TermEntry> target, Lsn upTo, int donorId)
      throws IOException {
    lock.lock();
    try {
      checkOpen();
      ControlFile c = control;
      if (term < c.promisedTerm()) {
        throw new SafekeeperException(
            Kind.TERM_CONFLICT,
            "term " + term + " is below term " + c.promisedTerm() + " promised here");
      }
      Lsn end = wal.flushRecordEnd();
      Lsn common =
          TermHistory.commonPoint(
              upTo(c.history(), end), end, target, upTo, c.identity().startLsn());
      // Only WAL this log holds can be lost: appending after its end truncates nothing.
      if (common.isBefore(end) && common.isBefore(commitLsn)) {
        throw new SafekeeperException(
            Kind.UNSAFE,
            "adopting safekeeper "
                + donorId
                + "'s history "
                + TermHistory.format(target)
                + " would truncate committed WAL: the common point "
                + common
                + " is below the commit LSN "
                + commitLsn);
      }
      Positions p = c.positions();
      ControlFile promised =
          c.withPromisedTerm(Math.max(term, c.promisedTerm()))
              .withCompute(c.compute() != null && c.compute().term() >= term ? c.compute() : null)
              .withPositions(
                  new Positions(
                      p.commitLsn(),
                      p.peerHorizonLsn(),
                      p.backupLsn(),
                      Lsn.min(p.recoveryStart(), common)));
      persist(promised);
      if (wal.writeLsn().isAfter(common)) {
        log.info("{}: truncating WAL at {} (was {})", this, common, wal.writeLsn());
        wal.truncate(common);
      }
      persist(control.withHistory(target));
      return common;
    } finally {
      lock.unlock();
    }
  }

  /** Copies WAL while {@code term} stays the promised term. */
  private void copyFromDonor(long term, int donorId, Lsn from, Lsn upTo) throws IOException {
    log.info("{}: copying WAL {}..{} from safekeeper {}", this, from, upTo, donorId);
    long flushEvery = 4L << 20;
    long unflushed = 0;
    // Each piece is released once appended (the log copies it). Closing the stream cancels the
    // fetch when the copy stops early; pieces still queued then go to the discard hook.
    try (Stream<WalPiece> pieces =
        fetcher
            .fetch(donorId, identity(), from, upTo)
            .doOnDiscard(WalPiece.class, ReferenceCountUtil::release)
            .toStream(4)) {
      for (WalPiece p : (Iterable<WalPiece>) pieces::iterator) {
        int n = p.length();
        lock.lock();
        try {
          checkOpen();
          if (control.promisedTerm() != term) {
            throw new SafekeeperException(
                Kind.TERM_CONFLICT,
                "term " + control.promisedTerm() + " was promised while copying WAL of " + term);
          }
          wal.append(p.start(), p.data().nioBuffer());
        } finally {
          lock.unlock();
          p.release();
        }
        unflushed += n;
        if (unflushed >= flushEvery) {
          wal.flush();
          unflushed = 0;
        }
      }
    } catch (UncheckedIOException e) {
      throw e.getCause();
    } catch (SafekeeperException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new SafekeeperException(
          Kind.IO,
          "cannot copy WAL from safekeeper "
              + donorId
              + " at "
              + wal.writeLsn()
              + ": "
              + e.getMessage(),
          e);
    } finally {
      wal.flush();
    }
    if (!wal.flushRecordEnd().equals(upTo)) {
      throw new SafekeeperException(
          Kind.IO,
          "safekeeper "
              + donorId
              + "'s WAL ended at "
              + wal.flushRecordEnd()
              + " (last complete record), expected "
              + upTo);
    }
  }

  // ------------------------------------------------------------------ the compute

  /**
   * Starts pulling from the compute of {@code source.term()}, which must be the term promised here
   * and the term of this log's WAL (the election ended here), and not a term whose compute stopped.
   */
  public void setCompute(ComputeSource source) throws IOException {
    lock.lock();
    try {
      checkOpen();
      ControlFile c = control;
      if (source.term() != c.promisedTerm()) {
        throw new SafekeeperException(
            Kind.TERM_CONFLICT,
            "the compute belongs to term "
                + source.term()
                + ", but this safekeeper's term is "
                + c.promisedTerm());
      }
      if (source.term() <= c.stoppedComputeTerm()) {
        throw new SafekeeperException(
            Kind.TERM_CONFLICT,
            "the compute of term "
                + source.term()
                + " has stopped; a new compute needs a new term (an election)");
      }
      if (lastLogTerm(c) != source.term()) {
        throw new SafekeeperException(
            Kind.TERM_CONFLICT,
            "this safekeeper's WAL is of term "
                + lastLogTerm(c)
                + ", not "
                + source.term()
                + ": it joins the term by catching up from its peers");
      }
      persist(c.withCompute(source));
    } finally {
      lock.unlock();
    }
    stopIntake();
    startIntakeIfDue();
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
  public void stopCompute(long term) throws IOException {
    if (term < 1) {
      throw new IllegalArgumentException("term " + term + " < 1");
    }
    ComputeSource stopped;
    lock.lock();
    try {
      checkOpen();
      ControlFile c = control;
      stopped = c.compute();
      if (stopped != null && stopped.term() != term) {
        throw new SafekeeperException(
            Kind.TERM_CONFLICT,
            "the compute here belongs to term "
                + stopped.term()
                + ", not to term "
                + term
                + "; it was left alone");
      }
      // Without a compute, a term above the promised one is not this safekeeper's to judge (a bogus
      // one would refuse every later compute up to it); peers that were told pass it on.
      long remembered =
          Math.max(
              c.stoppedComputeTerm(), stopped != null ? term : Math.min(term, c.promisedTerm()));
      if (stopped != null || remembered != c.stoppedComputeTerm()) {
        persist(c.withCompute(null).withStoppedComputeTerm(remembered));
      }
    } finally {
      lock.unlock();
    }
    stopIntake();
    if (stopped != null) {
      log.info(
          "{}: the compute of term {} ({}:{}) has stopped; no longer pulling from it",
          this,
          term,
          stopped.host(),
          stopped.port());
    }
  }

  /** Where pulling from the compute of {@code term} starts: the end of the log. */
  Lsn intakeStart(long term) {
    lock.lock();
    try {
      checkTermForAppend(term);
      return wal.writeLsn();
    } finally {
      lock.unlock();
    }
  }

  /**
   * Appends WAL pulled from the compute of {@code term} (refused once a higher term is promised).
   */
  void appendFromCompute(long term, Lsn at, ByteBuffer data) {
    lock.lock();
    try {
      checkOpen();
      checkTermForAppend(term);
      wal.append(at, data);
    } catch (IOException e) {
      // A full disk lands here: the log is back at its last whole record, nothing beyond it is
      // acknowledged, and the intake retries from there (the message becomes its intake_error).
      throw new SafekeeperException(
          Kind.IO,
          "WAL at " + at + " not stored, resuming at " + wal.writeLsn() + ": " + e.getMessage(),
          e);
    } finally {
      lock.unlock();
    }
  }

  private void checkTermForAppend(long term) {
    ControlFile c = control;
    if (c.promisedTerm() != term || c.compute() == null || c.compute().term() != term) {
      throw new SafekeeperException(
          Kind.TERM_CONFLICT,
          "WAL of term " + term + " refused: term " + c.promisedTerm() + " was promised");
    }
  }

  /** Makes appended WAL durable; returns what may be acknowledged to the compute now. */
  Lsn flushAndAck() {
    try {
      wal.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    recomputeCommit();
    return ackLsn();
  }

  /** The flush LSN held back by the lag limits against the pageserver's positions. */
  Lsn ackLsn() {
    return control.lagLimits().ackLimit(wal.flushRecordEnd(), pageserver);
  }

  private void startIntakeIfDue() {
    lock.lock();
    try {
      ControlFile c = control;
      ComputeSource s = c.compute();
      if (closed
          || intake != null
          || s == null
          || s.term() != c.promisedTerm()
          || lastLogTerm(c) != s.term()) {
        return;
      }
      intake = new ComputeIntake(this, s, config.name(), io, config.reconnectMax());
    } finally {
      lock.unlock();
    }
  }

  private void stopIntake() {
    ComputeIntake in;
    lock.lock();
    try {
      in = intake;
      intake = null;
    } finally {
      lock.unlock();
    }
    if (in != null) {
      in.stop();
    }
  }

  // ------------------------------------------------------------------ peers and the pageserver

  /** What a peer said about this timeline (gossip): for the commit LSN and pageserver positions. */
  public void onPeerStatus(TimelineStatus peer) {
    if (peer.safekeeperId() == config.id()) {
      return;
    }
    peers.put(peer.safekeeperId(), peer);
    onPageserverFeedback(peer.pageserver());
    recomputeCommit();
  }

  /** The latest status each peer reported about this timeline (gossip), by safekeeper id. */
  public Map<Integer, TimelineStatus> peers() {
    return Map.copyOf(peers);
  }

  /** Positions a pageserver reported (received, durable, in remote storage). */
  public void onPageserverFeedback(PageserverFeedback f) {
    PageserverFeedback before = pageserver;
    PageserverFeedback after;
    synchronized (this) {
      after = pageserver.max(f);
      pageserver = after;
    }
    if (!after.equals(before)) {
      ComputeIntake in = intake;
      if (in != null) {
        in.report(ackLsn());
      }
    }
  }

  private synchronized void recomputeCommit() {
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

  // ------------------------------------------------------------------ configuration

  /** Sets the timeline's compute replication lag limits (durable). */
  public void setLagLimits(LagLimits limits) throws IOException {
    lock.lock();
    try {
      checkOpen();
      persist(control.withLagLimits(limits));
    } finally {
      lock.unlock();
    }
    ComputeIntake in = intake;
    if (in != null) {
      in.report(ackLsn());
    }
  }

  // ------------------------------------------------------------------ serving

  /**
   * The WAL from {@code from} on, as far as it is committed, tailing: for pageservers (and
   * standbys), who must never see WAL a later election could truncate. Blocking reads run on {@code
   * readers}.
   */
  public Flux<WalPiece> readCommitted(Lsn from, Scheduler readers) {
    checkReadable(from);
    // Both positions only wake the tail, which then reads servableLsn() itself (each is set
    // before its update is emitted). They change on the intake's and gossip's threads: hop to a
    // reader so that the reads they trigger do not run there (only LSNs cross this publishOn).
    Flux<Lsn> changes =
        Flux.merge(wal.flushRecordEndUpdates(), commits.asFlux()).publishOn(readers, 1);
    return pieces(from, wal.tail(from, this::servableLsn, changes, READ_CHUNK))
        .subscribeOn(readers);
  }

  /**
   * The durable WAL from {@code from} up to {@code upTo}, which must be at or below the end of its
   * last complete durable record: for peers copying it.
   */
  public Flux<WalPiece> readFlushed(Lsn from, Lsn upTo, Scheduler readers) {
    checkReadable(from);
    if (upTo.isAfter(wal.flushRecordEnd())) {
      throw new SafekeeperException(
          Kind.INVALID, "WAL up to " + upTo + " requested, but it ends at " + wal.flushRecordEnd());
    }
    return pieces(from, wal.read(from, upTo, READ_CHUNK)).subscribeOn(readers);
  }

  /**
   * Contiguous buffers from {@code from} on, each with its LSN, as pieces that wrap them (no copy:
   * the log reads into a fresh heap buffer each time and never touches it again).
   */
  private static Flux<WalPiece> pieces(Lsn from, Flux<ByteBuffer> buffers) {
    return Flux.defer(
        () -> {
          long[] at = {from.value()};
          return buffers.map(
              b -> {
                WalPiece p = new WalPiece(Lsn.of(at[0]), Unpooled.wrappedBuffer(b));
                at[0] += p.length();
                return p;
              });
        });
  }

  private void checkReadable(Lsn from) {
    Lsn first = oldestLsn();
    if (from.isBefore(first)) {
      throw new SafekeeperException(
          Kind.INVALID,
          "WAL at " + from + " is not here any more (the oldest held is at " + first + ")");
    }
    if (from.isAfter(wal.flushLsn())) {
      throw new SafekeeperException(
          Kind.INVALID, "WAL at " + from + " requested, but it ends at " + wal.flushLsn());
    }
  }

  // ------------------------------------------------------------------ upkeep

  /**
   * Periodic upkeep (every few hundred milliseconds, on a thread that may block): writes positions
   * that bound recovery work, joins the current term by catching up from the most advanced peer,
   * learns the current term's compute from peers (and that a compute has stopped).
   */
  public void maintain() {
    if (closed) {
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
        log.info("{}: {} works again", this, what);
      }
    } catch (IOException | RuntimeException e) {
      String problem = String.valueOf(e.getMessage()).replaceAll("\\b[cs][0-9]+ ", "");
      if (!problem.equals(upkeepProblems.put(what, problem))) {
        log.warn("{}: {} failed: {}", this, what, e.getMessage());
      } else {
        log.debug("{}: {} failed: {}", this, what, e.getMessage());
      }
    }
  }

  private void catchUpFromPeers() throws IOException {
    ControlFile c = control;
    Lsn flush = wal.flushRecordEnd();
    long myLastTerm = lastLogTerm(c);
    ComputeIntake in = intake;
    // A safekeeper that reaches its compute gets the WAL from there.
    boolean streaming = in != null && !"failed".equals(in.state()) && !"behind".equals(in.state());
    TimelineStatus donor = null;
    for (TimelineStatus p : peers.values()) {
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
          this,
          donor.safekeeperId(),
          donor.lastLogTerm(),
          donor.flushLsn(),
          myLastTerm,
          flush);
      adopt(
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
    ControlFile c = control;
    long stopped = c.stoppedComputeTerm();
    int toldBy = config.id();
    for (TimelineStatus p : peers.values()) {
      if (p.stoppedComputeTerm() > stopped) {
        stopped = p.stoppedComputeTerm();
        toldBy = p.safekeeperId();
      }
    }
    ComputeSource mine = c.compute();
    if (mine != null && mine.term() <= stopped) {
      log.info("{}: safekeeper {} says the compute of term {} has stopped", this, toldBy, stopped);
      stopCompute(mine.term());
      return;
    }
    if (mine != null && mine.term() == c.promisedTerm()) {
      return;
    }
    for (TimelineStatus p : peers.values()) {
      ComputeSource s = p.compute();
      if (s != null
          && s.term() > stopped
          && s.term() == c.promisedTerm()
          && s.term() == lastLogTerm(c)) {
        log.info(
            "{}: the compute of term {} is {}:{} (from safekeeper {})",
            this,
            s.term(),
            s.host(),
            s.port(),
            p.safekeeperId());
        setCompute(s);
        return;
      }
    }
  }

  /**
   * Retention: segments below what is committed, what the pageserver has in remote storage, and
   * what every peer holds (so that none needs it to catch up) are not needed any more.
   */
  private void removeOldSegments() throws IOException {
    Lsn horizon = Lsn.min(commitLsn, pageserver.applyLsn());
    horizon = Lsn.min(horizon, peerHorizon());
    int removed = wal.removeSegmentsBefore(horizon);
    if (removed > 0) {
      log.info("{}: removed {} WAL segments below {}", this, removed, horizon);
    }
  }

  /** The lowest flush LSN among peers (a peer never heard of counts as at the timeline start). */
  private Lsn peerHorizon() {
    Lsn h = wal.flushRecordEnd();
    if (peers.size() < config.members() - 1) {
      return identity().startLsn();
    }
    for (TimelineStatus p : peers.values()) {
      h = Lsn.min(h, p.flushLsn());
    }
    return h;
  }

  private void persistPositionsIfDue() throws IOException {
    lock.lock();
    try {
      if (closed || System.nanoTime() - persistedAtNanos < PERSIST_EVERY.toNanos()) {
        return;
      }
      persistPositions();
    } finally {
      lock.unlock();
    }
  }

  private void persistPositions() throws IOException {
    ControlFile c = control;
    Positions p = c.positions();
    Positions now = new Positions(commitLsn, peerHorizon(), p.backupLsn(), wal.flushRecordEnd());
    PageserverFeedback ps = pageserver;
    if (!now.equals(p) || !ps.equals(c.pageserver())) {
      persist(c.withPositions(now).withPageserver(ps));
    }
    persistedAtNanos = System.nanoTime();
  }

  /** Writes {@code next} durably, then makes it current. Call with the lock held. */
  private void persist(ControlFile next) throws IOException {
    next.write(dir);
    control = next;
  }

  private void checkOpen() {
    if (closed) {
      throw new SafekeeperException(Kind.CLOSED, "timeline " + this + " is closed");
    }
  }

  /** Stops pulling, writes its positions and closes the log. */
  @Override
  public void close() throws IOException {
    if (closed) {
      return;
    }
    stopIntake();
    lock.lock();
    try {
      closed = true;
      wal.flush();
      persistPositions();
      wal.close();
    } finally {
      lock.unlock();
      commits.tryEmitComplete();
      io.dispose();
    }
  }

  @Override
  public String toString() {
    Identity id = control.identity();
    return "sk" + config.id() + " " + id.tenant() + "/" + id.timeline();
  }
}
