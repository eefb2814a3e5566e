package io.zenith.replication.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.netty.buffer.Unpooled;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.PgConnection;
import io.zenith.replication.client.ReplicationClient;
import io.zenith.replication.client.ReplicationOptions;
import io.zenith.replication.client.SystemIdentity;
import io.zenith.replication.client.WalChunk;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWire;
import io.zenith.replication.pgwire.ReplicationMessage;
import io.zenith.replication.pgwire.ReplicationMessage.HotStandbyFeedback;
import io.zenith.replication.pgwire.ReplicationMessage.PrimaryKeepalive;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyStatusUpdate;
import io.zenith.replication.pgwire.ReplicationMessage.XLogData;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.replication.testing.RealWal;
import io.zenith.wal.Lsn;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;

/**
 * The walsender side of {@link PgWireServer} over real sockets: our {@link ReplicationClient} and a
 * raw socket client against a {@link TestWalSender} serving real PostgreSQL 15 WAL ({@link
 * RealWal}) or synthetic sources whose demand and cancellation the tests observe.
 */
@ExtendWith(NettyLeakCheck.class)
class WalSenderTest {
  private static final org.slf4j.Logger log = LoggerFactory.getLogger(WalSenderTest.class);
  private static final Duration T = Duration.ofSeconds(30);
  private static final int MAX = QueryResponse.Replication.MAX_XLOG_DATA;
  private static final Lsn WAL_END = Lsn.parse("5/0");

  private final List<PgWireServer> servers = new ArrayList<>();

  @AfterEach
  void stopServers() {
    servers.forEach(PgWireServer::close);
  }

  private PgWireServer start(TestWalSender sender, PgWireServerOptions options) {
    PgWireServer s = PgWireServer.start(options, sender).block(T);
    servers.add(s);
    return s;
  }

  private PgWireServer start(TestWalSender sender) {
    return start(sender, PgWireServerOptions.builder().build());
  }

  private static TestWalSender sender() {
    return new TestWalSender(42, 16 << 20, Lsn.parse("0/3000000"));
  }

  private static PgConnectOptions options(PgWireServer s) {
    return PgConnectOptions.builder().port(s.port()).user("standby").applicationName("t").build();
  }

  private static ReplicationClient replicationClient(PgWireServer s, ReplicationOptions o) {
    return ReplicationClient.connect(options(s), o).block(T);
  }

  /** A raw replication connection that has sent {@code command} and read CopyBothResponse. */
  private static RawPgClient rawStream(PgWireServer s, String command) throws IOException {
    RawPgClient raw = new RawPgClient(s.port());
    raw.startup("raw", Map.of("replication", "true"));
    raw.untilReady();
    raw.send(new FrontendMessage.Query(command));
    RawPgClient.Message w = raw.read();
    assertThat(w.type()).isEqualTo('W');
    // format 0, no columns: what PostgreSQL's walsender sends
    assertThat(w.body()).containsExactly(0, 0, 0);
    return raw;
  }

  /** Contiguous synthetic WAL: byte i of the stream is (lsn + i) & 0xFF. */
  private static Flux<WalPiece> synthetic(Lsn from, int pieceSize) {
    return Flux.generate(
        () -> from,
        (at, sink) -> {
          byte[] b = new byte[pieceSize];
          for (int i = 0; i < pieceSize; i++) {
            b[i] = (byte) (at.value() + i);
          }
          sink.next(WalPiece.of(at, b));
          return at.plus(pieceSize);
        });
  }

  /** The server error {@code call} fails with: SQLSTATE, message, position. */
  private static List<String> serverError(ThrowingCallable call) {
    PgServerException e = catchThrowableOfType(PgServerException.class, call);
    assertThat(e).as("a server error").isNotNull();
    assertThat(e.severity()).isEqualTo("ERROR");
    return Arrays.asList(e.sqlState(), e.serverMessage(), e.notice().position());
  }

  private static XLogData xlogData(RawPgClient.Message m) {
    assertThat(m.type()).isEqualTo('d');
    return (XLogData) ReplicationMessage.parseServerMessage(m.body());
  }

