package io.zenith.replication.safekeeper.internal.serving;

import io.netty.buffer.Unpooled;
import io.zenith.replication.safekeeper.SafekeeperException;
import io.zenith.replication.safekeeper.SafekeeperException.Kind;
import io.zenith.replication.safekeeper.internal.TimelineState;
import io.zenith.replication.server.WalPiece;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.WalLog;
import java.nio.ByteBuffer;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;

/**
 * What a timeline serves: committed WAL to pageservers and standbys ({@link #readCommitted}), who
 * must never see WAL a later election could truncate, and flushed WAL up to a record end to peers
 * copying it ({@link #readFlushed}).
 *
 * <p>Thread-safety: thread-safe and stateless beyond the timeline's state; the streams it returns
 * are cold and each subscription reads on its own.
 */
public final class TimelineReads {
  private static final int READ_CHUNK = 128 * 1024;

  private final TimelineState state;

  public TimelineReads(TimelineState state) {
    this.state = state;
  }

  /**
   * The WAL from {@code from} on, as far as it is committed, tailing. Blocking reads run on {@code
   * readers}.
   *
   * <ul>
   *   <li><b>Thread:</b> reads and emissions on {@code readers}.
   *   <li><b>Demand:</b> chunks of at most 128 KiB, read as they are requested.
   *   <li><b>Wake-ups:</b> level-triggered ({@link WalLog#tail}): the flush record end's and the
   *       commit LSN's updates only wake the tail, which then reads {@link
   *       TimelineState#servableLsn()} itself (each position is set before its update is emitted).
   *   <li><b>Cancel:</b> stops reading; pieces already emitted are the subscriber's.
   *   <li><b>Order:</b> contiguous pieces in LSN order; never beyond the servable LSN. Completes
   *       when the timeline closes.
   * </ul>
   */
  public Flux<WalPiece> readCommitted(Lsn from, Scheduler readers) {
    checkReadable(from);
    WalLog wal = state.wal();
    // Both positions only wake the tail, which then reads servableLsn() itself (each is set
    // before its update is emitted). They change on the intake's and gossip's threads: hop to a
    // reader so that the reads they trigger do not run there (only LSNs cross this publishOn).
    Flux<Lsn> changes =
        Flux.merge(wal.flushRecordEndUpdates(), state.commitUpdates()).publishOn(readers, 1);
    return pieces(from, wal.tail(from, state::servableLsn, changes, READ_CHUNK))
        .subscribeOn(readers);
  }

  /**
   * The durable WAL from {@code from} up to {@code upTo}, which must be at or below the end of its
   * last complete durable record: for peers copying it. Reads on {@code readers}, one chunk per
   * request, in LSN order.
   */
  public Flux<WalPiece> readFlushed(Lsn from, Lsn upTo, Scheduler readers) {
    checkReadable(from);
    WalLog wal = state.wal();
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
    Lsn first = state.oldestLsn();
    if (from.isBefore(first)) {
      throw new SafekeeperException(
          Kind.INVALID,
          "WAL at " + from + " is not here any more (the oldest held is at " + first + ")");
    }
    if (from.isAfter(state.wal().flushLsn())) {
      throw new SafekeeperException(
          Kind.INVALID, "WAL at " + from + " requested, but it ends at " + state.wal().flushLsn());
    }
  }
}
