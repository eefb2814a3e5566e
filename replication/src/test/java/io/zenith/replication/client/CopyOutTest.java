package io.zenith.replication.client;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.pgwire.BackendMessage;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.server.PgWireServer;
import io.zenith.replication.server.PgWireServerOptions;
import io.zenith.replication.server.QueryResponse;
import io.zenith.replication.testing.NettyLeakCheck;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/**
 * {@link PgConnection#copyOut} against real PostgreSQL 15 (psql's output of the same COPY is the
 * oracle), against our {@link PgWireServer} (a source that is pulled only as the client reads), and
 * against a scripted server that drops the connection.
 */
@ExtendWith(NettyLeakCheck.class)
class CopyOutTest {
  private static final Duration T = Duration.ofSeconds(60);
  private static PgCluster cluster;

  @BeforeAll
  static void startCluster() {
    cluster = PgCluster.initdb();
    cluster.configure(Map.of("fsync", "off"));
    cluster.start();
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private static PgConnection connect(int port) {
    return PgConnection.connect(
            PgConnectOptions.builder().port(port).user("postgres").database("postgres").build())
        .block(T);
  }

  private static String sha256(byte[] b) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
  }

  private static byte[] collect(Flux<ByteBuffer> flux) {
    return flux.collect(
            ByteArrayOutputStream::new,
            (out, b) -> out.write(b.array(), b.arrayOffset() + b.position(), b.remaining()))
        .map(ByteArrayOutputStream::toByteArray)
        .block(T);
  }

  @Test
  void streamsWhatPsqlPrintsAndTheConnectionGoesOn() throws Exception {
    String copy =
        "COPY (SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 100000) g) TO STDOUT";
    byte[] expected = cluster.sql(copy + ";").getBytes(StandardCharsets.UTF_8);
    PgConnection c = connect(cluster.port());
    try {
      byte[] got = collect(c.copyOut(copy));
      assertThat(got.length).isEqualTo(expected.length).isGreaterThan(10_000_000);
      assertThat(sha256(got)).isEqualTo(sha256(expected));
      assertThat(c.simpleQuery("SELECT 41 + 1").block(T).rows().get(0).get(0)).isEqualTo("42");
      // a second copy on the same connection, with demand-only reads
      assertThat(collect(c.copyOut("COPY (SELECT 'x') TO STDOUT", 0))).isEqualTo("x\n".getBytes());
    } finally {
      c.close().block(T);
    }
  }

  @Test
  void serverErrorsCarryTheirSqlStateAndLeaveTheConnectionUsable() {
    PgConnection c = connect(cluster.port());
    try {
      StepVerifier.create(c.copyOut("COPY no_such_table TO STDOUT"))
          .expectErrorSatisfies(
              e ->
                  assertThat(e)
                      .isInstanceOfSatisfying(
                          PgServerException.class,
                          p -> assertThat(p.sqlState()).isEqualTo("42P01")))
          .verify(T);
      // fails mid-stream: the rows before the error arrive first
      AtomicLong bytes = new AtomicLong();
      StepVerifier.create(
              c.copyOut(
                      "COPY (SELECT 1 / (50000 - g), repeat('y', 200) FROM generate_series(1,"
                          + " 100000) g) TO STDOUT")
                  .doOnNext(b -> bytes.addAndGet(b.remaining())))
          .thenConsumeWhile(b -> true)
          .expectErrorSatisfies(
              e -> assertThat(((PgServerException) e).sqlState()).isEqualTo("22012"))
          .verify(T);
      assertThat(bytes.get()).isGreaterThan(0);
      StepVerifier.create(c.copyOut("SELECT 1"))
          .expectErrorSatisfies(e -> assertThat(e).isInstanceOf(IllegalArgumentException.class))
          .verify(T);
      assertThat(c.simpleQuery("SELECT 'still here'").block(T).rows().get(0).get(0))
          .isEqualTo("still here");
    } finally {
      c.close().block(T);
    }
  }

  @Test
  void aSubscriberThatStopsRequestingStopsTheServersSource() throws Exception {
    AtomicLong pulled = new AtomicLong();
    int chunk = 64 * 1024;
    PgWireServer server =
        PgWireServer.start(
                PgWireServerOptions.builder().build(),
                (session, sql) ->
                    Mono.just(
                        QueryResponse.copyOut(
                            Flux.<ByteBuf>generate(
                                sink -> {
                                  pulled.incrementAndGet();
                                  sink.next(Unpooled.wrappedBuffer(new byte[chunk]));
                                }))))
            .block(T);
    PgConnection c = connect(server.port());
    try {
      StepVerifier.create(c.copyOut("endless"), 0)
          .thenRequest(3)
          .expectNextCount(3)
          .then(() -> awaitStable(pulled))
          .then(
              () ->
                  // kernel buffers on both sides plus Netty's high-water mark and the read-ahead:
                  // a few MiB, far below what an unbounded reader would have taken by now
                  assertThat(pulled.get() * chunk).isLessThan(48L << 20))
          .thenRequest(200)
          .expectNextCount(200)
          .thenCancel()
          .verify(T);
    } finally {
      // cancelling an endless copy would discard forever: closing is how to stop it
      c.close().block(T);
      server.close();
    }
  }

  /** Waits until {@code counter} stops moving for half a second (bounded). */
  private static void awaitStable(AtomicLong counter) {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    long last = -1;
    while (System.nanoTime() < deadline) {
      long now = counter.get();
      if (now == last) {
        return;
      }
      last = now;
      try {
        Thread.sleep(500);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError(e);
      }
    }
    throw new AssertionError("the source never stopped: " + counter.get() + " buffers pulled");
  }

  @Test
  void aConnectionLostDuringTheCopyFailsAfterTheDataBeforeIt() throws Exception {
    try (FakeWalsender fake =
        new FakeWalsender(
            conn -> {
              conn.acceptStartup();
              conn.readUntil('Q');
              conn.send(new BackendMessage.CopyOutResponse(1, List.of()));
              conn.send(new CopyData("part".getBytes(StandardCharsets.US_ASCII)));
              // and the server process dies: the socket closes
            })) {
      PgConnection c = connect(fake.port());
      StepVerifier.create(c.copyOut("basebackup a b"))
          .assertNext(
              b -> assertThat(StandardCharsets.US_ASCII.decode(b).toString()).isEqualTo("part"))
          .expectErrorSatisfies(
              e ->
                  assertThat(e)
                      .isInstanceOfSatisfying(
                          PgWireException.class,
                          p ->
                              assertThat(p.kind()).isEqualTo(PgWireException.Kind.CONNECTION_LOST)))
          .verify(T);
      fake.done().get(20, TimeUnit.SECONDS);
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }
}