  private static String tag(RawPgClient.Message m) {
    assertThat(m.type()).isEqualTo('C');
    return m.text().substring(0, m.body().length - 1);
  }

  // ---- streaming ----

  @Test
  void ourClientReceivesExactlyTheRealWalServedInMessagesOfAtMost128KiB() throws Exception {
    RealWal wal = RealWal.get();
    TestWalSender sender =
        new TestWalSender(wal.systemId(), wal.segmentSize(), wal.end())
            .streaming(cmd -> wal.pieces(cmd.start(), wal.end(), 1 << 20), wal::end);
    PgWireServer server = start(sender);
    ReplicationClient rc = replicationClient(server, ReplicationOptions.DEFAULT);
    SystemIdentity id = rc.identifySystem().block(T);
    assertThat(id.systemId()).isEqualTo(wal.systemId());
    assertThat(id.xlogPos()).isEqualTo(wal.end());
    assertThat(id.dbName()).isNull();

    // Not at a segment or page boundary: the server serves from exactly where it is asked.
    Lsn start = wal.start().plus(12_345);
    ByteArrayOutputStream received = new ByteArrayOutputStream();
    List<Integer> sizes = new ArrayList<>();
    Instant t0 = Instant.now();
    List<WalChunk> last = new ArrayList<>();
    rc.startReplication(null, start, 1)
        .doOnNext(
            c -> {
              received.write(c.array(), c.offset(), c.length());
              sizes.add(c.length());
              last.clear();
              last.add(c);
            })
        .blockLast(Duration.ofSeconds(60));
    Instant t1 = Instant.now();

    byte[] expected = wal.bytes(start, wal.end());
    assertThat(RealWal.digest(received.toByteArray())).isEqualTo(RealWal.digest(expected));
    // 1 MiB pieces cut into 128 KiB messages; the last piece is shorter
    assertThat(sizes).allMatch(n -> n <= MAX);
    assertThat(sizes).hasSize(expectedMessages(expected.length, 1 << 20));
    WalChunk lastChunk = last.get(0);
    assertThat(lastChunk.end()).isEqualTo(wal.end());
    assertThat(lastChunk.serverWalEnd()).isEqualTo(wal.end());
    assertThat(PgWire.fromPgMicros(lastChunk.serverSendTimeMicros()))
        .isBetween(t0.minusMillis(1), t1.plusMillis(1));
    // The source ended: CopyDone both ways, and the connection takes commands again.
    assertThat(rc.lastTimelineSwitch()).isEmpty();
    assertThat(rc.identifySystem().block(T).systemId()).isEqualTo(wal.systemId());
    assertThat(sender.commands).contains(new ReplicationCommand.StartReplication(null, start, 1));
    log.info(
        "served {} MiB of real WAL in {} messages to our client in {} ms",
        expected.length >> 20,
        sizes.size(),
        Duration.between(t0, t1).toMillis());
    rc.close().block(T);
  }

  private static int expectedMessages(long bytes, int pieceSize) {
    int n = 0;
    for (long left = bytes; left > 0; left -= pieceSize) {
      long piece = Math.min(left, pieceSize);
      n += (int) ((piece + MAX - 1) / MAX);
    }
    return n;
  }

