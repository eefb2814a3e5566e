package io.zenith.replication.server;

import io.netty.channel.ChannelOption;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.util.concurrent.GlobalEventExecutor;
import io.zenith.replication.pgwire.BackendMessageEncoder;
import io.zenith.replication.pgwire.FrontendMessageDecoder;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;
import reactor.netty.DisposableServer;
import reactor.netty.NettyPipeline;
import reactor.netty.tcp.TcpServer;

/**
 * A PostgreSQL protocol 3.0 server on reactor-netty: the libpq endpoint of the pageserver and of
 * safekeepers. It answers SSLRequest/GSSENCRequest with "N", takes a StartupMessage, authenticates
 * ({@link Authenticator}), reports parameters, BackendKeyData and ReadyForQuery, and hands each
 * simple Query to a {@link QueryHandler} whose {@link QueryResponse} it writes: rows, a command
 * tag, an error (the session goes on), a backpressured CopyOut stream, or on a replication
 * connection a physical replication stream as PostgreSQL's walsender sends it ({@link
 * ReplicationCommand} parses the commands).
 *
 * <p>A malformed or unsupported frontend message (the extended query protocol included) is answered
 * with a FATAL ErrorResponse 08P01 and the connection is closed; other connections are not
 * affected. Each connection gets an id ({@code s1}, {@code s2}, ...) that prefixes its log lines.
 *
 * <p>Thread-safe. Each connection runs on one event loop.
 */
public final class PgWireServer implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(PgWireServer.class);
  private static final AtomicLong IDS = new AtomicLong();
  private static final BackendMessageEncoder ENCODER = new BackendMessageEncoder();

  private final DisposableServer server;
  private final ChannelGroup connections;
  private final PgWireServerOptions options;

  private PgWireServer(
      DisposableServer server, ChannelGroup connections, PgWireServerOptions options) {
    this.server = server;
    this.connections = connections;
    this.options = options;
  }

  /** Binds and starts accepting connections. */
  public static Mono<PgWireServer> start(PgWireServerOptions options, QueryHandler handler) {
    Objects.requireNonNull(options);
    Objects.requireNonNull(handler);
    return Mono.defer(
        () -> {
          ChannelGroup group =
              new DefaultChannelGroup("zenith-pgwire", GlobalEventExecutor.INSTANCE);
          return TcpServer.create()
              .host(options.host())
              .port(options.port())
              .childOption(ChannelOption.TCP_NODELAY, true)
              .doOnChannelInit(
                  (observer, ch, remote) -> {
                    String id = "s" + IDS.incrementAndGet();
                    ch.pipeline()
                        .addBefore(
                            NettyPipeline.ReactiveBridge,
                            "zenith.pg.decoder",
                            new FrontendMessageDecoder(options.maxMessageSize()))
                        .addBefore(NettyPipeline.ReactiveBridge, "zenith.pg.encoder", ENCODER)
                        .addBefore(
                            NettyPipeline.ReactiveBridge,
                            "zenith.pg.server",
                            new ServerConnectionHandler(id, options, handler));
                    group.add(ch);
                  })
              .doOnConnection(
                  conn -> {
                    ServerConnectionHandler h =
                        conn.channel().pipeline().get(ServerConnectionHandler.class);
                    if (h != null) {
                      h.begin();
                    }
                  })
              // The connection lives until either side closes it; our handler does the talking.
              .handle((in, out) -> Mono.never())
              .bind()
              .map(
                  s -> {
                    log.info("PostgreSQL protocol server listening on {}", s.address());
                    return new PgWireServer(s, group, options);
                  });
        });
  }

  public InetSocketAddress address() {
    return (InetSocketAddress) server.address();
  }

  public int port() {
    return address().getPort();
  }

  public PgWireServerOptions options() {
    return options;
  }

  /** Connections open right now. */
  public int connectionCount() {
    return connections.size();
  }

  /** Stops listening, closes every connection and waits up to 10 s for that. */
  @Override
  public void close() {
    connections.close().awaitUninterruptibly(10_000);
    server.disposeNow(Duration.ofSeconds(10));
  }
}
