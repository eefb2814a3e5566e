package io.zenith.replication.server;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.CopyBothResponse;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessageEncoder;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.FrontendMessage.CopyFail;
import io.zenith.replication.pgwire.FrontendMessage.Terminate;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.SqlState;
import java.util.ArrayDeque;
import java.util.List;
import org.jspecify.annotations.Nullable;
import org.reactivestreams.Publisher;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.FluxSink;

/**
 * The server side of a {@link QueryResponse.CopyBoth}: the client's CopyData payloads go into the
 * handler's inbound {@link Flux}, each buffer the handler emits goes out as one CopyData.
 *
 * <p><b>Reads:</b> the session reads the client only while the inbound flux has outstanding demand
 * ({@link #wantsClientMessages()}), so a client that pipelines more than the handler takes is
 * stopped by TCP; at most one socket read of messages waits here beyond the demand. <b>Writes:</b>
 * one buffer at a time, only while writable ({@link DemandWriter}).
 *
 * <p><b>End:</b> the client's CopyDone completes the inbound flux; when the handler's flux
 * completes, the server sends CopyDone, CommandComplete {@code COPY 0} (after the client's CopyDone
 * if it has not come yet) and ReadyForQuery. A handler that fails with a FATAL {@link
 * PgServerException} closes the connection after that notice; any other failure is an ErrorResponse
 * (its SQLSTATE, else XX000) and the session goes on (CopyData still on its way is ignored, as
 * PostgreSQL does). CopyFail ends the stream with 57014; Terminate closes the connection; any other
 * message is a protocol violation.
 *
 * <p>Not thread-safe: confined to the channel's event loop (inbound demand hops there).
 */
final class CopyBothStream extends DemandWriter<ByteBuf> implements ClientMessageReader {
  private static final Logger log = LoggerFactory.getLogger(CopyBothStream.class);

  private final ServerConnectionHandler session;
  private final QueryResponse.CopyBoth response;
  private final ArrayDeque<byte[]> early = new ArrayDeque<>();
  private @Nullable FluxSink<byte[]> inbound;
  private boolean inboundGone;
  private boolean clientDone;
  private boolean serverDone;
  private boolean finished;
  private long received;
  private long sent;

  CopyBothStream(
      ChannelHandlerContext ctx, ServerConnectionHandler session, QueryResponse.CopyBoth response) {
    super(ctx);
    this.session = session;
    this.response = response;
  }

  /** Sends CopyBothResponse and subscribes to the handler's answers. */
  void start() {
    ctx.writeAndFlush(new CopyBothResponse(1, List.of()));
    Flux<byte[]> in =
        Flux.create(
            sink -> {
              sink.onRequest(n -> onLoop(session::updateReading));
              sink.onDispose(() -> onLoop(() -> inboundGone = true));
              onLoop(() -> attach(sink));
            },
            FluxSink.OverflowStrategy.BUFFER);
    Publisher<ByteBuf> out;
    try {
      out = response.exchange().apply(in);
    } catch (RuntimeException e) {
      out = Flux.error(e);
    }
    pull(out);
  }

  private void attach(FluxSink<byte[]> sink) {
    inbound = sink;
    while (!early.isEmpty()) {
      sink.next(early.poll());
    }
    if (clientDone) {
      sink.complete();
    }
    session.updateReading();
  }

  @Override
  public boolean readsClientMessages() {
    return !finished && !clientDone;
  }

  @Override
  public boolean wantsClientMessages() {
    FluxSink<byte[]> s = inbound;
    return s != null && !inboundGone && s.requestedFromDownstream() > 0;
  }

  @Override
  public void onClientMessage(FrontendMessage m) {
    switch (m) {
      case CopyData d -> {
        received++;
        FluxSink<byte[]> s = inbound;
        if (s == null) {
          early.add(d.data());
        } else if (!inboundGone) {
          s.next(d.data());
        }
      }
      case CopyDone d -> {
        clientDone = true;
        FluxSink<byte[]> s = inbound;
        if (s != null) {
          s.complete();
        }
        if (serverDone) {
          finish();
        }
      }
      case CopyFail f -> {
        cancel();
        fail(PgNotice.error(SqlState.QUERY_CANCELED, "COPY from stdin failed: " + f.message()));
      }
      case Terminate t -> session.close("client terminated the session during COPY");
      default -> session.protocolViolation("unexpected " + m + " during COPY");
    }
  }

  @Override
  void write(ByteBuf buf) {
    int n = buf.readableBytes();
    ByteBuf header = ctx.alloc().buffer(5);
    BackendMessageEncoder.copyDataHeader(header, n);
    ctx.write(header);
    ctx.writeAndFlush(buf);
    sent++;
  }

  @Override
  void sourceCompleted() {
    if (finished) {
      return;
    }
    serverDone = true;
    ctx.writeAndFlush(CopyDone.INSTANCE);
    if (clientDone) {
      finish();
    }
  }

  @Override
  void sourceFailed(Throwable t) {
    if (finished) {
      return;
    }
    PgNotice notice = ServerConnectionHandler.errorNotice(t, "internal error: ");
    if (t instanceof PgServerException) {
      log.info("[{}] COPY stream ends with {}", session.context(), notice);
    } else {
      log.warn("[{}] COPY stream failed after {} messages", session.context(), sent, t);
    }
    if (notice.severity().equals("FATAL")) {
      finished = true;
      session.fatal(notice.sqlState(), notice.message());
      return;
    }
    fail(notice);
  }

  private void fail(PgNotice notice) {
    finished = true;
    completeInbound();
    ctx.write(new ErrorResponse(notice));
    session.finishQuery();
  }

  private void finish() {
    finished = true;
    log.debug("[{}] COPY done: {} messages in, {} out", session.context(), received, sent);
    ctx.write(new CommandComplete("COPY 0"));
    session.finishQuery();
  }

  private void completeInbound() {
    FluxSink<byte[]> s = inbound;
    if (s != null && !inboundGone) {
      s.complete();
    }
    early.clear();
  }

  @Override
  void sessionClosed() {
    finished = true;
    completeInbound();
    if (cancel()) {
      log.debug(
          "[{}] COPY cancelled after {} messages: connection closed", session.context(), sent);
    }
  }
}