  @Test
  void statusUpdatesReachTheHandlerWithTheClientsPositions() throws Exception {
    AtomicBoolean cancelled = new AtomicBoolean();
    Lsn start = Lsn.parse("0/1000000");
    TestWalSender sender =
        sender()
            .streaming(
                cmd ->
                    synthetic(cmd.start(), 64 << 10)
                        .take(16)
                        .concatWith(Flux.never())
                        .doOnCancel(() -> cancelled.set(true)),
                () -> WAL_END);
    PgWireServer server = start(sender);
    ReplicationClient rc =
        replicationClient(server, ReplicationOptions.DEFAULT.withStatusInterval(Duration.ZERO));
    AtomicReference<Lsn> received = new AtomicReference<>(start);
    Disposable stream = rc.startReplication("sk_1", start, 0).subscribe(c -> received.set(c.end()));
    Lsn end = start.plus(1 << 20);
    PgWal.await(T, "all WAL to arrive", () -> received.get().equals(end));
    PgWal.await(T, "the first status update", () -> !sender.statusUpdates().isEmpty());
    // Before any report, the client reports its start point for all three positions.
    StandbyStatusUpdate first = sender.statusUpdates().get(0);
    assertThat(List.of(first.write(), first.flush(), first.apply())).containsOnly(start).hasSize(3);

    Lsn write = end;
    Lsn flush = start.plus(512 << 10);
    Lsn apply = start.plus(256 << 10);
    rc.reportProgress(write, flush, apply);
    PgWal.await(
        T,
        "the reported positions at the handler",
        () ->
            sender.statusUpdates().stream()
                .anyMatch(
                    u ->
                        u.write().equals(write)
                            && u.flush().equals(flush)
                            && u.apply().equals(apply)));
    assertThat(sender.commands).contains(new ReplicationCommand.StartReplication("sk_1", start, 0));

    // Cancelling ends COPY mode; the server stops the source and the connection goes on.
    stream.dispose();
    PgWal.await(T, "the source to be cancelled", cancelled::get);
    assertThat(rc.identifySystem().block(T).systemId()).isEqualTo(42);
    rc.close().block(T);
  }

  @Test
  void hotStandbyFeedbackArrivesAReplyRequestGetsAKeepaliveAndCopyDoneEndsAsInPostgres()
      throws Exception {
    AtomicBoolean cancelled = new AtomicBoolean();
    TestWalSender sender =
        sender()
            .streaming(
                cmd -> Flux.<WalPiece>never().doOnCancel(() -> cancelled.set(true)), () -> WAL_END);
    PgWireServer server = start(sender);
    try (RawPgClient raw = rawStream(server, "START_REPLICATION 0/1000000")) {
      HotStandbyFeedback hs = new HotStandbyFeedback(123, -5, 1, 700, 0);
      raw.send(hs.toCopyData());
      StandbyStatusUpdate update =
          new StandbyStatusUpdate(
              Lsn.parse("0/1000000"), Lsn.parse("0/F00000"), Lsn.INVALID, 456, true);
      raw.send(update.toCopyData());
      PrimaryKeepalive k =
          (PrimaryKeepalive) ReplicationMessage.parseServerMessage(raw.read().body());
      assertThat(k.replyRequested()).isFalse();
      assertThat(k.walEnd()).isEqualTo(WAL_END);
      PgWal.await(T, "both messages at the handler", () -> sender.feedback.size() == 2);
      assertThat(sender.feedback).containsExactly(hs, update);

      raw.send(CopyDone.INSTANCE);
      assertThat(raw.read().type()).isEqualTo('c');
      assertThat(tag(raw.read())).isEqualTo("START_STREAMING");
      assertThat(tag(raw.read())).isEqualTo("START_REPLICATION");
      assertThat(raw.read().type()).isEqualTo('Z');
      assertThat(cancelled).isTrue();
      // the session goes on
      raw.send(new FrontendMessage.Query("IDENTIFY_SYSTEM"));
      assertThat(raw.read().type()).isEqualTo('T');
    }
  }

  @Test
  void aSourceThatEndsSendsCopyDoneAndTheStreamEndsWithTheClientsCopyDone() throws Exception {
    Lsn start = Lsn.parse("0/2000000");
    Lsn upTo = start.plus(300_000);
    TestWalSender sender =
        sender().streaming(cmd -> synthetic(cmd.start(), 100_000).take(3), () -> upTo);
    PgWireServer server = start(sender);
    try (RawPgClient raw = rawStream(server, "START_REPLICATION " + start)) {
      List<XLogData> data = new ArrayList<>();
      RawPgClient.Message m;
      for (m = raw.read(); m.type() == 'd'; m = raw.read()) {
        data.add(xlogData(m));
      }
      assertThat(m.type()).isEqualTo('c');
      assertThat(data)
          .extracting(XLogData::dataStart)
          .containsExactly(start, start.plus(100_000), start.plus(200_000));
      assertThat(data).extracting(XLogData::walEnd).containsOnly(upTo);
      for (XLogData x : data) {
        for (int i = 0; i < x.length(); i++) {
          assertThat(x.array()[x.offset() + i]).isEqualTo((byte) (x.dataStart().value() + i));
        }
      }
      // The client's last status update still reaches the handler after the server's CopyDone.
      StandbyStatusUpdate update = new StandbyStatusUpdate(upTo, upTo, upTo, 1, false);
      raw.send(update.toCopyData());
      raw.send(CopyDone.INSTANCE);
      assertThat(tag(raw.read())).isEqualTo("START_STREAMING");
      assertThat(tag(raw.read())).isEqualTo("START_REPLICATION");
      assertThat(raw.read().type()).isEqualTo('Z');
      assertThat(sender.statusUpdates()).containsExactly(update);
    }
  }

