package io.zenith.replication.client;

import io.zenith.replication.pgwire.BackendMessage;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.CopyBothResponse;
import io.zenith.replication.pgwire.BackendMessage.CopyInResponse;
import io.zenith.replication.pgwire.BackendMessage.CopyOutResponse;
import io.zenith.replication.pgwire.BackendMessage.DataRow;
import io.zenith.replication.pgwire.BackendMessage.EmptyQueryResponse;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.ReadyForQuery;
import io.zenith.replication.pgwire.BackendMessage.RowDescription;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import java.nio.ByteBuffer;
import org.jspecify.annotations.Nullable;
import org.reactivestreams.Subscriber;
import org.reactivestreams.Subscription;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One {@code COPY ... TO STDOUT}-style query whose CopyOut data is streamed to a subscriber, as
 * both the connection's current {@link Exchange} and the subscriber's {@link Subscription}. The
 * shape follows {@link WalStreamExchange}.
 *
 * <ul>
 *   <li><b>Thread:</b> everything runs on the connection's event loop; {@code request} and {@code
 *       cancel} from other threads hop there. Buffers and terminal signals are delivered on the
 *       event loop.
 *   <li><b>Demand:</b> while the copy runs, socket auto-read is on only while the subscriber has
 *       outstanding demand or fewer than {@code readAhead} buffers wait in the queue; otherwise the
 *       kernel's receive buffer fills, the TCP window closes and the server stops sending. Before
 *       the CopyOutResponse and after CopyDone the messages are small and reads stay on.
 *   <li><b>Bound:</b> the queue holds at most {@code readAhead} buffers plus those completed by the
 *       socket read during which it reached the limit (one read is at most 64 KiB, and it may
 *       complete one message begun by earlier reads, up to the connection's maximum message size).
 *   <li><b>Ownership:</b> each buffer is a heap {@link ByteBuffer} over the array the decoder
 *       allocated for that CopyData message; nobody else keeps it, so the subscriber owns it and
 *       may modify or keep it. No Netty buffer is involved.
 *   <li><b>Cancel:</b> drops the queue and reads the rest of the response, discarding it, up to
 *       ReadyForQuery: the protocol has no way to stop a CopyOut on the same connection, and the
 *       connection stays usable. (Close the connection to stop a large transfer at once.)
 *   <li><b>Errors:</b> an ErrorResponse (before or during the copy) becomes a {@link
 *       PgServerException} with the server's SQLSTATE, signalled after ReadyForQuery and after the
 *       buffers queued before it; the connection stays usable. A query that does not start exactly
 *       one COPY TO STDOUT (a SELECT, a command, COPY FROM STDIN, which is refused with CopyFail)
 *       fails with {@link IllegalArgumentException}, the connection usable too. CopyBoth is a
 *       protocol error that closes the connection; a lost connection is a {@link PgWireException}
 *       CONNECTION_LOST.
 *   <li><b>Order:</b> buffers in the order the server sent them; completes after CommandComplete
 *       and ReadyForQuery, when the next request on the connection may already run.
 * </ul>
 */
final class CopyOutExchange extends LoopEmitter<ByteBuffer> implements Exchange {
  private static final Logger log = LoggerFactory.getLogger(CopyOutExchange.class);

  private enum Phase {
    QUEUED,
    STARTING,
    COPYING,
    AFTER_COPY,
    FINISHED
  }

  private final ClientHandler handler;
  private final String sql;
  private final int readAhead;

  private Phase phase = Phase.QUEUED;
  private boolean copied;
  private @Nullable Throwable error;
  private long bytesReceived;
  private int maxQueued;

  CopyOutExchange(
      ClientHandler handler, Subscriber<? super ByteBuffer> actual, String sql, int readAhead) {
    if (readAhead < 0) {
      throw new IllegalArgumentException("readAhead must not be negative: " + readAhead);
    }
    super(handler.channel().eventLoop(), actual);
    this.handler = handler;
    this.sql = sql;
    this.readAhead = readAhead;
  }

  @Override
  protected void cancelOnLoop() {
    if (cancelled) {
      return;
    }
    cancelled = true;
    queue.clear();
    if (phase == Phase.COPYING || phase == Phase.STARTING) {
      log.debug("[{}] COPY cancelled by the subscriber; discarding the rest", handler.context());
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
    log.debug("[{}] {}", handler.context(), QueryExchange.abbreviated(sql));
    h.send(new FrontendMessage.Query(sql));
    updateReading();
    return false;
  }

  @Override
  public boolean onMessage(BackendMessage m) {
    switch (m) {
      case CopyOutResponse r -> {
        if (copied) {
          notOneCopy("started a second COPY");
        }
        copied = true;
        phase = Phase.COPYING;
      }
      case CopyData d -> {
        if (phase != Phase.COPYING) {
          throw PgWireException.protocol(handler.context() + ": CopyData outside a COPY");
        }
        bytesReceived += d.data().length;
        if (!cancelled && error == null && d.data().length > 0) {
          queue.add(ByteBuffer.wrap(d.data()));
          maxQueued = Math.max(maxQueued, queue.size());
          drain();
        }
      }
      case CopyDone d -> {
        if (phase != Phase.COPYING) {
          throw PgWireException.protocol(handler.context() + ": CopyDone outside a COPY");
        }
        phase = Phase.AFTER_COPY;
      }
      case CommandComplete c -> {
        if (phase == Phase.STARTING) {
          notOneCopy("completed with tag '" + c.tag() + "' without a COPY");
        }
        phase = Phase.AFTER_COPY;
      }
      case RowDescription r -> notOneCopy("returned rows");
      case DataRow r -> {
        // rows of a statement already reported
      }
      case EmptyQueryResponse e -> notOneCopy("is empty");
      case CopyInResponse c -> {
        notOneCopy("started COPY FROM STDIN");
        handler.send(new FrontendMessage.CopyFail("COPY FROM STDIN is not supported by copyOut"));
      }
      case CopyBothResponse c ->
          throw PgWireException.protocol(
              handler.context()
                  + ": query "
                  + QueryExchange.abbreviated(sql)
                  + " started a CopyBoth stream; use ReplicationClient.startReplication");
      case ErrorResponse e -> {
        if (error == null) {
          error =
              new PgServerException(
                  handler.context() + ": query " + QueryExchange.abbreviated(sql), e.notice());
        }
        if (phase == Phase.COPYING) {
          phase = Phase.AFTER_COPY; // the server ends the copy with the error
        }
      }
      case ReadyForQuery r -> {
        if (!copied && error == null) {
          notOneCopy("did not start a COPY");
        }
        phase = Phase.FINISHED;
        handler.setAutoRead(true);
        drain();
        return true;
      }
      default ->
          throw PgWireException.protocol(
              handler.context() + ": unexpected message during a COPY TO STDOUT: " + m);
    }
    updateReading();
    return false;
  }

  private void notOneCopy(String what) {
    if (error == null) {
      error =
          new IllegalArgumentException(
              handler.context()
                  + ": query "
                  + QueryExchange.abbreviated(sql)
                  + " "
                  + what
                  + "; copyOut needs exactly one COPY TO STDOUT");
    }
  }

  @Override
  public void fail(PgWireException e) {
    if (error == null) {
      error = e; // else the server's error, which says more, e.g. FATAL before closing
    }
    phase = Phase.FINISHED;
    drain();
  }

  // ---- helpers (event loop) ----

  @Override
  protected boolean finished() {
    return phase == Phase.FINISHED;
  }

  @Override
  protected @Nullable Throwable failure() {
    return error;
  }

  @Override
  protected void updateReading() {
    boolean want;
    switch (phase) {
      case STARTING, AFTER_COPY -> want = true;
      case COPYING -> want = cancelled || demand > 0 || queue.size() < readAhead;
      default -> {
        return;
      }
    }
    handler.setAutoRead(want);
  }

  /** Bytes of COPY data received so far (tests). Event loop. */
  long bytesReceived() {
    return bytesReceived;
  }

  /** Most buffers ever queued at once (tests). Event loop. */
  int maxQueued() {
    return maxQueued;
  }

  @Override
  public String toString() {
    return "CopyOut[" + handler.context() + ", " + QueryExchange.abbreviated(sql) + "]";
  }
}
