package io.zenith.replication.safekeeper.internal.intake;

import io.zenith.replication.safekeeper.SafekeeperException;
import io.zenith.replication.safekeeper.SafekeeperException.Kind;
import io.zenith.replication.safekeeper.TimelineStatus;
import io.zenith.replication.safekeeper.internal.TimelineState;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * A timeline's intake: which compute it pulls WAL from ({@link #setCompute}, {@link #stopCompute}),
 * the {@link ComputeIntake} that pulls, and the appends, fsyncs and acknowledgements of that WAL.
 * It pulls only from the compute of the term promised last, whose WAL this log already continues,
 * and never from a compute whose term was stopped (remembered durably, so that neither a request
 * nor a peer's gossip brings it back).
 *
 * <p>Thread-safety: thread-safe. Control-file changes and appends hold the timeline's lock ({@link
 * TimelineState#lock()}); the pulling itself, its appends and fsyncs run on the timeline's I/O
 * thread ({@link #io}). {@link #stop()} blocks until no chunk is being appended: call it without
 * the lock held.
 */
public final class TimelineIntake {
  private static final Logger log = LoggerFactory.getLogger(TimelineIntake.class);

  private final TimelineState state;

  /** Where the compute's WAL is appended and fsynced, one chunk after the other. */
  private final Scheduler io;

  private volatile @Nullable ComputeIntake intake;

  public TimelineIntake(TimelineState state) {
    this.state = state;
    // every task of the timeline's intake thread logs with its ids
    this.io =
        LogContext.scheduler(
            Schedulers.newSingle("sk-" + state.identity().timeline().toString().substring(0, 8)),
            state.identity().tenant(),
            state.identity().timeline());
  }

  /** The intake's state for {@link TimelineStatus#intakeState()}: {@code idle} when none runs. */
  public String stateName() {
    ComputeIntake in = intake;
    return in == null ? "idle" : in.state();
  }

  /** Why pulling failed last, null if it did not (or none runs). */
  public @Nullable String lastError() {
    ComputeIntake in = intake;
    return in == null ? null : in.lastError();
  }

  /** Whether WAL arrives from the compute now (it runs and is neither failing nor behind). */
  public boolean streaming() {
    ComputeIntake in = intake;
    return in != null && !"failed".equals(in.state()) && !"behind".equals(in.state());
  }

  /**
   * Starts pulling from the compute of {@code source.term()}, which must be the term promised here
   * and the term of this log's WAL (the election ended here), and not a term whose compute stopped.
   */
  public void setCompute(ComputeSource source) throws IOException {
    state.lock().lock();
    try {
      state.checkOpen();
      ControlFile c = state.control();
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
      if (state.lastLogTerm(c) != source.term()) {
        throw new SafekeeperException(
            Kind.TERM_CONFLICT,
            "this safekeeper's WAL is of term "
                + state.lastLogTerm(c)
                + ", not "
                + source.term()
                + ": it joins the term by catching up from its peers");
      }
      state.persist(c.withCompute(source));
    } finally {
      state.lock().unlock();
    }
    stop();
    startIfDue();
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
    state.lock().lock();
    try {
      state.checkOpen();
      ControlFile c = state.control();
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
        state.persist(c.withCompute(null).withStoppedComputeTerm(remembered));
      }
    } finally {
      state.lock().unlock();
    }
    stop();
    if (stopped != null) {
      log.info(
          "{}: the compute of term {} ({}:{}) has stopped; no longer pulling from it",
          state,
          term,
          stopped.host(),
          stopped.port());
    }
  }

  // ------------------------------------------------------------------ for the ComputeIntake

  Identity identity() {
    return state.identity();
  }

  /** Where pulling from the compute of {@code term} starts: the end of the log. */
  Lsn intakeStart(long term) {
    state.lock().lock();
    try {
      checkTermForAppend(term);
      return state.wal().writeLsn();
    } finally {
      state.lock().unlock();
    }
  }

  /**
   * Appends WAL pulled from the compute of {@code term} (refused once a higher term is promised).
   */
  public void appendFromCompute(long term, Lsn at, ByteBuffer data) {
    state.lock().lock();
    try {
      state.checkOpen();
      checkTermForAppend(term);
      state.wal().append(at, data);
    } catch (IOException e) {
      // A full disk lands here: the log is back at its last whole record, nothing beyond it is
      // acknowledged, and the intake retries from there (the message becomes its intake_error).
      throw new SafekeeperException(
          Kind.IO,
          "WAL at "
              + at
              + " not stored, resuming at "
              + state.wal().writeLsn()
              + ": "
              + e.getMessage(),
          e);
    } finally {
      state.lock().unlock();
    }
  }

  private void checkTermForAppend(long term) {
    ControlFile c = state.control();
    if (c.promisedTerm() != term || c.compute() == null || c.compute().term() != term) {
      throw new SafekeeperException(
          Kind.TERM_CONFLICT,
          "WAL of term " + term + " refused: term " + c.promisedTerm() + " was promised");
    }
  }

  /** Makes appended WAL durable; returns what may be acknowledged to the compute now. */
  public Lsn flushAndAck() {
    try {
      state.wal().flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    state.recomputeCommit();
    return state.ackLsn();
  }

  /** The flush LSN held back by the lag limits against the pageserver's positions. */
  Lsn ackLsn() {
    return state.ackLsn();
  }

  // ------------------------------------------------------------------ running the intake

  /** Sends what may be acknowledged now to the compute (the limits or the pageserver moved). */
  public void reportAck() {
    ComputeIntake in = intake;
    if (in != null) {
      in.report(state.ackLsn());
    }
  }

  /**
   * Starts pulling if the control file names a compute of the promised term whose WAL this log
   * continues, and nothing pulls yet.
   */
  public void startIfDue() {
    state.lock().lock();
    try {
      ControlFile c = state.control();
      ComputeSource s = c.compute();
      if (state.closed()
          || intake != null
          || s == null
          || s.term() != c.promisedTerm()
          || state.lastLogTerm(c) != s.term()) {
        return;
      }
      intake = new ComputeIntake(this, s, state.config().name(), io, state.config().reconnectMax());
    } finally {
      state.lock().unlock();
    }
  }

  /** Stops pulling; returns once no chunk is being appended and the last flush is done. */
  public void stop() {
    ComputeIntake in;
    state.lock().lock();
    try {
      in = intake;
      intake = null;
    } finally {
      state.lock().unlock();
    }
    if (in != null) {
      in.stop();
    }
  }

  /** Releases the I/O thread (the timeline closed; {@link #stop()} ran before). */
  public void dispose() {
    io.dispose();
  }

  @Override
  public String toString() {
    return state.toString();
  }
}