  @Test
  void aHistoricTimelineEndsWithTheNextTimelineRow() throws Exception {
    Lsn start = Lsn.parse("0/2000000");
    Lsn switchPoint = start.plus(200_000);
    TestWalSender sender = sender();
    sender.stream =
        cmd ->
            cmd.stream(synthetic(cmd.start(), 100_000).take(2), () -> switchPoint, m -> {})
                .withNextTimeline(2, switchPoint);
    PgWireServer server = start(sender);
    // PostgreSQL's message sequence, by a raw client
    try (RawPgClient raw = rawStream(server, "START_REPLICATION " + start + " TIMELINE 1")) {
      assertThat(raw.readSkippingCopyData().type()).isEqualTo('c');
      raw.send(CopyDone.INSTANCE);
      RawPgClient.Message t = raw.read();
      assertThat(t.type()).isEqualTo('T');
      assertThat(t.text()).contains("next_tli\u0000", "next_tli_startpos\u0000");
      RawPgClient.Message d = raw.read();
      assertThat(d.type()).isEqualTo('D');
      assertThat(d.text()).contains("2", switchPoint.toString());
      assertThat(tag(raw.read())).isEqualTo("START_STREAMING");
      assertThat(tag(raw.read())).isEqualTo("START_REPLICATION");
      assertThat(raw.read().type()).isEqualTo('Z');
    }
    // and as our client understands it
    ReplicationClient rc = replicationClient(server, ReplicationOptions.DEFAULT);
    List<WalChunk> chunks = rc.startReplication(null, start, 1).collectList().block(T);
    assertThat(chunks.get(chunks.size() - 1).end()).isEqualTo(switchPoint);
    assertThat(rc.lastTimelineSwitch())
        .contains(new ReplicationClient.TimelineSwitch(2, switchPoint));
    rc.close().block(T);
  }

  @Test
  void aFailingSourceGivesItsSqlStateAndTheSessionGoesOn() {
    Lsn start = Lsn.parse("0/1000000");
    PgServerException removed =
        TestWalSender.error(
            SqlState.UNDEFINED_FILE,
            "requested WAL segment 000000010000000000000001 has already been removed");
    AtomicReference<Throwable> failure = new AtomicReference<>(removed);
    TestWalSender sender =
        sender()
            .streaming(
                cmd -> synthetic(cmd.start(), 1000).take(3).concatWith(Flux.error(failure.get())),
                () -> WAL_END);
    PgWireServer server = start(sender);
    ReplicationClient rc = replicationClient(server, ReplicationOptions.DEFAULT);
    List<WalChunk> got = new CopyOnWriteArrayList<>();
    assertThat(
            serverError(() -> rc.startReplication(null, start, 0).doOnNext(got::add).blockLast(T)))
        .containsExactly(SqlState.UNDEFINED_FILE, removed.serverMessage(), null);
    assertThat(got).hasSize(3);
    assertThat(rc.identifySystem().block(T).systemId()).isEqualTo(42);

    failure.set(new IOException("disk gone"));
    assertThat(serverError(() -> rc.startReplication(null, start, 0).blockLast(T)))
        .containsExactly(SqlState.INTERNAL_ERROR, "WAL streaming failed: disk gone", null);
    assertThat(rc.identifySystem().block(T).systemId()).isEqualTo(42);
    rc.close().block(T);
  }

