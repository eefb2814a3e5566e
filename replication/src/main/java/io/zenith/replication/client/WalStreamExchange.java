package io.zenith.replication.client;

import io.zenith.replication.pgwire.BackendMessage;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.CopyBothResponse;
import io.zenith.replication.pgwire.BackendMessage.DataRow;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.ReadyForQuery;
import io.zenith.replication.pgwire.BackendMessage.RowDescription;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.pgwire.ReplicationMessage;
import io.zenith.replication.pgwire.ReplicationMessage.PrimaryKeepalive;
import io.zenith.replication.pgwire.ReplicationMessage.XLogData;
import io.zenith.wal.Lsn;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;
import org.reactivestreams.Subscriber;
import org.reactivestreams.Subscription;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One START_REPLICATION stream, as both the connection's current {@link Exchange} and the
 * subscriber's {@link Subscription}.
 *
 * <ul>
 *   <li><b>Thread:</b> everything runs on the connection's event loop; {@code request} and {@code
 *       cancel} from other threads hop there. Chunks are signalled on the event loop.
 *   <li><b>Demand:</b> socket auto-read is on while the subscriber has outstanding demand or fewer
 *       than {@code maxBufferedChunks} chunks wait in the queue (the read-ahead); otherwise it is
 *       off, the kernel's receive buffer fills, the TCP window closes and the walsender stops
 *       sending. Chunks are handed over as demand arrives.
 *   <li><b>Bound:</b> reads stop within the socket read during which the queue reached the limit,
 *       so the queue holds at most {@code maxBufferedChunks} chunks plus those that one socket read
 *       completed: at most {@code maxBufferedChunks} × 128 KiB + 192 KiB of WAL (a read is at most
 *       64 KiB with Netty's adaptive allocator, and it may complete one message of up to 128 KiB
 *       that earlier reads began). The decoder holds at most one incomplete message besides.
 *   <li><b>Cancel / error:</b> cancel drops the queue, sends CopyDone and reads on until the
 *       server's ReadyForQuery, discarding WAL still in flight; the connection stays usable. A
 *       server ErrorResponse or a lost connection is signalled after the queued chunks, as the
 *       subscriber asks for them.
 *   <li><b>Order:</b> chunks in LSN order, contiguous (a gap is a protocol error). Completes after
 *       the server ends the stream: CopyDone (end of a historic timeline; an optional next-timeline
 *       row and ReadyForQuery follow), or CommandComplete without CopyDone (a walsender shutting
 *       down cleanly once the standby confirmed everything it was sent; the connection then
 *       closes).
 * </ul>
 *
 * <p>Status updates: one when streaming starts, then every {@code statusInterval}, on {@link
 * ReplicationClient#reportProgress}, and in answer to keepalives that request a reply. They are
 * written even while reads are paused, so the server's {@code wal_sender_timeout} does not expire
 * on a slow subscriber.
 */
final class WalStreamExchange extends LoopEmitter<WalChunk> implements Exchange {
  private static final Logger log = LoggerFactory.getLogger(WalStreamExchange.class);

  private enum Phase {
    QUEUED,
    STARTING,
    STREAMING,
    ENDING,
    FINISHED
  }

  private final ReplicationClient client;
  private final ClientHandler handler;
  private final String command;
  private final ReplicationClient.Progress initial;
  private final int maxBufferedChunks;
  private final StreamMetrics metrics;

  private Phase phase = Phase.QUEUED;
  private boolean clientCopyDone;
  private boolean serverShutdown;
  private @Nullable PgWireException error;
  private Lsn expected;
  private @Nullable ScheduledFuture<?> timer;

  WalStreamExchange(
      ReplicationClient client,
      ClientHandler handler,
      Subscriber<? super WalChunk> actual,
      String command,
      Lsn start,
      ReplicationClient.Progress initial) {
    super(handler.channel().eventLoop(), actual);
    this.client = client;
    this.handler = handler;
    this.command = command;
    this.initial = initial;
    this.expected = start;
    this.maxBufferedChunks = client.options().maxBufferedChunks();
    this.metrics = client.metrics();
  }

  @Override
  protected void cancelOnLoop() {
    if (cancelled) {
      return;
    }
    cancelled = true;
    clearQueue();
    if (phase == Phase.STREAMING) {
      log.debug("[{}] stream cancelled by the subscriber; ending COPY", handler.context());
      sendCopyDone();
      phase = Phase.ENDING;
      stopTimer();
    }
    updateReading();
  }

  // ---- Exchange (event loop) ----

  @Override
  public boolean start(ClientHandler h) {
    if (cancelled) {
      phase = Phase.FINISHED;
      return true;
    }
    phase = Phase.STARTING;
    log.debug("[{}] {}", handler.context(), command);
    h.send(new FrontendMessage.Query(command));
    updateReading();
    return false;
  }

  @Override
  public boolean onMessage(BackendMessage m) {
    switch (m) {
      case CopyBothResponse r -> {
        expectPhase(m, Phase.STARTING);
        phase = Phase.STREAMING;
        if (cancelled) {
          sendCopyDone();
          phase = Phase.ENDING;
        } else {
          client.streamStarted(this, initial);
          sendStatus(false);
          long interval = client.options().statusInterval().toNanos();
          if (interval > 0) {
            timer =
                loop.scheduleAtFixedRate(
                    () -> sendStatus(false), interval, interval, TimeUnit.NANOSECONDS);
          }
        }
      }
      case CopyData d -> {
        expectPhase(m, Phase.STREAMING, Phase.ENDING);
        if (!clientCopyDone) {
          switch (ReplicationMessage.parseServerMessage(d.data())) {
            case XLogData x -> onWal(x);
            case PrimaryKeepalive k -> onKeepalive(k);
            default ->
                throw PgWireException.protocol(
                    handler.context() + ": unexpected replication message from the server");
          }
        }
      }
      case CopyDone d -> {
        expectPhase(m, Phase.STREAMING, Phase.ENDING);
        log.debug("[{}] server ended the stream at {}", handler.context(), expected);
        if (!clientCopyDone) {
          sendCopyDone();
        }
        phase = Phase.ENDING;
        stopTimer();
      }
      case RowDescription r -> {
        // the next-timeline result set after the server ended the stream
      }
      case DataRow r -> onNextTimeline(r);
      case CommandComplete c -> {
        if (phase == Phase.STREAMING) {
          // Without CopyDone: a walsender shutting down once the standby confirmed all it sent;
          // it exits without ReadyForQuery. The stream is over, not failed.
          log.debug("[{}] server ended the stream at {} (shutdown)", handler.context(), expected);
          serverShutdown = true;
          phase = Phase.ENDING;
          stopTimer();
        }
        // otherwise START_REPLICATION is over; ReadyForQuery follows
      }
      case ErrorResponse e -> {
        if (error == null && !cancelled) {
          error = new PgServerException(handler.context() + ": " + command, e.notice());
        }
        if (phase == Phase.STREAMING) {
          phase = Phase.ENDING;
        }
        stopTimer();
      }
      case ReadyForQuery r -> {
        phase = Phase.FINISHED;
        stopTimer();
        client.streamEnded(this);
        handler.setAutoRead(true);
        metrics.reading = true;
        drain();
        return true;
      }
      default ->
          throw PgWireException.protocol(
              handler.context() + ": unexpected message during START_REPLICATION: " + m);
    }
    updateReading();
    return false;
  }

  private void expectPhase(BackendMessage m, Phase... allowed) {
    for (Phase p : allowed) {
      if (phase == p) {
        return;
      }
    }
    throw PgWireException.protocol(
        handler.context() + ": unexpected " + m + " in stream phase " + phase);
  }

  private void onWal(XLogData x) {
    if (cancelled) {
      return;
    }
    if (!x.dataStart().equals(expected)) {
      throw PgWireException.protocol(
          handler.context()
              + ": WAL from the server is not contiguous: expected data at "
              + expected
              + ", got "
              + x.dataStart());
    }
    expected = x.dataStart().plus(x.length());
    serverReported(x.walEnd());
    metrics.chunksReceived++;
    metrics.bytesReceived += x.length();
    metrics.receivedEnd = expected.value();
    if (x.length() == 0) {
      return;
    }
    queue.add(
        new WalChunk(
            x.dataStart(), x.walEnd(), x.sendTimeMicros(), x.array(), x.offset(), x.length()));
    metrics.bufferedChunks = queue.size();
    long bytes = metrics.bufferedBytes + x.length();
    metrics.bufferedBytes = bytes;
    if (queue.size() > metrics.maxBufferedChunksSeen) {
      metrics.maxBufferedChunksSeen = queue.size();
    }
    if (bytes > metrics.maxBufferedBytesSeen) {
      metrics.maxBufferedBytesSeen = bytes;
    }
    drain();
  }

  private void onKeepalive(PrimaryKeepalive k) {
    serverReported(k.walEnd());
    if (k.replyRequested()) {
      metrics.keepalivesAnswered++;
      sendStatus(false);
    }
  }

  private void serverReported(Lsn walEnd) {
    metrics.serverWalEnd = Math.max(metrics.serverWalEnd, walEnd.value());
  }

  private void onNextTimeline(DataRow r) {
    if (r.values().size() == 2 && r.values().get(0) != null && r.values().get(1) != null) {
      try {
        long tli = Long.parseLong(new String(r.values().get(0), StandardCharsets.US_ASCII));
        Lsn at = Lsn.parse(new String(r.values().get(1), StandardCharsets.US_ASCII));
        client.timelineSwitch(new ReplicationClient.TimelineSwitch(tli, at));
        return;
      } catch (IllegalArgumentException e) {
        // fall through to the protocol error
      }
    }
    throw PgWireException.protocol(
        handler.context() + ": malformed next-timeline row after the end of streaming");
  }

  @Override
  public void fail(PgWireException e) {
    if (error == null && !serverShutdown) {
      error = e;
    }
    phase = Phase.FINISHED;
    stopTimer();
    client.streamEnded(this);
    drain();
  }

  // ---- helpers (event loop) ----

  /** Sends a standby status update with the client's reported positions. */
  void sendStatus(boolean replyRequested) {
    if (phase != Phase.STREAMING || clientCopyDone) {
      return;
    }
    handler.send(client.statusUpdate(replyRequested).toCopyData());
    metrics.statusUpdatesSent++;
  }

  private void sendCopyDone() {
    clientCopyDone = true;
    handler.send(CopyDone.INSTANCE);
  }

  private void stopTimer() {
    ScheduledFuture<?> t = timer;
    if (t != null) {
      t.cancel(false);
      timer = null;
    }
  }

  private void clearQueue() {
    queue.clear();
    metrics.bufferedChunks = 0;
    metrics.bufferedBytes = 0;
  }

  @Override
  protected void dequeued(WalChunk c) {
    metrics.bufferedChunks = queue.size();
    metrics.bufferedBytes = metrics.bufferedBytes - c.length();
  }

  /** An error ends the stream as soon as the chunks before it are delivered. */
  @Override
  protected boolean finished() {
    return error != null || phase == Phase.FINISHED;
  }

  @Override
  protected @Nullable Throwable failure() {
    return error;
  }

  @Override
  protected void updateReading() {
    boolean want;
    metrics.waiting = phase == Phase.STREAMING && !cancelled && demand > 0 && queue.isEmpty();
    switch (phase) {
      case STARTING, ENDING -> want = true;
      case STREAMING -> want = !cancelled && (demand > 0 || queue.size() < maxBufferedChunks);
      default -> {
        return;
      }
    }
    if (handler.setAutoRead(want)) {
      if (want) {
        metrics.readResumes++;
      } else {
        metrics.readPauses++;
      }
    }
    metrics.reading = want;
  }

  @Override
  public String toString() {
    return "WalStream[" + handler.context() + ", " + command + ", phase=" + phase + "]";
  }
}
