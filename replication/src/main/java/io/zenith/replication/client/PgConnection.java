package io.zenith.replication.client;

import io.netty.channel.AdaptiveRecvByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelOption;
import io.zenith.replication.pgwire.BackendMessageDecoder;
import io.zenith.replication.pgwire.FrontendMessageEncoder;
import io.zenith.replication.pgwire.PgWireException;
import java.net.ConnectException;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.netty.NettyPipeline;
import reactor.netty.tcp.TcpClient;

/**
 * A connection to a PostgreSQL server speaking protocol 3.0 over reactor-netty: startup and
 * authentication (trust, cleartext password, MD5), simple queries, streamed COPY TO STDOUT ({@link
 * #copyOut}), and, through {@link ReplicationClient}, physical streaming replication.
 *
 * <p>Requests run one at a time in the order they were made; a request made while another runs
 * waits for it. Results are signalled on the connection's event-loop thread: do not block there
 * (use {@code publishOn} for slow work).
 *
 * <p>Each connection has an id ({@code c1}, {@code c2}, ...) that prefixes its log lines and its
 * error messages together with the server address.
 *
 * <p>Thread-safe: every method may be called from any thread.
 */
public final class PgConnection {
  private static final AtomicLong IDS = new AtomicLong();
  private static final FrontendMessageEncoder ENCODER = new FrontendMessageEncoder();

  /** Largest single socket read. */
  static final int MAX_READ = 64 * 1024;

  private final String id;
  private final PgConnectOptions options;
  private final Channel channel;
  private final ClientHandler handler;
  private volatile int backendProcessId;
  private volatile int backendSecretKey;

  private PgConnection(
      String id, PgConnectOptions options, Channel channel, ClientHandler handler) {
    this.id = id;
    this.options = options;
    this.channel = channel;
    this.handler = handler;
  }

  /**
   * Connects, authenticates and waits for the server to be ready for queries.
   *
   * <p>Errors: {@link PgWireException} of kind CONNECT (refused, unresolvable host, TCP connect
   * timeout), TIMEOUT (startup did not finish within {@link PgConnectOptions#connectTimeout()}),
   * AUTHENTICATION (method not implemented, password missing), PROTOCOL; a {@link
   * io.zenith.replication.pgwire.PgServerException} when the server refuses (bad password 28P01,
   * unknown database 3D000, no pg_hba entry 28000, ...). Cancelling closes the connection.
   */
  public static Mono<PgConnection> connect(PgConnectOptions options) {
    return Mono.defer(
        () -> {
          String id = "c" + IDS.incrementAndGet();
          ClientHandler handler = new ClientHandler(id, options.address());
          long timeoutMillis = options.connectTimeout().toMillis();
          return TcpClient.newConnection()
              .host(options.host())
              .port(options.port())
              .option(
                  ChannelOption.CONNECT_TIMEOUT_MILLIS,
                  (int) Math.min(Integer.MAX_VALUE, Math.max(1, timeoutMillis)))
              .option(ChannelOption.TCP_NODELAY, true)
              // At most 64 KiB per socket read: the bound a paused stream's buffer relies on.
              .option(
                  ChannelOption.RECVBUF_ALLOCATOR,
                  new AdaptiveRecvByteBufAllocator(512, 16 * 1024, MAX_READ))
              .doOnChannelInit(
                  (observer, ch, remote) ->
                      ch.pipeline()
                          .addBefore(
                              NettyPipeline.ReactiveBridge,
                              "zenith.pg.decoder",
                              new BackendMessageDecoder(options.maxMessageSize()))
                          .addBefore(NettyPipeline.ReactiveBridge, "zenith.pg.encoder", ENCODER)
                          .addBefore(NettyPipeline.ReactiveBridge, "zenith.pg.client", handler))
              .connect()
              .onErrorMap(e -> !(e instanceof PgWireException), e -> connectError(id, options, e))
              .flatMap(
                  conn -> {
                    PgConnection pc = new PgConnection(id, options, conn.channel(), handler);
                    return Mono.<PgConnection>create(
                        sink -> {
                          sink.onCancel(() -> conn.channel().close());
                          handler.submit(new StartupExchange(options, pc, sink));
                        });
                  })
              .timeout(
                  options.connectTimeout(),
                  Mono.error(
                      () ->
                          new PgWireException(
                              PgWireException.Kind.TIMEOUT,
                              id
                                  + " "
                                  + options.address()
                                  + ": connection startup did not finish within "
                                  + options.connectTimeout().toMillis()
                                  + " ms")));
        });
  }

  private static PgWireException connectError(String id, PgConnectOptions o, Throwable e) {
    String why;
    if (e instanceof ConnectException) {
      why = "connection refused";
    } else if (e instanceof io.netty.channel.ConnectTimeoutException) {
      why = "TCP connect timed out after " + o.connectTimeout().toMillis() + " ms";
    } else if (e instanceof UnknownHostException) {
      why = "unknown host";
    } else {
      why = String.valueOf(e.getMessage());
    }
    return new PgWireException(
        PgWireException.Kind.CONNECT,
        id + " " + o.address() + ": cannot connect to " + o.address() + ": " + why,
        e);
  }