  @Test
  void aSourceWithAGapFailsTheStreamAndIsCancelled() {
    Lsn start = Lsn.parse("0/1000000");
    AtomicBoolean cancelled = new AtomicBoolean();
    TestWalSender sender =
        sender()
            .streaming(
                cmd ->
                    Flux.just(
                            // tracked by the leak detector: the rejected piece is released too
                            new WalPiece(start, Unpooled.directBuffer(100).writeZero(100)),
                            new WalPiece(
                                start.plus(101), Unpooled.directBuffer(100).writeZero(100)))
                        .concatWith(Flux.never())
                        .doOnCancel(() -> cancelled.set(true)),
                () -> WAL_END);
    PgWireServer server = start(sender);
    ReplicationClient rc = replicationClient(server, ReplicationOptions.DEFAULT);
    assertThat(serverError(() -> rc.startReplication(null, start, 0).blockLast(T)))
        .containsExactly(
            SqlState.INTERNAL_ERROR,
            "internal error: WAL source is not contiguous: expected WAL from 0/1000064,"
                + " got WalPiece[0/1000065..0/10000C9, 100 bytes]",
            null);
    assertThat(cancelled).isTrue();
    assertThat(rc.identifySystem().block(T).systemId()).isEqualTo(42);
    rc.close().block(T);
  }

  // ---- backpressure and disconnects ----

  @Test
  void aClientThatStopsReadingStopsTheSourceAndResumesItWhenItReadsAgain() throws Exception {
    int piece = 64 << 10;
    List<Long> requests = new CopyOnWriteArrayList<>();
    AtomicLong emitted = new AtomicLong();
    AtomicBoolean cancelled = new AtomicBoolean();
    TestWalSender sender =
        sender()
            .streaming(
                cmd ->
                    Flux.<WalPiece, Lsn>generate(
                            cmd::start,
                            (at, sink) -> {
                              emitted.incrementAndGet();
                              sink.next(
                                  new WalPiece(at, Unpooled.directBuffer(piece).writeZero(piece)));
                              return at.plus(piece);
                            })
                        .doOnRequest(requests::add)
                        .doOnCancel(() -> cancelled.set(true)),
                () -> WAL_END);
    PgWireServer server = start(sender);
    try (RawPgClient raw = rawStream(server, "START_REPLICATION 0/1000000")) {
      long stalled = PgWal.awaitStable(T, "the source to stop being asked for data", emitted::get);
      log.info(
          "a client that does not read got {} KiB before the source stopped being asked",
          stalled * piece >> 10);
      // Socket buffers on both sides plus the write-buffer high-water mark plus one piece.
      assertThat(stalled * piece).isLessThan(32L << 20);
      // One piece at a time, and none outstanding while the channel is not writable.
      assertThat(requests).containsOnly(1L).hasSize((int) stalled);
      assertThat(cancelled).isFalse();

      // Reading again makes the server ask for more.
      long bytes = 0;
      Lsn expected = Lsn.parse("0/1000000");
      while (bytes < 2 * stalled * piece + (8 << 20)) {
        XLogData x = xlogData(raw.read());
        assertThat(x.dataStart()).isEqualTo(expected);
        expected = x.dataStart().plus(x.length());
        bytes += x.length();
      }
      assertThat(emitted.get()).isGreaterThan(stalled);
    }
    PgWal.await(T, "the source to be cancelled", cancelled::get);
    PgWal.await(T, "the connection to be gone", () -> server.connectionCount() == 0);
  }

  @Test
  void aClientThatDisconnectsOrTerminatesCancelsTheSourceAtOnce() throws Exception {
    List<Long> cancelledAt = new CopyOnWriteArrayList<>();
    TestWalSender sender =
        sender()
            .streaming(
                cmd ->
                    synthetic(cmd.start(), 1000)
                        .take(5)
                        .concatWith(Flux.never())
                        .doOnCancel(() -> cancelledAt.add(System.nanoTime())),
                () -> WAL_END);
    PgWireServer server = start(sender);
    long closedAt;
    try (RawPgClient raw = rawStream(server, "START_REPLICATION 0/1000000")) {
      for (int i = 0; i < 5; i++) {
        xlogData(raw.read());
      }
      closedAt = System.nanoTime();
    }
    PgWal.await(T, "the source to be cancelled", () -> cancelledAt.size() == 1);
    long ms = (cancelledAt.get(0) - closedAt) / 1_000_000;
    log.info("source cancelled {} ms after the client closed its socket", ms);
    assertThat(ms).isLessThan(2000);

    try (RawPgClient raw = rawStream(server, "START_REPLICATION 0/1000000")) {
      raw.send(FrontendMessage.Terminate.INSTANCE);
      assertThat(raw.readSkippingCopyDataOrEnd()).isNull();
    }
    PgWal.await(T, "the second source to be cancelled", () -> cancelledAt.size() == 2);
    PgWal.await(T, "the connections to be gone", () -> server.connectionCount() == 0);
  }

