package io.zenith.replication.server;

import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderException;
import io.netty.util.ReferenceCountUtil;
import io.zenith.replication.auth.AuthException;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationCleartextPassword;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationOk;
import io.zenith.replication.pgwire.BackendMessage.BackendKeyData;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.CopyOutResponse;
import io.zenith.replication.pgwire.BackendMessage.DataRow;
import io.zenith.replication.pgwire.BackendMessage.EmptyQueryResponse;
import io.zenith.replication.pgwire.BackendMessage.EncryptionRefused;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.Field;
import io.zenith.replication.pgwire.BackendMessage.NegotiateProtocolVersion;
import io.zenith.replication.pgwire.BackendMessage.ParameterStatus;
import io.zenith.replication.pgwire.BackendMessage.ReadyForQuery;
import io.zenith.replication.pgwire.BackendMessage.RowDescription;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.FrontendMessage.CancelRequest;
import io.zenith.replication.pgwire.FrontendMessage.CopyFail;
import io.zenith.replication.pgwire.FrontendMessage.GssEncRequest;
import io.zenith.replication.pgwire.FrontendMessage.PasswordMessage;
import io.zenith.replication.pgwire.FrontendMessage.Query;
import io.zenith.replication.pgwire.FrontendMessage.SslRequest;
import io.zenith.replication.pgwire.FrontendMessage.StartupMessage;
import io.zenith.replication.pgwire.FrontendMessage.Terminate;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.pgwire.QueryText;
import io.zenith.replication.pgwire.SqlState;
import java.io.IOException;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;

/**
 * The server end of one connection: startup, authentication and the simple-query cycle.
 *
 * <p><b>Reads:</b> auto-read is on while the session waits for a message and off while a query (or
 * a password check) is in progress; messages that arrived in the same socket read wait in a queue
 * and are handled in order once the response is complete. So a client cannot make the server buffer
 * more than one socket read of input, and a slow handler slows the client down.
 *
 * <p><b>Writes:</b> rows and tags are written as they are produced; a CopyOut or replication stream
 * is pulled one item at a time while the channel is writable ({@link DemandWriter}). While a
 * replication stream runs, the client's messages are read at once and go to it ({@link
 * WalSenderStream}); while a CopyBoth stream runs, as fast as it takes them ({@link
 * CopyBothStream}).
 *
 * <p>Not thread-safe: confined to the channel's event loop; results from handlers on other threads
 * hop there.
 */
final class ServerConnectionHandler extends ChannelInboundHandlerAdapter {
  private static final Logger log = LoggerFactory.getLogger(ServerConnectionHandler.class);
  private static final SecureRandom RANDOM = new SecureRandom();

  private enum State {
    STARTUP,
    AUTHENTICATING,
    READY,
    CLOSING
  }

  private final String id;
  private final PgWireServerOptions options;
  private final QueryHandler queryHandler;
  private @Nullable ChannelHandlerContext ctx;
  private String context;
  private State state = State.STARTUP;
  private boolean busy;
  private boolean started;
  private final ArrayDeque<FrontendMessage> pending = new ArrayDeque<>();
  private @Nullable PgSession session;
  private @Nullable Disposable inFlight;
  private @Nullable DemandWriter<?> writer;

  ServerConnectionHandler(String id, PgWireServerOptions options, QueryHandler queryHandler) {
    this.id = id;
    this.context = id;
    this.options = options;
    this.queryHandler = queryHandler;
  }

  private ChannelHandlerContext ctx() {
    ChannelHandlerContext c = ctx;
    if (c == null) {
      throw new IllegalStateException("handler not in a pipeline");
    }
    return c;
  }

  @Override
  public void handlerAdded(ChannelHandlerContext ctx) {
    this.ctx = ctx;
  }

  /** {@code id address}, the prefix of log lines. */
  String context() {
    return context;
  }

  /**
   * Starts reading; called once the transport has set the connection up (reactor-netty leaves
   * auto-read off until then). Any thread.
   */
  void begin() {
    ChannelHandlerContext c = ctx();
    c.executor()
        .execute(
            () -> {
              SocketAddress remote = c.channel().remoteAddress();
              context = id + " " + remote;
              started = true;
              log.debug("[{}] connection accepted", context);
              updateReading();
            });
  }