  /** {@code c7}: this connection's id in logs and messages. */
  public String id() {
    return id;
  }

  public PgConnectOptions options() {
    return options;
  }

  /** Parameters the server reported (server_version, client_encoding, ...); a snapshot. */
  public Map<String, String> serverParameters() {
    return handler.parameters();
  }

  /** The server process id from BackendKeyData (0 if the server sent none). */
  public int backendProcessId() {
    return backendProcessId;
  }

  void setBackendKey(int processId, int secretKey) {
    this.backendProcessId = processId;
    this.backendSecretKey = secretKey;
  }

  int backendSecretKey() {
    return backendSecretKey;
  }

  /**
   * Runs a simple query (one or more statements) and returns one result per statement, in order.
   * Fails with a {@link io.zenith.replication.pgwire.PgServerException} if any statement fails (the
   * connection stays usable) and with a {@link PgWireException} if the connection fails.
   */
  public Mono<List<QueryResult>> simpleQueryAll(String sql) {
    return Mono.create(sink -> handler.submit(new QueryExchange(sql, sink)));
  }

  /** As {@link #simpleQueryAll}, returning the last statement's result. */
  public Mono<QueryResult> simpleQuery(String sql) {
    return simpleQueryAll(sql)
        .map(
            results -> {
              if (results.isEmpty()) {
                throw new IllegalStateException("no statement result for " + sql);
              }
              return results.get(results.size() - 1);
            });
  }

  /** Buffers {@link #copyOut(String)} reads ahead of the subscriber's demand. */
  public static final int COPY_READ_AHEAD = 4;

  /**
   * Runs a query that answers with one CopyOut stream ({@code COPY ... TO STDOUT}, or a libpq
   * endpoint's command such as the pageserver's {@code basebackup}) and streams the COPY data, one
   * {@link ByteBuffer} per CopyData message, with {@link #COPY_READ_AHEAD} buffers of read-ahead.
   * See {@link #copyOut(String, int)}.
   */
  public Flux<ByteBuffer> copyOut(String sql) {
    return copyOut(sql, COPY_READ_AHEAD);
  }

  /**
   * As {@link #copyOut(String)}, a cold {@link Flux}: the query is sent on subscription (after the
   * requests made before it).
   *
   * <ul>
   *   <li><b>Thread:</b> buffers and terminal signals arrive on the connection's event loop; do not
   *       block there (use {@code publishOn}).
   *   <li><b>Demand:</b> the socket is read while the subscriber has outstanding demand or fewer
   *       than {@code readAhead} buffers are queued; otherwise reads stop, the TCP window closes
   *       and the server stops sending. {@code readAhead} 0 reads against demand only.
   *   <li><b>Bound:</b> {@code readAhead} buffers plus what one socket read (64 KiB) completes;
   *       each buffer is one CopyData message, at most {@link PgConnectOptions#maxMessageSize()}.
   *   <li><b>Ownership:</b> each buffer is a heap {@link ByteBuffer} nobody else references: the
   *       subscriber owns it. No Netty buffer leaves the codec.
   *   <li><b>Cancel:</b> the rest of the response is read and discarded up to ReadyForQuery; the
   *       connection stays usable. Close the connection to stop a large transfer at once.
   *   <li><b>Errors:</b> an ErrorResponse fails the flux with a {@link
   *       io.zenith.replication.pgwire.PgServerException} (SQLSTATE and all fields) after the
   *       buffers before it, once the server is ready for the next query: the connection stays
   *       usable. A query that does not produce exactly one COPY TO STDOUT fails with {@link
   *       IllegalArgumentException} (connection usable); a lost connection with {@link
   *       PgWireException} CONNECTION_LOST.
   *   <li><b>Order:</b> the server's order; completes after the server's CommandComplete and
   *       ReadyForQuery.
   * </ul>
   */
  public Flux<ByteBuffer> copyOut(String sql, int readAhead) {
    if (readAhead < 0) {
      throw new IllegalArgumentException("readAhead must not be negative: " + readAhead);
    }
    return Flux.from(
        subscriber -> {
          CopyOutExchange ex = new CopyOutExchange(handler, subscriber, sql, readAhead);
          subscriber.onSubscribe(ex);
          handler.submit(ex);
        });
  }

  public boolean isClosed() {
    return handler.isClosed();
  }

  /**
   * Sends Terminate and closes the connection; requests still waiting fail with CONNECTION_LOST.
   * Completes when the socket is closed. Idempotent.
   */
  public Mono<Void> close() {
    return Mono.defer(
        () -> {
          handler.closeNow();
          return onClose();
        });
  }

  /**
   * Completes when the connection is closed, by either side, and every request still waiting has
   * failed.
   */
  public Mono<Void> onClose() {
    return Mono.fromFuture(handler.closed(), true);
  }

  ClientHandler handler() {
    return handler;
  }

  Channel channel() {
    return channel;
  }

  @Override
  public String toString() {
    return "PgConnection[" + id + " " + options.address() + "]";
  }
}