  // ---- bad input ----

  @Test
  void badCommandsGetPreciseErrorsAndTheSessionGoesOn() {
    TestWalSender sender =
        sender().streaming(cmd -> synthetic(cmd.start(), 100).take(1), () -> WAL_END);
    PgWireServer server = start(sender);
    PgConnection c = PgConnection.connect(options(server).withReplication()).block(T);
    assertThat(serverError(() -> c.simpleQuery("START_REPLICATION PHYSICAL 0/XYZ").block(T)))
        .containsExactly(
            SqlState.SYNTAX_ERROR,
            "syntax error at or near \"0\": expected a WAL location (X/X)",
            "28");
    assertThat(serverError(() -> c.simpleQuery("SELECT 1").block(T)).get(0))
        .isEqualTo(SqlState.SYNTAX_ERROR);
    assertThat(c.simpleQuery("IDENTIFY_SYSTEM").block(T).rows()).hasSize(1);
    c.close().block(T);
  }

  @Test
  void startReplicationOutsideAReplicationConnectionGetsPostgresSyntaxError() {
    AtomicBoolean subscribed = new AtomicBoolean();
    TestWalSender sender =
        sender()
            .streaming(
                cmd -> Flux.<WalPiece>never().doOnSubscribe(s -> subscribed.set(true)),
                () -> WAL_END);
    PgWireServer server = start(sender);
    PgConnection c = PgConnection.connect(options(server)).block(T);
    assertThat(serverError(() -> c.simpleQuery("  START_REPLICATION 0/0").block(T)))
        .containsExactly(
            SqlState.SYNTAX_ERROR, "syntax error at or near \"START_REPLICATION\"", "3");
    assertThat(subscribed).isFalse();
    assertThat(c.simpleQuery("SHOW wal_segment_size").block(T).singleValue()).isEqualTo("16MB");
    c.close().block(T);
  }

  @Test
  void garbageDuringStreamingIsFatalForThatConnectionOnly() throws Exception {
    List<Boolean> cancelled = new CopyOnWriteArrayList<>();
    TestWalSender sender =
        sender()
            .streaming(
                cmd -> Flux.<WalPiece>never().doOnCancel(() -> cancelled.add(true)), () -> WAL_END);
    PgWireServer server = start(sender);
    PgConnection bystander = PgConnection.connect(options(server).withReplication()).block(T);
    Map<byte[], String> garbage =
        Map.of(
            "zzz".getBytes(StandardCharsets.US_ASCII),
            "unknown standby message type 0x7a in CopyData",
            new byte[] {'r', 0, 0, 0, 0, 0, 0, 0, 0, 0},
            "not a standby status update: 10 bytes (expected 34), type 0x72",
            new byte[] {'h', 0, 0},
            "hot standby feedback message of 3 bytes, expected 25",
            new byte[0],
            "empty CopyData message from the standby");
    for (Map.Entry<byte[], String> g : garbage.entrySet()) {
      try (RawPgClient raw = rawStream(server, "START_REPLICATION 0/1000000")) {
        raw.send(new CopyData(g.getKey()));
        RawPgClient.Message e = raw.readSkippingCopyData();
        assertThat(e.type()).isEqualTo('E');
        assertThat(e.field('S')).isEqualTo("FATAL");
        assertThat(e.field('C')).isEqualTo(SqlState.PROTOCOL_VIOLATION);
        assertThat(e.field('M')).isEqualTo(g.getValue());
        assertThat(raw.readSkippingCopyDataOrEnd()).isNull();
      }
    }
    try (RawPgClient raw = rawStream(server, "START_REPLICATION 0/1000000")) {
      raw.send(new FrontendMessage.Query("IDENTIFY_SYSTEM"));
      RawPgClient.Message e = raw.readSkippingCopyData();
      assertThat(e.field('C')).isEqualTo(SqlState.PROTOCOL_VIOLATION);
      assertThat(e.field('M'))
          .isEqualTo("unexpected Query[sql=IDENTIFY_SYSTEM] during streaming replication");
      assertThat(raw.readSkippingCopyDataOrEnd()).isNull();
    }
    PgWal.await(T, "every source to be cancelled", () -> cancelled.size() == 5);
    assertThat(bystander.simpleQuery("IDENTIFY_SYSTEM").block(T).rows()).hasSize(1);
    bystander.close().block(T);
  }

