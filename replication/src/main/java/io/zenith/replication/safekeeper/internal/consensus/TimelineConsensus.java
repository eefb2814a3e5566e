package io.zenith.replication.safekeeper.internal.consensus;

import io.netty.util.ReferenceCountUtil;
import io.zenith.replication.safekeeper.SafekeeperException;
import io.zenith.replication.safekeeper.SafekeeperException.Kind;
import io.zenith.replication.safekeeper.TermHistory;
import io.zenith.replication.safekeeper.TimelineStatus;
import io.zenith.replication.safekeeper.VoteResponse;
import io.zenith.replication.safekeeper.WalFetcher;
import io.zenith.replication.safekeeper.internal.TimelineState;
import io.zenith.replication.safekeeper.internal.intake.TimelineIntake;
import io.zenith.replication.server.WalPiece;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.Positions;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A timeline's part in consensus (DESIGN.md §4): it promises a term only above every term it
 * promised ({@link #vote}), durably before answering, and makes its log a copy of a donor's ({@link
 * #adopt}: truncate to the highest common point of the two histories, relabel, copy the donor's WAL
 * up to a record end), never below the commit LSN. Its term history labels its WAL: entry (t, s)
 * says term t's compute wrote the WAL from s on; only entries at or below the flush LSN count
 * ({@link TimelineStatus#history()}), so an adoption interrupted midway never mislabels WAL.
 *
 * <p>Thread-safety: thread-safe; every method blocks (fsyncs, copies WAL). Control-file changes
 * hold the timeline's lock; adoptions (elections and peer recovery) are serialized by a lock of
 * their own, held while WAL is copied from the donor, and stop the intake first (without the
 * timeline's lock held).
 */
public final class TimelineConsensus {
  private static final Logger log = LoggerFactory.getLogger(TimelineConsensus.class);

  private final TimelineState state;
  private final TimelineIntake intake;
  private final WalFetcher fetcher;

  /** Serializes adoptions (elections and peer recovery). */
  private final ReentrantLock adoptLock = new ReentrantLock();

  public TimelineConsensus(TimelineState state, TimelineIntake intake, WalFetcher fetcher) {
    this.state = state;
    this.intake = intake;
    this.fetcher = fetcher;
  }

  /**
   * Answers a proposed term: granted only if it is above every term promised before, in which case
   * the promise is durable before this returns, the compute of the old term is no longer read, and
   * the answer reports the WAL held after flushing what was received.
   */
  public VoteResponse vote(long term) throws IOException {
    state.lock().lock();
    try {
      state.checkOpen();
      ControlFile c = state.control();
      if (term <= c.promisedTerm()) {
        log.info("{}: refused term {} (promised {})", state, term, c.promisedTerm());
        return voteAnswer(false);
      }
      state.persist(c.withPromisedTerm(term).withCompute(null));
    } finally {
      state.lock().unlock();
    }
    intake.stop();
    state.wal().flush();
    VoteResponse r = voteAnswer(true);
    log.info(
        "{}: voted for term {}; WAL of term {} up to {}",
        state,
        term,
        r.lastLogTerm(),
        r.flushLsn());
    return r;
  }

  private VoteResponse voteAnswer(boolean granted) {
    ControlFile c = state.control();
    Lsn flush = state.wal().flushRecordEnd();
    return new VoteResponse(
        state.config().id(),
        granted,
        c.promisedTerm(),
        TimelineState.upTo(c.history(), flush),
        flush,
        state.commitLsn());
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
  public void adopt(long term, List<TermEntry> history, Lsn upTo, int donorId) throws IOException {
    List<TermEntry> target = List.copyOf(history);
    validateTarget(term, target, upTo);
    adoptLock.lock();
    try {
      intake.stop();
      state.wal().flush();
      Lsn common = truncateForAdoption(term, target, upTo, donorId);
      if (common.isBefore(upTo)) {
        copyFromDonor(state.control().promisedTerm(), donorId, common, upTo);
      }
      state.lock().lock();
      try {
        ControlFile c = state.control();
        state.persist(
            c.withPositions(
                new Positions(
                    c.positions().commitLsn(),
                    c.positions().peerHorizonLsn(),
                    c.positions().backupLsn(),
                    state.wal().flushRecordEnd())));
      } finally {
        state.lock().unlock();
      }
      state.recomputeCommit();
      log.info(
          "{}: adopted history {} from safekeeper {} up to {}",
          state,
          TermHistory.format(target),
          donorId,
          upTo);
    } finally {
      adoptLock.unlock();
    }
    intake.startIfDue();
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
    if (target.getFirst().start().isBefore(state.identity().startLsn())) {
      throw new SafekeeperException(
          Kind.INVALID,
          "the history starts at "
              + target.getFirst().start()
              + ", before the timeline's start "
              + state.identity().startLsn());
    }
    try {
      state.control().withHistory(target);
    } catch (IllegalArgumentException e) {
      throw new SafekeeperException(Kind.INVALID, e.getMessage());
    }
  }

  /** Steps 1–3 of an adoption, durably in this order: promise, truncate, relabel. */
  private Lsn truncateForAdoption(long term, List<TermEntry> target, Lsn upTo, int donorId)
      throws IOException {
    state.lock().lock();
    try {
      state.checkOpen();
      ControlFile c = state.control();
      if (term < c.promisedTerm()) {
        throw new SafekeeperException(
            Kind.TERM_CONFLICT,
            "term " + term + " is below term " + c.promisedTerm() + " promised here");
      }
      Lsn end = state.wal().flushRecordEnd();
      Lsn common =
          TermHistory.commonPoint(
              TimelineState.upTo(c.history(), end), end, target, upTo, c.identity().startLsn());
      // Only WAL this log holds can be lost: appending after its end truncates nothing.
      if (common.isBefore(end) && common.isBefore(state.commitLsn())) {
        throw new SafekeeperException(
            Kind.UNSAFE,
            "adopting safekeeper "
                + donorId
                + "'s history "
                + TermHistory.format(target)
                + " would truncate committed WAL: the common point "
                + common
                + " is below the commit LSN "
                + state.commitLsn());
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
      state.persist(promised);
      if (state.wal().writeLsn().isAfter(common)) {
        log.info("{}: truncating WAL at {} (was {})", state, common, state.wal().writeLsn());
        state.wal().truncate(common);
      }
      state.persist(state.control().withHistory(target));
      return common;
    } finally {
      state.lock().unlock();
    }
  }

  /** Copies WAL while {@code term} stays the promised term. */
  private void copyFromDonor(long term, int donorId, Lsn from, Lsn upTo) throws IOException {
    log.info("{}: copying WAL {}..{} from safekeeper {}", state, from, upTo, donorId);
    long flushEvery = 4L << 20;
    long unflushed = 0;
    // Each piece is released once appended (the log copies it). Closing the stream cancels the
    // fetch when the copy stops early; pieces still queued then go to the discard hook.
    try (Stream<WalPiece> pieces =
        fetcher
            .fetch(donorId, state.identity(), from, upTo)
            .doOnDiscard(WalPiece.class, ReferenceCountUtil::release)
            .toStream(4)) {
      for (WalPiece p : (Iterable<WalPiece>) pieces::iterator) {
        int n = p.length();
        state.lock().lock();
        try {
          state.checkOpen();
          if (state.control().promisedTerm() != term) {
            throw new SafekeeperException(
                Kind.TERM_CONFLICT,
                "term "
                    + state.control().promisedTerm()
                    + " was promised while copying WAL of "
                    + term);
          }
          state.wal().append(p.start(), p.data().nioBuffer());
        } finally {
          state.lock().unlock();
          p.release();
        }
        unflushed += n;
        if (unflushed >= flushEvery) {
          state.wal().flush();
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
              + state.wal().writeLsn()
              + ": "
              + e.getMessage(),
          e);
    } finally {
      state.wal().flush();
    }
    if (!state.wal().flushRecordEnd().equals(upTo)) {
      throw new SafekeeperException(
          Kind.IO,
          "safekeeper "
              + donorId
              + "'s WAL ended at "
              + state.wal().flushRecordEnd()
              + " (last complete record), expected "
              + upTo);
    }
  }
}
