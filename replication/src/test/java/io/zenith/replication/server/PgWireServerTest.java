package io.zenith.replication.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.zenith.pg.PgDistribution;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.PgConnection;
import io.zenith.replication.client.QueryResult;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/** {@link PgWireServer} spoken to by psql, by our client, and by raw sockets. */
@ExtendWith(NettyLeakCheck.class)
class PgWireServerTest {
  private static final Logger log = LoggerFactory.getLogger(PgWireServerTest.class);
  private static final Duration T = Duration.ofSeconds(30);
  private static final int LINE = 64;
  private static final int LINES_PER_BUFFER = 1024;
  private static final int COPY_BUFFERS = 64;

  private final AtomicLong infiniteEmitted = new AtomicLong();
  private final AtomicBoolean infiniteCancelled = new AtomicBoolean();
  private final List<Long> copyRequests = new CopyOnWriteArrayList<>();
  private PgWireServer server;

  /** The 4 MiB the "copy" command streams, as text lines. */
  private static String copyLines(int buffer) {
    StringBuilder sb = new StringBuilder(LINE * LINES_PER_BUFFER);
    for (int i = 0; i < LINES_PER_BUFFER; i++) {
      String head = String.format("line %08d ", buffer * LINES_PER_BUFFER + i);
      sb.append(head).append("x".repeat(LINE - head.length() - 1)).append('\n');
    }
    return sb.toString();
  }

  private Mono<QueryResponse> handle(PgSession session, String q) {
    return switch (q.strip()) {
      case "hello" ->
          Mono.just(
              new QueryResponse.Rows(
                  List.of("a", "b"), List.of(List.of("1", "x"), List.of("2", session.user()))));
      case "set" -> Mono.just(new QueryResponse.Command("SET"));
      case "boom" -> Mono.error(new IllegalStateException("boom"));
      case "throw" -> throw new IllegalStateException("thrown");
      case "missing" ->
          Mono.error(
              new PgServerException(
                  "handler", PgNotice.error("42P01", "relation \"missing\" does not exist")));
      case "nothing" -> Mono.empty();
      case "unsupported" -> Mono.just(QueryResponse.notSupported(q));
      case "copy" ->
          Mono.just(
              QueryResponse.copyOut(
                  Flux.range(0, COPY_BUFFERS)
                      .doOnRequest(copyRequests::add)
                      .map(i -> Unpooled.copiedBuffer(copyLines(i), StandardCharsets.US_ASCII))));
      case "infinite" ->
          Mono.just(
              QueryResponse.copyOut(
                  Flux.<ByteBuf>generate(
                          sink -> {
                            infiniteEmitted.addAndGet(65536);
                            sink.next(Unpooled.wrappedBuffer(new byte[65536]));
                          })
                      .doOnCancel(() -> infiniteCancelled.set(true))));
      case "copyfail" ->
          Mono.just(
              QueryResponse.copyOutOfBuffers(
                  Flux.concat(
                      Flux.range(0, 3)
                          .map(i -> java.nio.ByteBuffer.wrap(("part " + i + "\n").getBytes())),
                      Flux.error(new IOException("disk gone")))));
      default -> Mono.just(QueryResponse.syntaxError(q));
    };
  }

  @BeforeEach
  void start() {
    server = PgWireServer.start(PgWireServerOptions.builder().build(), this::handle).block(T);
  }

  @AfterEach
  void stop() {
    server.close();
  }

  private PgConnection connect(PgWireServer s, String user, String password) {
    return PgConnection.connect(
            PgConnectOptions.builder()
                .port(s.port())
                .user(user)
                .password(password)
                .database("db")
                .build())
        .block(T);
  }

  record PsqlRun(int exit, String stdout, String stderr) {}