  // ---- keepalives and the timeout ----

  @Test
  void keepalivesWhileIdleAReplyRequestAtHalfTheTimeoutAndASilentClientIsDisconnected()
      throws Exception {
    Logger streamLog = (Logger) LoggerFactory.getLogger(WalSenderStream.class);
    ListAppender<ILoggingEvent> logged = new ListAppender<>();
    logged.start();
    streamLog.addAppender(logged);
    AtomicBoolean cancelled = new AtomicBoolean();
    try {
      TestWalSender sender =
          sender()
              .streaming(
                  cmd -> Flux.<WalPiece>never().doOnCancel(() -> cancelled.set(true)),
                  () -> WAL_END);
      PgWireServer server =
          start(
              sender,
              PgWireServerOptions.builder()
                  .keepaliveInterval(Duration.ofMillis(150))
                  // Long enough for several keepalives before the reply request even when the
                  // machine is loaded and timers fire late.
                  .walSenderTimeout(Duration.ofMillis(2400))
                  .build());
      List<Long> plain = new ArrayList<>();
      List<Long> replyRequested = new ArrayList<>();
      long t0;
      long closed;
      try (RawPgClient raw = rawStream(server, "START_REPLICATION 0/1000000")) {
        t0 = System.nanoTime();
        for (RawPgClient.Message m = raw.read(); m != null; m = raw.read()) {
          long at = (System.nanoTime() - t0) / 1_000_000;
          PrimaryKeepalive k = (PrimaryKeepalive) ReplicationMessage.parseServerMessage(m.body());
          assertThat(k.walEnd()).isEqualTo(WAL_END);
          (k.replyRequested() ? replyRequested : plain).add(at);
        }
        closed = (System.nanoTime() - t0) / 1_000_000;
      }
      log.info(
          "keepalives at {} ms, reply requested at {} ms, disconnected at {} ms",
          plain,
          replyRequested,
          closed);
      assertThat(replyRequested).hasSize(1);
      assertThat(replyRequested.get(0)).isBetween(1100L, 2300L);
      assertThat(plain.size()).isGreaterThanOrEqualTo(3);
      assertThat(closed).isBetween(2300L, 6000L);
      PgWal.await(T, "the source to be cancelled", cancelled::get);
      assertThat(logged.list)
          .anySatisfy(
              e ->
                  assertThat(e.getFormattedMessage())
                      .contains("terminating walsender connection due to replication timeout"));
    } finally {
      streamLog.detachAppender(logged);
    }
  }

  @Test
  void aClientThatAnswersKeepaliveRequestsStaysConnected() throws Exception {
    TestWalSender sender = sender().streaming(cmd -> Flux.never(), () -> WAL_END);
    PgWireServer server =
        start(
            sender,
            PgWireServerOptions.builder()
                .keepaliveInterval(Duration.ZERO)
                .walSenderTimeout(Duration.ofMillis(1000))
                .build());
    // Status updates only when asked: only the server's reply requests keep it alive.
    ReplicationClient rc =
        replicationClient(server, ReplicationOptions.DEFAULT.withStatusInterval(Duration.ZERO));
    AtomicReference<Throwable> error = new AtomicReference<>();
    Disposable stream =
        rc.startReplication(null, Lsn.parse("0/1000000"), 0).subscribe(c -> {}, error::set);
    PgWal.await(T, "three answered keepalives", () -> rc.metrics().keepalivesAnswered() >= 3);
    assertThat(error.get()).isNull();
    assertThat(rc.connection().isClosed()).isFalse();
    assertThat(sender.statusUpdates().size()).isGreaterThanOrEqualTo(4);
    stream.dispose();
    assertThat(rc.identifySystem().block(T).systemId()).isEqualTo(42);
    rc.close().block(T);
  }