  // ---- inbound ----

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (!(msg instanceof FrontendMessage m)) {
      ReferenceCountUtil.release(msg);
      return;
    }
    if (state == State.CLOSING) {
      return;
    }
    ClientMessageReader stream = streamReadingClient();
    if (stream != null && pending.isEmpty()) {
      toStream(stream, m);
      updateReading();
      return;
    }
    pending.add(m);
    processPending();
  }

  private void toStream(ClientMessageReader stream, FrontendMessage m) {
    try {
      stream.onClientMessage(m);
    } catch (RuntimeException e) {
      // The handler's feedback consumer failed: a bug; this session cannot go on safely.
      log.warn("[{}] internal error handling {} during streaming", context, m, e);
      fatal(SqlState.INTERNAL_ERROR, "internal error: " + e.getMessage());
    }
  }

  /** The stream (replication, CopyBoth) that takes the client's messages now, if any. */
  private @Nullable ClientMessageReader streamReadingClient() {
    return writer instanceof ClientMessageReader r && r.readsClientMessages() ? r : null;
  }

  private void processPending() {
    while (!busy && state != State.CLOSING && !pending.isEmpty()) {
      FrontendMessage m = pending.poll();
      try {
        handle(m);
      } catch (RuntimeException e) {
        log.warn("[{}] internal error handling {}", context, m, e);
        fatal(SqlState.INTERNAL_ERROR, "internal error: " + e.getMessage());
      }
    }
    updateReading();
  }

  /** Reads while idle, or while a stream in progress wants the client's messages. Event loop. */
  void updateReading() {
    if (!started) {
      return;
    }
    ClientMessageReader r = streamReadingClient();
    ctx()
        .channel()
        .config()
        .setAutoRead(state != State.CLOSING && (!busy || r != null && r.wantsClientMessages()));
  }

  private void handle(FrontendMessage m) {
    switch (state) {
      case STARTUP -> {
        switch (m) {
          case SslRequest r -> ctx().writeAndFlush(EncryptionRefused.INSTANCE);
          case GssEncRequest r -> ctx().writeAndFlush(EncryptionRefused.INSTANCE);
          case CancelRequest r -> {
            log.debug("[{}] cancel request for backend {} ignored", context, r.processId());
            state = State.CLOSING;
            ctx().close();
          }
          case StartupMessage s -> startup(s);
          default -> protocolViolation("unexpected " + m + " before the startup message");
        }
      }
      case AUTHENTICATING -> {
        if (m instanceof PasswordMessage p) {
          checkPassword(p.password());
        } else {
          protocolViolation("expected a password message, got " + m);
        }
      }
      case READY -> {
        switch (m) {
          case Query q -> runQuery(q.sql());
          case Terminate t -> {
            log.debug("[{}] client terminated the session", context);
            state = State.CLOSING;
            ctx().close();
          }
          // As PostgreSQL does: copy messages outside COPY are ignored (a COPY failed earlier).
          case CopyData d -> {}
          case CopyDone d -> {}
          case CopyFail f -> {}
          default -> protocolViolation("unexpected " + m);
        }
      }
      case CLOSING -> {}
    }
  }

  private void startup(StartupMessage s) {
    if (s.majorVersion() != 3) {
      fatal(
          SqlState.FEATURE_NOT_SUPPORTED,
          "unsupported frontend protocol "
              + s.majorVersion()
              + "."
              + s.minorVersion()
              + ": server supports 3.0 to 3.0");
      return;
    }
    String user = s.parameters().get("user");
    if (user == null || user.isEmpty()) {
      fatal(
          SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
          "no PostgreSQL user name specified in startup packet");
      return;
    }
    List<String> protocolOptions =
        s.parameters().keySet().stream().filter(k -> k.startsWith("_pq_.")).toList();
    if (s.minorVersion() > 0 || !protocolOptions.isEmpty()) {
      ctx().write(new NegotiateProtocolVersion(0, protocolOptions));
    }
    session =
        new PgSession(
            id,
            user,
            s.parameters().getOrDefault("database", user),
            s.parameters().getOrDefault("application_name", ""),
            s.parameters(),
            ctx().channel().remoteAddress());
    switch (options.authenticator()) {
      case Authenticator.Trust t -> completeAuthentication();
      case Authenticator.CleartextPassword _, Authenticator.Jwt _ -> {
        state = State.AUTHENTICATING;
        ctx().writeAndFlush(AuthenticationCleartextPassword.INSTANCE);
      }
    }
  }

  private void checkPassword(String password) {
    switch (options.authenticator()) {
      case Authenticator.Jwt jwt -> checkToken(jwt, password);
      case Authenticator.CleartextPassword auth -> checkPassword(auth, password);
      case Authenticator.Trust t -> protocolViolation("unexpected password message");
    }
  }

  private void checkToken(Authenticator.Jwt jwt, String token) {
    PgSession s = session();
    try {
      session = s.withClaims(jwt.verifier().verify(token));
    } catch (AuthException e) {
      // the message never holds the token (AuthException's contract)
      log.warn("[{}] token refused for user {}: {}", context, s.user(), e.getMessage());
      fatal(SqlState.INVALID_AUTHORIZATION_SPECIFICATION, e.getMessage());
      return;
    }
    completeAuthentication();
  }

  private void checkPassword(Authenticator.CleartextPassword auth, String password) {
    PgSession s = session();
    busy = true;
    Mono<Boolean> verdict;
    try {
      verdict = auth.verifier().apply(s, password);
    } catch (RuntimeException e) {
      verdict = Mono.error(e);
    }
    inFlight =
        verdict
            .defaultIfEmpty(false)
            .onErrorResume(
                e -> {
                  log.warn("[{}] password check failed: {}", context, e.toString());
                  return Mono.just(false);
                })
            .subscribe(
                ok ->
                    onLoop(
                        () -> {
                          busy = false;
                          if (ok) {
                            completeAuthentication();
                          } else {
                            fatal(
                                SqlState.INVALID_PASSWORD,
                                "password authentication failed for user \"" + s.user() + "\"");
                          }
                          processPending();
                        }));
  }

  private void completeAuthentication() {
    PgSession s = session();
    ChannelHandlerContext c = ctx();
    try {
      queryHandler.accept(s);
    } catch (PgServerException e) {
      log.info("[{}] session refused: {}", context, e.notice().message());
      fatal(e.notice().sqlState(), e.notice().message());
      return;
    }
    c.write(AuthenticationOk.INSTANCE);
    for (Map.Entry<String, String> p : options.serverParameters().entrySet()) {
      c.write(new ParameterStatus(p.getKey(), p.getValue()));
    }
    c.write(new ParameterStatus("application_name", s.applicationName()));
    c.write(new ParameterStatus("session_authorization", s.user()));
    c.write(new BackendKeyData(RANDOM.nextInt() & 0x7FFFFFFF, RANDOM.nextInt()));
    c.writeAndFlush(ReadyForQuery.IDLE);
    state = State.READY;
    log.info(
        "[{}] session started: user={} database={} application_name={}{}",
        context,
        s.user(),
        s.database(),
        s.applicationName(),
        s.replication() ? " replication" : "");
  }

  private PgSession session() {
    PgSession s = session;
    if (s == null) {
      throw new IllegalStateException("no session yet");
    }
    return s;
  }

  // ---- queries ----

  private void runQuery(String sql) {
    if (sql.replace(";", "").isBlank()) {
      ctx().write(EmptyQueryResponse.INSTANCE);
      ctx().writeAndFlush(ReadyForQuery.IDLE);
      return;
    }
    log.debug("[{}] query {}", context, QueryText.abbreviate(sql));
    busy = true;
    Mono<QueryResponse> response;
    try {
      response = queryHandler.handle(session(), sql);
    } catch (RuntimeException e) {
      response = Mono.error(e);
    }
    if (response == null) {
      response = Mono.empty();
    }
    inFlight =
        response
            .switchIfEmpty(
                Mono.error(() -> new IllegalStateException("the query handler gave no response")))
            .subscribe(r -> onLoop(() -> respond(sql, r)), e -> onLoop(() -> respondError(sql, e)));
  }

  private void respond(String sql, QueryResponse r) {
    if (state == State.CLOSING) {
      // The session ended while the handler worked; a CopyOut source is never subscribed to, so
      // nothing of it was produced.
      log.debug(
          "[{}] session closed before the response to {}", context, QueryText.abbreviate(sql));
      return;
    }
    ChannelHandlerContext c = ctx();
    switch (r) {
      case QueryResponse.Rows rows -> {
        List<Field> fields = new ArrayList<>();
        rows.columns().forEach(n -> fields.add(Field.text(n)));
        c.write(new RowDescription(fields));
        for (List<String> row : rows.rows()) {
          List<byte[]> values = new ArrayList<>(row.size());
          for (String v : row) {
            values.add(v == null ? null : v.getBytes(StandardCharsets.UTF_8));
          }
          c.write(new DataRow(values));
        }
        c.write(new CommandComplete(rows.commandTag()));
        finishQuery();
      }
      case QueryResponse.Command cmd -> {
        c.write(new CommandComplete(cmd.tag()));
        finishQuery();
      }
      case QueryResponse.Error e -> {
        c.write(new ErrorResponse(e.notice()));
        finishQuery();
      }
      case QueryResponse.CopyOut copyOut -> {
        int format = copyOut.binary() ? 1 : 0;
        c.writeAndFlush(
            new CopyOutResponse(format, Collections.nCopies(copyOut.columns(), format)));
        CopyOutWriter w = new CopyOutWriter(c, this, copyOut.commandTag());
        writer = w;
        w.pull(copyOut.data());
      }
      case QueryResponse.Replication replication -> {
        if (!session().replication()) {
          // PostgreSQL's SQL parser does not know replication commands; neither do we here.
          c.write(new ErrorResponse(ReplicationCommandParser.notInReplicationSession(sql)));
          finishQuery();
          return;
        }
        WalSenderStream w = new WalSenderStream(c, this, options, replication);
        writer = w;
        w.start();
        drainPendingInto(w);
      }
      case QueryResponse.CopyBoth copyBoth -> {
        CopyBothStream w = new CopyBothStream(c, this, copyBoth);
        writer = w;
        w.start();
        drainPendingInto(w);
      }
    }
  }

  /** Messages that came in the same socket read as the command belong to its stream. */
  private void drainPendingInto(ClientMessageReader w) {
    while (!pending.isEmpty() && streamReadingClient() == w && state != State.CLOSING) {
      toStream(w, pending.poll());
    }
    updateReading();
  }

  /**
   * The ErrorResponse for a failure: the notice a {@link PgServerException} carries, else XX000
   * with {@code prefix} and the exception's message.
   */
  static PgNotice errorNotice(Throwable e, String prefix) {
    if (e instanceof PgServerException pe) {
      return pe.notice();
    }
    return PgNotice.error(SqlState.INTERNAL_ERROR, prefix + e.getMessage());
  }

  private void respondError(String sql, Throwable e) {
    if (state == State.CLOSING) {
      return;
    }
    if (!(e instanceof PgServerException)) {
      log.warn("[{}] query {} failed", context, QueryText.abbreviate(sql), e);
    }
    ctx().write(new ErrorResponse(errorNotice(e, "internal error: ")));
    finishQuery();
  }

  /** The response is complete: ReadyForQuery, and the next message may be handled. */
  void finishQuery() {
    inFlight = null;
    writer = null;
    busy = false;
    ctx().writeAndFlush(ReadyForQuery.IDLE);
    processPending();
  }

  private void onLoop(Runnable r) {
    DemandWriter.onLoop(ctx(), r);
  }

  // ---- errors and lifecycle ----

  void protocolViolation(String message) {
    log.warn("[{}] protocol violation: {}; closing", context, message);
    fatal(SqlState.PROTOCOL_VIOLATION, message);
  }

  /** Closes the connection without a word (a client that went silent, or said Terminate). */
  void close(String why) {
    if (state == State.CLOSING) {
      return;
    }
    log.debug("[{}] closing: {}", context, why);
    state = State.CLOSING;
    pending.clear();
    stopWriter();
    ctx().close();
  }

  /** Nothing of a response may follow a FATAL error or a close. */
  private void stopWriter() {
    DemandWriter<?> w = writer;
    if (w != null) {
      w.sessionClosed();
    }
  }

  /** Sends a FATAL error and closes the connection after it is written. */
  void fatal(String sqlState, String message) {
    if (state == State.CLOSING) {
      return;
    }
    state = State.CLOSING;
    pending.clear();
    stopWriter();
    ctx()
        .writeAndFlush(new ErrorResponse(PgNotice.fatal(sqlState, message)))
        .addListener(ChannelFutureListener.CLOSE);
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    Throwable c =
        cause instanceof DecoderException && cause.getCause() != null ? cause.getCause() : cause;
    if (c instanceof PgWireException pe && pe.kind() == PgWireException.Kind.PROTOCOL) {
      protocolViolation(pe.getMessage());
    } else if (c instanceof IOException) {
      log.debug("[{}] connection failed: {}", context, c.toString());
      state = State.CLOSING;
      ctx.close();
    } else {
      log.warn("[{}] unexpected error; closing", context, c);
      fatal(SqlState.INTERNAL_ERROR, "internal error: " + c);
    }
  }

  @Override
  public void channelWritabilityChanged(ChannelHandlerContext ctx) {
    DemandWriter<?> w = writer;
    if (w != null) {
      w.requestIfWritable();
    }
    ctx.fireChannelWritabilityChanged();
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    state = State.CLOSING;
    pending.clear();
    stopWriter();
    Disposable d = inFlight;
    if (d != null) {
      d.dispose();
    }
    log.debug("[{}] connection closed", context);
    ctx.fireChannelInactive();
  }
}
