package io.zenith.replication.server;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.CopyBothResponse;
import io.zenith.replication.pgwire.BackendMessage.DataRow;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.Field;
import io.zenith.replication.pgwire.BackendMessage.RowDescription;
import io.zenith.replication.pgwire.BackendMessageEncoder;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.FrontendMessage.Terminate;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWire;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.pgwire.ReplicationMessage;
import io.zenith.replication.pgwire.ReplicationMessage.PrimaryKeepalive;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyMessage;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyStatusUpdate;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.wal.Lsn;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server side of one START_REPLICATION: a CopyBoth stream of XLogData pulled from the
 * response's WAL source, keepalives and the replication timeout, the standby's messages, and the
 * end of the stream as PostgreSQL 15's walsender ends it (see {@link QueryResponse.Replication}).
 *
 * <p>Reads: while the stream runs the session reads the client's messages at once (they are small,
 * and the timeout depends on seeing them); after the client's CopyDone, messages wait for the end
 * of the command like any other. Writes: one piece at a time, only while writable (see {@link
 * DemandWriter}).
 *
 * <p>Not thread-safe: confined to the channel's event loop.
 */
final class WalSenderStream extends DemandWriter<WalPiece> implements ClientMessageReader {
  private static final Logger log = LoggerFactory.getLogger(WalSenderStream.class);
  private static final int INT8_OID = 20;

  private final ServerConnectionHandler session;
  private final QueryResponse.Replication response;
  private final long keepaliveNanos;
  private final long timeoutNanos;

  private Lsn next;
  private long lastSentNanos;
  private long lastReceivedNanos;
  private boolean waitingForReply;
  private boolean clientDone;
  private boolean serverDone;
  private boolean finished;
  private @Nullable ScheduledFuture<?> timer;
  private long messages;
  private long bytes;

  WalSenderStream(
      ChannelHandlerContext ctx,
      ServerConnectionHandler session,
      PgWireServerOptions options,
      QueryResponse.Replication response) {
    super(ctx);
    this.session = session;
    this.response = response;
    this.keepaliveNanos = options.keepaliveInterval().toNanos();
    this.timeoutNanos = options.walSenderTimeout().toNanos();
    this.next = response.start();
  }

  /** Sends CopyBothResponse and subscribes to the source. */
  void start() {
    ctx.writeAndFlush(new CopyBothResponse(0, List.of()));
    long now = System.nanoTime();
    lastSentNanos = now;
    lastReceivedNanos = now;
    log.debug("[{}] streaming WAL from {}", session.context(), next);
    scheduleTimer(now);
    pull(response.wal());
  }

  /** Whether client messages go to this stream now (until the client's CopyDone). */
  @Override
  public boolean readsClientMessages() {
    return !finished && !clientDone;
  }

  // ---- the source ----

  @Override
  void write(WalPiece piece) {
    if (!piece.start().equals(next)) {
      notContiguous(piece);
      return;
    }
    Lsn walEnd;
    try {
      walEnd = walEnd(piece.end());
    } catch (RuntimeException e) {
      piece.release();
      throw e;
    }
    ByteBuf data = piece.data();
    int n = data.readableBytes();
    long sendTime = PgWire.toPgMicros(Instant.now());
    for (int off = 0; off < n; off += QueryResponse.Replication.MAX_XLOG_DATA) {
      int len = Math.min(QueryResponse.Replication.MAX_XLOG_DATA, n - off);
      ByteBuf header = ctx.alloc().buffer(BackendMessageEncoder.XLOG_DATA_FRAME_HEADER_SIZE);
      BackendMessageEncoder.xLogDataHeader(header, next.plus(off), walEnd, sendTime, len);
      ctx.write(header);
      ctx.write(data.retainedSlice(data.readerIndex() + off, len));
      messages++;
    }
    piece.release();
    next = next.plus(n);
    bytes += n;
    if (n > 0) {
      ctx.flush();
      lastSentNanos = System.nanoTime();
    }
  }

  /** A gap or an overlap would corrupt what the client builds from the WAL: end the stream. */
  private void notContiguous(WalPiece piece) {
    String got = piece.toString();
    piece.release();
    log.warn(
        "[{}] WAL source is not contiguous: expected {}, got {}", session.context(), next, got);
    cancel();
    fail(
        PgNotice.error(
            SqlState.INTERNAL_ERROR,
            "internal error: WAL source is not contiguous: expected WAL from "
                + next
                + ", got "
                + got));
  }

  @Override
  void sourceCompleted() {
    if (finished) {
      return;
    }
    log.debug(
        "[{}] WAL source ended at {}; waiting for the client's CopyDone", session.context(), next);
    serverDone = true;
    ctx.writeAndFlush(CopyDone.INSTANCE);
  }

  @Override
  void sourceFailed(Throwable t) {
    if (finished) {
      return;
    }
    PgNotice notice = ServerConnectionHandler.errorNotice(t, "WAL streaming failed: ");
    if (t instanceof PgServerException) {
      // The handler's answer (e.g. WAL already removed), not a failure of ours.
      log.info("[{}] WAL stream at {} ends with {}", session.context(), next, notice);
    } else {
      log.warn("[{}] WAL source failed at {}: {}", session.context(), next, notice, t);
    }
    fail(notice);
  }

  /** Ends the command with an error; the session goes on, as PostgreSQL's does. */
  private void fail(PgNotice notice) {
    finished = true;
    stopTimer();
    ctx.write(new ErrorResponse(notice));
    session.finishQuery();
  }

