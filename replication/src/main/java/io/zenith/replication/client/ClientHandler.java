package io.zenith.replication.client;

import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderException;
import io.netty.util.ReferenceCountUtil;
import io.zenith.replication.pgwire.BackendMessage;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.NoticeResponse;
import io.zenith.replication.pgwire.BackendMessage.NotificationResponse;
import io.zenith.replication.pgwire.BackendMessage.ParameterStatus;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgWireException;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The client end of one connection, last in the pipeline after the codec: runs {@link Exchange}s
 * one at a time, handles asynchronous messages (ParameterStatus, notices, notifications), turns
 * channel failures into {@link PgWireException}s and controls socket reads.
 *
 * <p><b>Reads:</b> auto-read is on while no replication stream controls it (an idle connection
 * notices a server that goes away); a stream switches it through {@link #setAutoRead}.
 *
 * <p>Thread-safety: {@link #submit}, {@link #closeNow}, {@link #parameters}, {@link #isClosed} and
 * {@link #context} may be called from any thread (the state they read is volatile or final); all
 * other methods and all other state belong to the channel's event loop.
 */
final class ClientHandler extends ChannelInboundHandlerAdapter {
  private static final Logger log = LoggerFactory.getLogger(ClientHandler.class);

  final String id;
  final String address;
  private @Nullable ChannelHandlerContext ctx;
  private final ArrayDeque<Exchange> queued = new ArrayDeque<>();
  private @Nullable Exchange active;
  private volatile Map<String, String> parameters = Map.of();
  private volatile @Nullable PgWireException closedCause;
  private @Nullable PgNotice lastNotice;
  private @Nullable PgNotice fatal;
  private boolean closingByClient;
  private final CompletableFuture<Void> closed = new CompletableFuture<>();

  ClientHandler(String id, String address) {
    this.id = id;
    this.address = address;
  }

  /** {@code [c3 127.0.0.1:5432] } — the prefix of every log line and error of this connection. */
  String context() {
    return id + " " + address;
  }

  @Override
  public void handlerAdded(ChannelHandlerContext ctx) {
    this.ctx = ctx;
  }

  Channel channel() {
    return ctx().channel();
  }

  private ChannelHandlerContext ctx() {
    ChannelHandlerContext c = ctx;
    if (c == null) {
      throw new IllegalStateException("handler not in a pipeline");
    }
    return c;
  }

  Map<String, String> parameters() {
    return parameters;
  }

  boolean isClosed() {
    return closedCause != null || !channel().isActive();
  }

  /** Queues an exchange; it starts when those before it are over. Any thread. */
  void submit(Exchange exchange) {
    Channel ch = channel();
    ch.eventLoop()
        .execute(
            () -> {
              if (closedCause == null && !ch.isActive()) {
                // closed, and channelInactive has not run yet
                failAll(closedError());
              }
              PgWireException closed = closedCause;
              if (closed != null) {
                exchange.fail(closed);
                return;
              }
              queued.add(exchange);
              if (active == null) {
                startNext();
              }
            });
  }

  private void startNext() {
    while (active == null && !queued.isEmpty() && closedCause == null) {
      Exchange next = queued.poll();
      active = next;
      try {
        if (next.start(this)) {
          active = null;
        }
      } catch (RuntimeException e) {
        failAndClose(asWireException(e));
      }
    }
  }

  /** Writes and flushes a message; a failed write closes the connection. Event loop only. */
  void send(FrontendMessage message) {
    ctx()
        .writeAndFlush(message)
        .addListener(
            (ChannelFutureListener)
                f -> {
                  if (!f.isSuccess()) {
                    failAndClose(lost("cannot send " + message, f.cause()));
                  }
                });
  }

  /**
   * Switches socket auto-read; returns true if it changed. Event loop only. Turning it off stops
   * the read loop after the current socket read; turning it on reads at once.
   */
  boolean setAutoRead(boolean on) {
    Channel ch = channel();
    if (ch.config().isAutoRead() == on) {
      return false;
    }
    ch.config().setAutoRead(on);
    return true;
  }

  boolean autoRead() {
    return channel().config().isAutoRead();
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (!(msg instanceof BackendMessage m)) {
      ReferenceCountUtil.release(msg);
      failAndClose(PgWireException.protocol(context() + ": unexpected inbound object " + msg));
      return;
    }
    try {
      switch (m) {
        case ParameterStatus p -> {
          Map<String, String> copy = new LinkedHashMap<>(parameters);
          copy.put(p.name(), p.value());
          parameters = Collections.unmodifiableMap(copy);
        }
        case NoticeResponse n -> {
          lastNotice = n.notice();
          log.info("[{}] server notice: {}", context(), n.notice());
        }
        case NotificationResponse n ->
            log.debug("[{}] notification on channel {} ignored", context(), n.channel());
        default -> dispatch(m);
      }
    } catch (PgWireException e) {
      failAndClose(e);
    }
  }

  private void dispatch(BackendMessage m) {
    Exchange a = active;
    if (a == null) {
      if (m instanceof ErrorResponse e) {
        // A FATAL while idle (administrator command, shutdown): the server closes next.
        fatal = e.notice();
        log.warn("[{}] server error while idle: {}", context(), e.notice());
        return;
      }
      throw PgWireException.protocol(context() + ": unexpected message while idle: " + m);
    }
    if (a.onMessage(m)) {
      active = null;
      startNext();
    }
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    if (closedCause == null) {
      failAll(closedError());
    }
    log.debug("[{}] connection closed", context());
    closed.complete(null);
    ctx.fireChannelInactive();
  }

  private PgWireException closedError() {
    String why =
        closingByClient
            ? "connection closed by the client"
            : "connection closed by the server" + lastServerMessage();
    return new PgWireException(PgWireException.Kind.CONNECTION_LOST, context() + ": " + why);
  }

  /** Completes once the connection is closed and every request has failed. */
  CompletableFuture<Void> closed() {
    return closed;
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    PgWireException e = asWireException(cause);
    if (closedCause == null) {
      log.debug("[{}] connection failed: {}", context(), e.getMessage());
    }
    failAndClose(e);
  }

  private PgWireException asWireException(Throwable cause) {
    Throwable c =
        cause instanceof DecoderException && cause.getCause() != null ? cause.getCause() : cause;
    if (c instanceof PgWireException pe) {
      return pe.getMessage() != null && pe.getMessage().startsWith(id + " ")
          ? pe
          : new PgWireException(pe.kind(), context() + ": " + pe.getMessage(), pe);
    }
    if (c instanceof IOException) {
      return lost("connection failed", c);
    }
    return new PgWireException(
        PgWireException.Kind.PROTOCOL, context() + ": internal error: " + c, c);
  }

  private PgWireException lost(String what, Throwable cause) {
    return new PgWireException(
        PgWireException.Kind.CONNECTION_LOST,
        context()
            + ": "
            + what
            + ": "
            + (cause == null
                ? "channel closed"
                : cause.getMessage() != null ? cause.getMessage() : cause.toString())
            + lastServerMessage(),
        cause);
  }

  /** " (last message from the server: FATAL 57P01: ...)" if the server said something. */
  private String lastServerMessage() {
    PgNotice last = fatal != null ? fatal : lastNotice;
    return last != null ? " (last message from the server: " + last + ")" : "";
  }

  /** Fails every exchange with {@code e} and closes the channel. Event loop only. */
  void failAndClose(PgWireException e) {
    failAll(e);
    ChannelHandlerContext c = ctx;
    if (c != null && c.channel().isOpen()) {
      c.close();
    }
  }

  /** Sends Terminate and closes. Any thread. */
  void closeNow() {
    Channel ch = channel();
    ch.eventLoop()
        .execute(
            () -> {
              if (!ch.isActive()) {
                return;
              }
              closingByClient = true;
              failAll(
                  new PgWireException(
                      PgWireException.Kind.CONNECTION_LOST,
                      context() + ": connection closed by the client"));
              ch.writeAndFlush(FrontendMessage.Terminate.INSTANCE)
                  .addListener(ChannelFutureListener.CLOSE);
            });
  }

  private void failAll(PgWireException e) {
    if (closedCause != null) {
      return;
    }
    closedCause = e;
    Exchange a = active;
    active = null;
    if (a != null) {
      a.fail(e);
    }
    Exchange q;
    while ((q = queued.poll()) != null) {
      q.fail(e);
    }
  }
}