  @Test
  void piecesThatArriveAfterTheEndOrThatTheSourceDiscardsAreReleased() throws Exception {
    // With paranoid leak detection, an unreleased piece fails the class (and this test).
    AtomicLong made = new AtomicLong();
    TestWalSender sender =
        sender()
            .streaming(
                cmd ->
                    cmd.slot() == null
                        ? new LateSource(cmd.start(), made)
                        // queues all 200 at once; a cancel discards the queue
                        : Flux.range(0, 200)
                            .map(
                                i -> {
                                  made.incrementAndGet();
                                  return new WalPiece(
                                      cmd.start().plus(i * 4096L),
                                      Unpooled.directBuffer(4096).writeZero(4096));
                                })
                            .onBackpressureBuffer(),
                () -> WAL_END);
    PgWireServer server = start(sender);
    for (String command :
        List.of("START_REPLICATION 0/1000000", "START_REPLICATION SLOT s 0/1000000")) {
      try (RawPgClient raw = rawStream(server, command)) {
        for (int j = 0; j < 20; j++) {
          xlogData(raw.read());
        }
        raw.send(CopyDone.INSTANCE);
        assertThat(raw.readSkippingCopyData().type()).isEqualTo('c');
        assertThat(tag(raw.read())).isEqualTo("START_STREAMING");
      }
    }
    PgWal.await(T, "the connections to be gone", () -> server.connectionCount() == 0);
    assertThat(made.get()).isGreaterThan(40);
    assertThat(NettyLeakCheck.collectLeakReports()).isEmpty();
  }

  /**
   * Emits each requested piece 2 ms later from another thread, also after a cancel (which the
   * Reactive Streams rules allow): the late pieces are the server's to release.
   */
  private record LateSource(Lsn start, AtomicLong made)
      implements org.reactivestreams.Publisher<WalPiece> {
    @Override
    public void subscribe(org.reactivestreams.Subscriber<? super WalPiece> s) {
      AtomicLong next = new AtomicLong(start.value());
      s.onSubscribe(
          new org.reactivestreams.Subscription() {
            @Override
            public void request(long n) {
              for (long i = 0; i < n; i++) {
                reactor.core.scheduler.Schedulers.parallel()
                    .schedule(
                        () -> {
                          made.incrementAndGet();
                          Lsn at = Lsn.of(next.getAndAdd(4096));
                          s.onNext(new WalPiece(at, Unpooled.directBuffer(4096).writeZero(4096)));
                        },
                        2,
                        java.util.concurrent.TimeUnit.MILLISECONDS);
              }
            }

            @Override
            public void cancel() {}
          });
    }
  }

  @Test
  void aFeedbackConsumerThatThrowsEndsTheSessionWithAnInternalError() throws Exception {
    TestWalSender sender = sender();
    sender.stream =
        cmd ->
            cmd.stream(
                Flux.never(),
                () -> WAL_END,
                m -> {
                  throw new IllegalStateException("feedback bug");
                });
    PgWireServer server = start(sender);
    try (RawPgClient raw = rawStream(server, "START_REPLICATION 0/1000000")) {
      raw.send(
          StandbyStatusUpdate.of(Lsn.INVALID, Lsn.INVALID, Lsn.INVALID, Instant.now())
              .toCopyData());
      RawPgClient.Message e = raw.readSkippingCopyData();
      assertThat(e.field('S')).isEqualTo("FATAL");
      assertThat(e.field('C')).isEqualTo(SqlState.INTERNAL_ERROR);
      assertThat(e.field('M')).isEqualTo("internal error: feedback bug");
    }
  }
}