  @Override
  void sessionClosed() {
    finished = true;
    stopTimer();
    if (cancel()) {
      log.debug(
          "[{}] WAL stream cancelled at {} after {} bytes: connection closed",
          session.context(),
          next,
          bytes);
    }
  }

  // ---- the client ----

  /** A message from the client while the stream runs. */
  @Override
  public void onClientMessage(FrontendMessage m) {
    lastReceivedNanos = System.nanoTime();
    waitingForReply = false;
    switch (m) {
      case CopyData d -> {
        StandbyMessage message;
        try {
          message = ReplicationMessage.parseStandbyMessage(d.data());
        } catch (PgWireException e) {
          session.protocolViolation(e.getMessage());
          return;
        }
        if (message instanceof StandbyStatusUpdate u && u.replyRequested() && !serverDone) {
          keepalive(false);
        }
        response.feedback().accept(message);
      }
      case CopyDone d -> {
        clientDone = true;
        if (cancel()) {
          log.debug("[{}] client ended the stream at {}", session.context(), next);
        }
        finish();
      }
      case Terminate t -> session.close("client terminated the session during streaming");
      default -> session.protocolViolation("unexpected " + m + " during streaming replication");
    }
  }

  /**
   * Both sides are done: CopyDone if not sent yet, the next-timeline row of a historic timeline,
   * then PostgreSQL's two CommandCompletes (StartReplication's and exec_replication_command's).
   */
  private void finish() {
    finished = true;
    stopTimer();
    if (!serverDone) {
      serverDone = true;
      ctx.write(CopyDone.INSTANCE);
    }
    QueryResponse.Replication.NextTimeline nt = response.nextTimeline();
    if (nt != null) {
      ctx.write(
          new RowDescription(
              List.of(
                  new Field("next_tli", 0, (short) 0, INT8_OID, (short) 8, -1, (short) 0),
                  Field.text("next_tli_startpos"))));
      List<byte[]> values = new ArrayList<>();
      values.add(Integer.toUnsignedString(nt.timeline()).getBytes(StandardCharsets.US_ASCII));
      values.add(nt.start().toString().getBytes(StandardCharsets.US_ASCII));
      ctx.write(new DataRow(values));
    }
    ctx.write(new CommandComplete("START_STREAMING"));
    ctx.write(new CommandComplete("START_REPLICATION"));
    log.debug(
        "[{}] WAL stream ended at {}: {} bytes in {} messages",
        session.context(),
        next,
        bytes,
        messages);
    session.finishQuery();
  }

  // ---- keepalives and the timeout ----

  private Lsn walEnd(Lsn sent) {
    Lsn end = response.walEnd().get();
    return end == null ? sent : Lsn.max(end, sent);
  }

  private void keepalive(boolean replyRequested) {
    PrimaryKeepalive k =
        new PrimaryKeepalive(walEnd(next), PgWire.toPgMicros(Instant.now()), replyRequested);
    ctx.writeAndFlush(k.toCopyData());
    lastSentNanos = System.nanoTime();
  }

  private void tick() {
    timer = null;
    if (finished) {
      return;
    }
    try {
      checkTimeouts();
    } catch (RuntimeException e) {
      // The handler's walEnd supplier failed: a bug; end this session, not the event loop's timer.
      log.warn("[{}] keepalive failed", session.context(), e);
      session.fatal(SqlState.INTERNAL_ERROR, "internal error: " + e);
    }
  }

  private void checkTimeouts() {
    long now = System.nanoTime();
    if (timeoutNanos > 0 && now - lastReceivedNanos >= timeoutNanos) {
      // As PostgreSQL: a silent client usually means a broken network, so no error is sent.
      log.warn(
          "[{}] terminating walsender connection due to replication timeout: nothing from the"
              + " client for {} ms (at {}, {} bytes sent)",
          session.context(),
          TimeUnit.NANOSECONDS.toMillis(now - lastReceivedNanos),
          next,
          bytes);
      session.close("replication timeout");
      return;
    }
    if (!serverDone) {
      if (timeoutNanos > 0 && !waitingForReply && now - lastReceivedNanos >= timeoutNanos / 2) {
        keepalive(true);
        waitingForReply = true;
      } else if (keepaliveNanos > 0 && now - lastSentNanos >= keepaliveNanos) {
        if (ctx.channel().isWritable()) {
          keepalive(false);
        } else {
          // The client is not reading what was sent: another message would only queue up.
          lastSentNanos = now;
        }
      }
    }
    scheduleTimer(now);
  }

  /** Schedules the next tick at the earliest deadline: timeout, reply request or keepalive. */
  private void scheduleTimer(long now) {
    long at = Long.MAX_VALUE;
    if (timeoutNanos > 0) {
      at = lastReceivedNanos + timeoutNanos;
      if (!waitingForReply && !serverDone) {
        at = Math.min(at, lastReceivedNanos + timeoutNanos / 2);
      }
    }
    if (keepaliveNanos > 0 && !serverDone) {
      at = Math.min(at, lastSentNanos + keepaliveNanos);
    }
    if (at == Long.MAX_VALUE) {
      return;
    }
    long delay = Math.max(at - now, TimeUnit.MILLISECONDS.toNanos(1));
    timer = ctx.executor().schedule(this::tick, delay, TimeUnit.NANOSECONDS);
  }

  private void stopTimer() {
    ScheduledFuture<?> t = timer;
    if (t != null) {
      t.cancel(false);
      timer = null;
    }
  }
}
