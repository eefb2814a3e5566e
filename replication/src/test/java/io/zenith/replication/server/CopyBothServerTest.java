package io.zenith.replication.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.testing.NettyLeakCheck;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import reactor.core.publisher.Mono;

/** {@link QueryResponse.CopyBoth} over raw sockets: order, the end, errors, and read demand. */
@ExtendWith(NettyLeakCheck.class)
class CopyBothServerTest {
  private static final Duration T = Duration.ofSeconds(30);
  private final AtomicLong stuckReceived = new AtomicLong();
  private PgWireServer server;

  private Mono<QueryResponse> handle(PgSession session, String q) {
    return switch (q.strip()) {
      // each payload's 8-byte number, plus one, answered in order from a few in flight
      case "echo" ->
          Mono.just(
              new QueryResponse.CopyBoth(
                  in ->
                      in.flatMapSequential(
                              b ->
                                  Mono.fromCallable(() -> ByteBuffer.wrap(b).getLong() + 1)
                                      .delayElement(Duration.ofMillis(b[7] % 3)),
                              4,
                              1)
                          .map(n -> Unpooled.buffer(8).writeLong(n))));
      // takes two payloads and never answers
      case "stuck" ->
          Mono.just(
              new QueryResponse.CopyBoth(
                  in ->
                      in.doOnNext(b -> stuckReceived.incrementAndGet())
                          .flatMap(b -> Mono.<ByteBuf>never(), 2)));
      case "fatal" ->
          Mono.just(
              new QueryResponse.CopyBoth(
                  in ->
                      in.map(
                          b -> {
                            throw new PgServerException("test", PgNotice.fatal("08P01", "bad"));
                          })));
      case "error" ->
          Mono.just(
              new QueryResponse.CopyBoth(
                  in ->
                      in.take(1)
                          .concatMap(
                              b ->
                                  Mono.<ByteBuf>error(
                                      new PgServerException(
                                          "test", PgNotice.error("22023", "no such thing"))))));
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

  private RawPgClient session() throws IOException {
    RawPgClient c = new RawPgClient(server.port());
    c.startup("u");
    c.untilReady();
    return c;
  }

  private static CopyData number(long n) {
    return new CopyData(ByteBuffer.allocate(8).putLong(n).array());
  }

  @Test
  void pipelinedPayloadsAreAnsweredInOrderAndTheStreamEndsAsCopyDoes() throws Exception {
    try (RawPgClient c = session()) {
      c.send(new FrontendMessage.Query("echo"));
      RawPgClient.Message w = c.read();
      assertThat(w.type()).isEqualTo('W');
      for (int i = 0; i < 200; i++) {
        c.send(number(i));
      }
      c.send(CopyDone.INSTANCE);
      for (int i = 0; i < 200; i++) {
        RawPgClient.Message m = c.read();
        assertThat(m.type()).isEqualTo('d');
        assertThat(ByteBuffer.wrap(m.body()).getLong()).isEqualTo(i + 1);
      }
      assertThat(c.read().type()).isEqualTo('c');
      RawPgClient.Message done = c.read();
      assertThat(done.type()).isEqualTo('C');
      assertThat(done.text()).startsWith("COPY 0");
      assertThat(c.read().type()).isEqualTo('Z');
      // the session goes on
      c.send(new FrontendMessage.Query("other"));
      assertThat(c.untilReady().field('C')).isEqualTo("42601");
    }
  }

  @Test
  void theClientIsReadOnlyWhileTheHandlerWantsMore() throws Exception {
    RawPgClient c = session();
    try {
      c.send(new FrontendMessage.Query("stuck"));
      assertThat(c.read().type()).isEqualTo('W');
      byte[] payload = new byte[8192];
      AtomicLong sent = new AtomicLong();
      CompletableFuture<Void> writer =
          CompletableFuture.runAsync(
              () -> {
                try {
                  for (int i = 0; i < 8192; i++) { // 64 MiB
                    c.send(new CopyData(payload));
                    sent.incrementAndGet();
                  }
                } catch (IOException e) {
                  // closed at the end of the test
                }
              });
      // Real time on purpose: the point is that the writer stays blocked.
      long before;
      do {
        before = sent.get();
        Thread.sleep(500);
      } while (sent.get() != before);
      assertThat(writer).isNotDone();
      // the handler took the two it asked for; the rest waits in socket buffers (a few MiB at
      // most), not in the server
      assertThat(stuckReceived.get()).isEqualTo(2);
      assertThat(sent.get()).isLessThan(8192);
    } finally {
      c.close();
    }
  }

  @Test
  void aFatalFailureClosesTheConnectionAnOtherIsAnErrorAndTheSessionGoesOn() throws Exception {
    try (RawPgClient c = session()) {
      c.send(new FrontendMessage.Query("fatal"));
      assertThat(c.read().type()).isEqualTo('W');
      c.send(number(1));
      RawPgClient.Message e = c.read();
      assertThat(e.type()).isEqualTo('E');
      assertThat(e.field('S')).isEqualTo("FATAL");
      assertThat(e.field('C')).isEqualTo("08P01");
      assertThat(c.read()).isNull();
    }
    try (RawPgClient c = session()) {
      c.send(new FrontendMessage.Query("error"));
      assertThat(c.read().type()).isEqualTo('W');
      c.send(number(1));
      c.send(number(2)); // ignored after the error, as PostgreSQL ignores copy data outside COPY
      RawPgClient.Message e = c.untilReady();
      assertThat(e.field('S')).isEqualTo("ERROR");
      assertThat(e.field('C')).isEqualTo("22023");
      c.send(new FrontendMessage.Query("other"));
      assertThat(c.untilReady().field('C')).isEqualTo("42601");
    }
  }

  @Test
  void anotherMessageDuringTheStreamIsAProtocolViolation() throws Exception {
    try (RawPgClient c = session()) {
      c.send(new FrontendMessage.Query("echo"));
      assertThat(c.read().type()).isEqualTo('W');
      c.send(new FrontendMessage.Query("echo"));
      RawPgClient.Message e = c.readSkippingCopyData();
      assertThat(e.field('S')).isEqualTo("FATAL");
      assertThat(e.field('C')).isEqualTo("08P01");
      assertThat(c.readSkippingCopyDataOrEnd()).isNull();
    }
  }
}