  private static PsqlRun psql(int port, Map<String, String> env, String... commands)
      throws Exception {
    PgDistribution pg = PgDistribution.detect();
    List<String> cmd =
        new ArrayList<>(
            List.of(
                pg.bin("psql").toString(),
                "-X",
                "-q",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                Integer.toString(port),
                "-U",
                "zenith_user",
                "-d",
                "db"));
    for (String c : commands) {
      cmd.add("-c");
      cmd.add(c);
    }
    Path out = Files.createTempFile("psql-out", ".txt");
    Path err = Files.createTempFile("psql-err", ".txt");
    try {
      ProcessBuilder pb =
          new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile());
      pb.environment().putAll(env);
      pb.environment().put("PGCONNECT_TIMEOUT", "10");
      Process p = pb.start();
      assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
      return new PsqlRun(p.exitValue(), Files.readString(out), Files.readString(err));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  @Test
  void psqlGetsRowsAnErrorItSurvivesAndACopyOutStream() throws Exception {
    PsqlRun r = psql(server.port(), Map.of(), "hello", "bogus", "copy", "hello");
    StringBuilder expected = new StringBuilder("1|x\n2|zenith_user\n");
    for (int i = 0; i < COPY_BUFFERS; i++) {
      expected.append(copyLines(i));
    }
    expected.append("1|x\n2|zenith_user\n");
    assertThat(r.stdout().length()).isEqualTo(expected.length());
    assertThat(r.stdout()).isEqualTo(expected.toString());
    assertThat(r.stderr()).contains("ERROR:  syntax error: unknown command \"bogus\"");
    assertThat(r.exit()).isZero();
    // The copy source was asked for one buffer at a time.
    assertThat(copyRequests).hasSize(COPY_BUFFERS + 1).containsOnly(1L);
  }

  @Test
  void ourClientSeesRowsErrorsAndCopyData() {
    PgConnection c = connect(server, "me", null);
    assertThat(c.serverParameters()).containsEntry("server_version", "15.0 (Zenith)");
    QueryResult hello = c.simpleQuery("hello").block(T);
    assertThat(hello.columns()).containsExactly("a", "b");
    assertThat(hello.rows()).extracting(row -> row.get("b")).containsExactly("x", "me");
    assertThat(hello.commandTag()).isEqualTo("SELECT 2");
    assertThat(c.simpleQuery("set").block(T).commandTag()).isEqualTo("SET");
    assertThat(c.simpleQuery(" ; ").block(T).commandTag()).isEmpty();
    assertServerError(c, "bogus", SqlState.SYNTAX_ERROR, "syntax error: unknown command \"bogus\"");
    assertServerError(
        c, "unsupported", SqlState.FEATURE_NOT_SUPPORTED, "not supported: \"unsupported\"");
    assertServerError(c, "boom", SqlState.INTERNAL_ERROR, "internal error: boom");
    assertServerError(c, "throw", SqlState.INTERNAL_ERROR, "internal error: thrown");
    assertServerError(
        c,
        "nothing",
        SqlState.INTERNAL_ERROR,
        "internal error: the query handler gave no response");
    assertServerError(c, "missing", "42P01", "relation \"missing\" does not exist");
    assertServerError(c, "copyfail", SqlState.INTERNAL_ERROR, "COPY failed: disk gone");
    QueryResult copy = c.simpleQuery("copy").block(T);
    assertThat(copy.copyData()).hasSize(COPY_BUFFERS * LINE * LINES_PER_BUFFER);
    assertThat(new String(copy.copyData(), 0, LINE * LINES_PER_BUFFER, StandardCharsets.US_ASCII))
        .isEqualTo(copyLines(0));
    assertThat(copy.commandTag()).isEqualTo("COPY 0");
    c.close().block(T);
  }

  private static void assertServerError(PgConnection c, String q, String sqlState, String message) {
    assertThatThrownBy(() -> c.simpleQuery(q).block(T))
        .isInstanceOfSatisfying(
            PgServerException.class,
            e -> {
              assertThat(e.sqlState()).isEqualTo(sqlState);
              assertThat(e.serverMessage()).isEqualTo(message);
              assertThat(e.severity()).isEqualTo("ERROR");
            });
  }

  @Test
  void aClientThatStopsReadingStopsTheCopySourceAndOthersAreServed() throws Exception {
    try (RawPgClient raw = new RawPgClient(server.port())) {
      raw.startup("slow");
      raw.untilReady();
      raw.send(new FrontendMessage.Query("infinite"));
      // We never read: the server may only fill the socket buffers.
      long got =
          PgWal.awaitStable(
              T, "the copy source to stop being asked for data", infiniteEmitted::get);
      log.info("a client that does not read got {} KiB of an endless COPY", got >> 10);
      assertThat(got).isLessThan(32L << 20);
      // another session is served meanwhile
      PgConnection other = connect(server, "other", null);
      assertThat(other.simpleQuery("hello").block(T).rows()).hasSize(2);
      other.close().block(T);
      assertThat(infiniteCancelled).isFalse();
    }
    PgWal.await(T, "the copy source to be cancelled", infiniteCancelled::get);
    PgWal.await(T, "the connection to be gone", () -> server.connectionCount() == 0);
  }

  @Test
  void malformedInputGetsAProtocolViolationAndOtherSessionsGoOn() throws Exception {
    PgConnection bystander = connect(server, "bystander", null);
    // garbage instead of a startup packet
    try (RawPgClient raw = new RawPgClient(server.port())) {
      raw.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
      RawPgClient.Message m = raw.read();
      assertThat(m.type()).isEqualTo('E');
      assertThat(m.field('S')).isEqualTo("FATAL");
      assertThat(m.field('C')).isEqualTo(SqlState.PROTOCOL_VIOLATION);
      assertThat(m.field('M')).startsWith("invalid length of startup packet");
      assertThat(raw.read()).isNull();
    }
    // a Parse message (extended protocol) after a good startup
    try (RawPgClient raw = new RawPgClient(server.port())) {
      raw.startup("u");
      raw.untilReady();
      raw.send(new byte[] {'P', 0, 0, 0, 8, 0, 0, 0, 0});
      RawPgClient.Message m = raw.read();
      assertThat(m.field('C')).isEqualTo(SqlState.PROTOCOL_VIOLATION);
      assertThat(m.field('M')).isEqualTo("unknown frontend message type 'P'");
      assertThat(raw.read()).isNull();
    }
    // a Query whose length claims more than the limit
    try (RawPgClient raw = new RawPgClient(server.port())) {
      raw.startup("u");
      raw.untilReady();
      raw.send(new byte[] {'Q', 0x7f, 0, 0, 0});
      RawPgClient.Message m = raw.read();
      assertThat(m.field('C')).isEqualTo(SqlState.PROTOCOL_VIOLATION);
      assertThat(m.field('M')).contains("exceeds the limit of 16777216 bytes");
      assertThat(raw.read()).isNull();
    }
    assertThat(bystander.simpleQuery("hello").block(T).rows()).hasSize(2);
    bystander.close().block(T);
    assertThat(psql(server.port(), Map.of(), "hello").stdout()).isEqualTo("1|x\n2|zenith_user\n");
  }

  @Test
  void sslRequestIsRefusedAndStartupGoesOnWithParameters() throws Exception {
    try (RawPgClient raw = new RawPgClient(server.port())) {
      raw.send(FrontendMessage.SslRequest.INSTANCE);
      assertThat(raw.readByte()).isEqualTo('N');
      raw.startup("raw");
      List<RawPgClient.Message> startup = new ArrayList<>();
      for (RawPgClient.Message m = raw.read(); m.type() != 'Z'; m = raw.read()) {
        startup.add(m);
      }
      assertThat(startup.get(0).type()).isEqualTo('R');
      assertThat(startup)
          .filteredOn(m -> m.type() == 'S')
          .extracting(RawPgClient.Message::text)
          .contains(
              "server_version\u000015.0 (Zenith)\u0000", "session_authorization\u0000raw\u0000");
      assertThat(startup.get(startup.size() - 1).type()).isEqualTo('K');
      raw.send(FrontendMessage.Terminate.INSTANCE);
      assertThat(raw.read()).isNull();
    }
  }

  @Test
  void aPasswordAuthenticatorChecksThePassword() throws Exception {
    List<String> seen = new CopyOnWriteArrayList<>();
    try (PgWireServer secured =
        PgWireServer.start(
                PgWireServerOptions.builder()
                    .authenticator(
                        Authenticator.password(
                            (session, password) -> {
                              seen.add(session.user() + ":" + password);
                              return Mono.just(password.equals("token-123"))
                                  .delayElement(Duration.ofMillis(10));
                            }))
                    .build(),
                this::handle)
            .block(T)) {
      PgConnection ok = connect(secured, "alice", "token-123");
      assertThat(ok.simpleQuery("hello").block(T).rows()).hasSize(2);
      ok.close().block(T);
      assertThatThrownBy(() -> connect(secured, "mallory", "guess"))
          .isInstanceOfSatisfying(
              PgServerException.class,
              e -> {
                assertThat(e.sqlState()).isEqualTo(SqlState.INVALID_PASSWORD);
                assertThat(e.serverMessage())
                    .isEqualTo("password authentication failed for user \"mallory\"");
              });
      assertThatThrownBy(() -> connect(secured, "nobody", null))
          .isInstanceOfSatisfying(
              PgWireException.class,
              e -> assertThat(e.kind()).isEqualTo(PgWireException.Kind.AUTHENTICATION));
      PsqlRun r = psql(secured.port(), Map.of("PGPASSWORD", "token-123"), "hello");
      assertThat(r.stdout()).isEqualTo("1|x\n2|zenith_user\n");
      assertThat(seen).contains("alice:token-123", "mallory:guess", "zenith_user:token-123");
    }
  }

  @Test
  void copyDataOfByteBuffersIsWrappedNotCopied() {
    ByteArrayOutputStream expected = new ByteArrayOutputStream();
    for (int i = 0; i < 3; i++) {
      expected.writeBytes(("part " + i + "\n").getBytes());
    }
    // same source as "copyfail" without the error
    QueryResponse.CopyOut c =
        QueryResponse.copyOutOfBuffers(
            Flux.range(0, 3).map(i -> java.nio.ByteBuffer.wrap(("part " + i + "\n").getBytes())));
    ByteArrayOutputStream got = new ByteArrayOutputStream();
    Flux.from(c.data())
        .doOnNext(
            b -> {
              assertThat(b.hasArray()).isTrue();
              byte[] bytes = new byte[b.readableBytes()];
              b.readBytes(bytes);
              got.writeBytes(bytes);
              b.release();
            })
        .blockLast(T);
    assertThat(got.toByteArray()).isEqualTo(expected.toByteArray());
  }
}
