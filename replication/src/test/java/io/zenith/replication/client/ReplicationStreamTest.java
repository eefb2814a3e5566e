package io.zenith.replication.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentFiles;
import io.zenith.wal.WalSegmentName;
import io.zenith.wal.WalStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

/**
 * {@link ReplicationClient} against a real PostgreSQL 15: the streamed WAL is compared with the
 * server's own pg_wal files, backpressure is observed from both ends, errors carry SQLSTATEs.
 */
@ExtendWith(NettyLeakCheck.class)
class ReplicationStreamTest {
  private static final Logger log = LoggerFactory.getLogger(ReplicationStreamTest.class);
  private static final Duration T = Duration.ofSeconds(30);
  private static final int RM_XLOG = 0;
  private static final int RM_HEAP2 = 9;
  private static final int RM_HEAP = 10;
  private static final int RM_LOGICALMSG = 21;
  private static final int XLOG_SWITCH = 0x40;

  private static PgCluster cluster;
  private static int segmentSize;

  @BeforeAll
  static void startCluster() {
    cluster = PgCluster.initdb();
    cluster.configure(
        Map.of(
            "wal_level", "replica",
            "max_wal_senders", "8",
            "max_replication_slots", "8",
            "fsync", "off",
            "max_wal_size", "1GB"));
    cluster.start();
    segmentSize = PgWal.segmentSize(cluster);
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  static PgConnectOptions options(PgCluster c, String applicationName) {
    return PgConnectOptions.builder()
        .port(c.port())
        .user("postgres")
        .applicationName(applicationName)
        .build();
  }

  /** A record as both sides must agree on it: position and exact bytes. */
  record Rec(Lsn lsn, Lsn end, int rmid, int info, byte[] bytes) {
    static Rec of(WalRecord r) {
      return new Rec(r.lsn(), r.end(), r.rmid(), r.info(), r.copyBytes());
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Rec r
          && lsn.equals(r.lsn)
          && end.equals(r.end)
          && Arrays.equals(bytes, r.bytes);
    }

    @Override
    public int hashCode() {
      return lsn.hashCode();
    }

    @Override
    public String toString() {
      return "Rec[" + lsn + ".." + end + " rmid=" + rmid + " len=" + bytes.length + "]";
    }
  }

  private static final String WORKLOAD =
      """
      create table t (id int primary key, v text);
      insert into t select g, repeat('x', 100) from generate_series(1, 20000) g;
      checkpoint;
      -- first change of every page after a checkpoint writes a full-page image
      update t set v = repeat('y', 100);
      select pg_switch_wal();
      -- one record larger than a whole 16 MiB segment
      select pg_logical_emit_message(false, 'zenith', repeat('m', 17 * 1024 * 1024));
      insert into t values (0, 'last');
      """;

  @Test
  void streamedWalEqualsThePgWalFilesRecordForRecordAndByteForByte() throws Exception {
    ReplicationClient rc = ReplicationClient.connect(options(cluster, "zenith_stream")).block(T);
    SystemIdentity id = rc.identifySystem().block(T);
    assertThat(Long.toUnsignedString(id.systemId()))
        .isEqualTo(cluster.sql("select system_identifier from pg_control_system()").trim());
    assertThat(id.dbName()).isNull();
    // A physical slot reserves WAL from the last checkpoint's redo point: make that recent.
    cluster.sql("checkpoint");
    assertThat(rc.createPhysicalSlot("stream_slot", true).block(T))
        .isInstanceOf(SlotCreation.Created.class);
    SlotInfo slot = rc.readSlot("stream_slot").block(T).orElseThrow();
    assertThat(slot.restartLsn().isValid()).isTrue();
    // Like walreceiver: from the start of the segment, so whole segments can be compared.
    Lsn start = PgWal.segmentStart(slot.restartLsn(), segmentSize);
    WalRecordAssembler.Options walOptions =
        new WalRecordAssembler.Options(segmentSize, id.systemId(), true);

    ByteArrayOutputStream streamed = new ByteArrayOutputStream();
    AtomicReference<Lsn> stopAt = new AtomicReference<>(Lsn.MAX);
    List<Lsn> gaps = new ArrayList<>();
    AtomicReference<Lsn> next = new AtomicReference<>(start);
    Flux<WalChunk> chunks =
        rc.startReplication("stream_slot", start, id.timeline())
            .doOnNext(
                c -> {
                  if (!c.start().equals(next.get())) {
                    gaps.add(c.start());
                  }
                  next.set(c.end());
                  streamed.write(c.array(), c.offset(), c.length());
                })
            .takeUntil(c -> !c.end().isBefore(stopAt.get()));
    // Records decoded while streaming, by the pageserver's decoder.
    CompletableFuture<List<Rec>> live =
        WalStream.records(chunks.map(WalChunk::data), start, walOptions)
            .map(Rec::of)
            .collectList()
            .toFuture();

    long t0 = System.nanoTime();
    cluster.sql(WORKLOAD);
    Lsn flushed = PgWal.lsn(cluster, "pg_current_wal_flush_lsn()");
    stopAt.set(flushed);
    // One more flushed commit, so that a chunk passes stopAt even if all was received already.
    cluster.sql("insert into t values (-1, 'after')");
    List<Rec> streamedRecords = live.get(60, TimeUnit.SECONDS);
    double seconds = (System.nanoTime() - t0) / 1e9;
    Lsn end = start.plus(streamed.size());
    log.info(
        "streamed {} MB of WAL ({} records) from {} to {} while the workload ran ({} s)",
        streamed.size() >> 20,
        streamedRecords.size(),
        start,
        end,
        String.format("%.2f", seconds));
    assertThat(gaps).isEmpty();
    assertThat(end).isGreaterThanOrEqualTo(flushed);

    // Byte for byte against the segment files.
    byte[] fileBytes = PgWal.readWal(cluster, id.timeline(), segmentSize, start, end);
    assertThat(fileBytes.length).isEqualTo(streamed.size());
    assertThat(Arrays.mismatch(fileBytes, streamed.toByteArray())).isEqualTo(-1);

    // Record for record against the files read with WalSegmentFiles.
    List<Path> files = new ArrayList<>();
    long firstSeg = start.segmentNumber(segmentSize);
    long lastSeg = end.plus(-1).segmentNumber(segmentSize);
    for (long s = firstSeg; s <= lastSeg; s++) {
      files.add(
          cluster.walDir().resolve(new WalSegmentName(id.timeline(), s).fileName(segmentSize)));
    }
    WalSegmentFiles.Sequence seq = WalSegmentFiles.sequence(files);
    List<Rec> fileRecords =
        WalStream.records(WalSegmentFiles.read(seq, start), start, walOptions)
            .takeWhile(r -> !r.end().isAfter(end))
            .map(Rec::of)
            .collectList()
            .block(T);
    assertThat(streamedRecords).hasSameSizeAs(fileRecords);
    assertThat(streamedRecords).isEqualTo(fileRecords);

    // The workload's landmarks are in there.
    assertThat(
            streamedRecords.stream()
                .filter(r -> r.rmid() == RM_LOGICALMSG && r.bytes().length > 16 * 1024 * 1024)
                .count())
        .as("logical messages larger than a segment")
        .isEqualTo(1);
    assertThat(
            streamedRecords.stream()
                .filter(r -> r.rmid() == RM_XLOG && (r.info() & 0xF0) == XLOG_SWITCH)
                .count())
        .as("XLOG_SWITCH records")
        .isGreaterThanOrEqualTo(1);
    long fpiRecords =
        streamedRecords.stream()
            .filter(r -> (r.rmid() == RM_HEAP || r.rmid() == RM_HEAP2) && r.bytes().length > 4096)
            .count();
    assertThat(fpiRecords).as("heap records carrying a full-page image").isGreaterThan(100);

    // Throughput of the client alone: the same range again, nothing done with the chunks. Some
    // WAL after the range, so that neither reader waits for a keepalive to see it has passed it.
    cluster.sql("insert into t values (-2, 'more')");
    long t1 = System.nanoTime();
    MessageDigest again = PgWal.sha256();
    rc.startReplication("stream_slot", start, id.timeline())
        .doOnNext(
            c ->
                again.update(
                    c.array(), c.offset(), (int) Math.min(c.length(), end.minus(c.start()))))
        .takeUntil(c -> !c.end().isBefore(end))
        .blockLast(T);
    double replaySeconds = (System.nanoTime() - t1) / 1e9;
    MessageDigest expected = PgWal.sha256();
    expected.update(streamed.toByteArray());
    assertThat(again.digest()).isEqualTo(expected.digest());
    rc.close().block(T);

    // pg_receivewal over the same slot and range, for comparison (logged, not asserted).
    Path dir = Files.createTempDirectory("zenith-receivewal-");
    cluster.distribution().createOwnedDirectory(dir);
    long t2 = System.nanoTime();
    cluster.run(
        "pg_receivewal",
        List.of(
            "-h",
            "127.0.0.1",
            "-p",
            Integer.toString(cluster.port()),
            "-U",
            "postgres",
            "-D",
            dir.toString(),
            "-S",
            "stream_slot",
            "--endpos=" + end,
            "--no-sync",
            "-n"));
    double receivewalSeconds = (System.nanoTime() - t2) / 1e9;
    PgCluster.deleteTree(dir);
    log.info(
        "re-streaming {} MB: ReplicationClient {} MB/s ({} s), pg_receivewal {} MB/s ({} s incl."
            + " process start and writing files)",
        streamed.size() >> 20,
        String.format("%.0f", streamed.size() / 1048576.0 / replaySeconds),
        String.format("%.2f", replaySeconds),
        String.format("%.0f", streamed.size() / 1048576.0 / receivewalSeconds),
        String.format("%.2f", receivewalSeconds));
  }

  @ParameterizedTest(name = "maxBufferedChunks = {0}")
  @ValueSource(ints = {0, 4})
  void aSlowConsumerStopsSocketReadsAndTheServerStopsSending(int limit) throws Exception {
    String app = "zenith_slow_" + limit;
    ReplicationClient rc =
        ReplicationClient.connect(
                options(cluster, app), ReplicationOptions.DEFAULT.withMaxBufferedChunks(limit))
            .block(T);
    SystemIdentity id = rc.identifySystem().block(T);
    Lsn start = id.xlogPos();
    MessageDigest received = PgWal.sha256();
    AtomicReference<Lsn> receivedEnd = new AtomicReference<>(start);
    List<Lsn> gaps = new ArrayList<>();
    BaseSubscriber<WalChunk> consumer =
        new BaseSubscriber<>() {
          @Override
          protected void hookOnSubscribe(org.reactivestreams.Subscription s) {
            // no demand yet
          }

          @Override
          protected void hookOnNext(WalChunk c) {
            if (!c.start().equals(receivedEnd.get())) {
              gaps.add(c.start());
            }
            received.update(c.array(), c.offset(), c.length());
            receivedEnd.set(c.end());
          }
        };
    rc.startReplication(null, start, 0).subscribe(consumer);
    PgWal.await(T, "the stream to start", () -> rc.metrics().statusUpdatesSent() > 0);

    // ~96 MiB of WAL, while the consumer takes one chunk per 10 ms (about 10 MiB/s at most).
    CompletableFuture<String> workload =
        CompletableFuture.supplyAsync(
            () ->
                cluster.sql(
                    "select count(pg_logical_emit_message(false, 'bp', repeat('x', 16 * 1024 *"
                        + " 1024))) from generate_series(1, 6)"));
    // Requests start once WAL has piled up on the server, so that every one of them finds data
    // waiting and reads pause after each, however slowly a loaded machine runs the workload.
    PgWal.await(
        T,
        "32 MiB of WAL to wait on the server",
        () -> PgWal.lsn(cluster, "pg_current_wal_flush_lsn()").minus(start) > 32L << 20);
    Flux.interval(Duration.ofMillis(10)).take(100).doOnNext(i -> consumer.request(1)).blockLast(T);
    workload.get(60, TimeUnit.SECONDS);
    Lsn serverFlush = PgWal.lsn(cluster, "pg_current_wal_flush_lsn()");

    // Now no demand at all: the client must stop reading and the walsender must stall.
    PgWal.await(T, "reads to pause", () -> !rc.metrics().reading());
    Lsn[] lastSent = {Lsn.INVALID};
    long[] stableSince = {System.nanoTime()};
    PgWal.await(
        T,
        "the walsender to stop sending",
        () -> {
          Lsn sent =
              PgWal.lsn(
                  cluster,
                  "sent_lsn from pg_stat_replication where application_name = '" + app + "'");
          if (!sent.equals(lastSent[0])) {
            lastSent[0] = sent;
            stableSince[0] = System.nanoTime();
          }
          return System.nanoTime() - stableSince[0] > 500_000_000L;
        });
    StreamMetrics m = rc.metrics();
    long bytesSent = lastSent[0].minus(start);
    long backlog = serverFlush.minus(lastSent[0]);
    log.info(
        "maxBufferedChunks {}, paused: server flushed {} MB, sent {} MB, client received {} MB,"
            + " buffered {} chunks / {} bytes (max {} / {}), read pauses {}, resumes {}",
        limit,
        serverFlush.minus(start) >> 20,
        bytesSent >> 20,
        m.bytesReceived() >> 20,
        m.bufferedChunks(),
        m.bufferedBytes(),
        m.maxBufferedChunksSeen(),
        m.maxBufferedBytesSeen(),
        m.readPauses(),
        m.readResumes());
    assertThat(m.reading()).isFalse();
    // No demand: the stream is not waiting for the server, which reported WAL beyond what arrived.
    assertThat(m.waiting()).isFalse();
    assertThat(Lsn.of(m.serverWalEnd()).isAfter(Lsn.of(m.receivedEnd())))
        .as("server WAL end %s after received %s", m.serverWalEnd(), m.receivedEnd())
        .isTrue();
    assertThat(rc.connection().channel().config().isAutoRead()).isFalse();
    assertThat(m.readPauses()).isGreaterThan(10);
    // the documented bound: the read-ahead plus what one socket read completes
    assertThat(m.maxBufferedBytesSeen()).isLessThanOrEqualTo(limit * (128L << 10) + (192L << 10));
    if (limit > 0) {
      assertThat(m.maxBufferedChunksSeen()).isGreaterThanOrEqualTo(limit);
    }
    // The server has most of the WAL still to send: the TCP window closed.
    assertThat(backlog).isGreaterThan(40L << 20);
    // What the server sent but we did not read sits in socket buffers, not in our heap.
    assertThat(bytesSent - m.bytesReceived()).isLessThan(32L << 20);

    // Resume: everything arrives, contiguous, identical to pg_wal.
    consumer.requestUnbounded();
    PgWal.await(
        Duration.ofSeconds(60),
        "the rest of the WAL",
        () -> !receivedEnd.get().isBefore(serverFlush));
    // Everything taken and more wanted: now the stream waits for the server.
    PgWal.await(T, "the stream to wait for the server", () -> rc.metrics().waiting());
    consumer.dispose();
    assertThat(gaps).isEmpty();
    MessageDigest fromFiles = PgWal.sha256();
    PgWal.readWal(cluster, id.timeline(), segmentSize, start, receivedEnd.get(), fromFiles::update);
    assertThat(received.digest()).isEqualTo(fromFiles.digest());
    assertThat(rc.metrics().maxBufferedBytesSeen())
        .isLessThanOrEqualTo(limit * (128L << 10) + (192L << 10));
    // after cancel the connection is usable again
    assertThat(rc.identifySystem().block(T).systemId()).isEqualTo(id.systemId());
    rc.close().block(T);
  }

  @Test
  void keepalivesThatRequestAReplyAreAnswered() {
    // No periodic status updates; the server asks after half of wal_sender_timeout (1 s here)
    // and would drop us after 2 s without an answer.
    ReplicationClient rc =
        ReplicationClient.connect(
                options(cluster, "zenith_keepalive").toBuilder()
                    .parameter("wal_sender_timeout", "2s")
                    .build(),
                ReplicationOptions.DEFAULT.withStatusInterval(Duration.ZERO))
            .block(T);
    Lsn start = rc.identifySystem().block(T).xlogPos();
    List<Throwable> errors = new ArrayList<>();
    var sub = rc.startReplication(null, start, 0).subscribe(c -> {}, errors::add);
    PgWal.await(T, "three answered keepalives", () -> rc.metrics().keepalivesAnswered() >= 3);
    assertThat(errors).isEmpty();
    assertThat(
            cluster
                .sql(
                    "select state from pg_stat_replication where application_name ="
                        + " 'zenith_keepalive'")
                .trim())
        .isEqualTo("streaming");
    sub.dispose();
    rc.close().block(T);
  }

  @Test
  void aStartPointAheadOfTheServerFailsWithItsErrorAndTheConnectionStaysUsable() {
    ReplicationClient rc = ReplicationClient.connect(options(cluster, "zenith_errors")).block(T);
    SystemIdentity id = rc.identifySystem().block(T);
    Lsn future = id.xlogPos().plus(1L << 32);
    StepVerifier.create(rc.startReplication(null, future, 0))
        .expectErrorSatisfies(
            e -> {
              assertThat(e).isInstanceOf(PgServerException.class);
              PgServerException pe = (PgServerException) e;
              assertThat(pe.sqlState()).isEqualTo(SqlState.INTERNAL_ERROR);
              assertThat(pe.serverMessage())
                  .startsWith("requested starting point " + future)
                  .contains("is ahead of the WAL flush position of this server");
              assertThat(pe.getMessage()).contains("START_REPLICATION PHYSICAL " + future);
            })
        .verify(T);
    StepVerifier.create(rc.startReplication("no_such_slot", id.xlogPos(), 0))
        .expectErrorSatisfies(
            e ->
                assertThat(((PgServerException) e).sqlState()).isEqualTo(SqlState.UNDEFINED_OBJECT))
        .verify(T);
    assertThat(rc.identifySystem().block(T).systemId()).isEqualTo(id.systemId());
    rc.close().block(T);
  }

  @Test
  void slotsAlreadyExistingAreReportedAsSuchAndNamesAreChecked() {
    ReplicationClient rc = ReplicationClient.connect(options(cluster, "zenith_slots")).block(T);
    assertThat(rc.createPhysicalSlot("twice", false).block(T))
        .isInstanceOf(SlotCreation.Created.class);
    SlotCreation again = rc.createPhysicalSlot("twice", true).block(T);
    assertThat(again).isInstanceOf(SlotCreation.AlreadyExists.class);
    assertThat(((SlotCreation.AlreadyExists) again).notice().sqlState())
        .isEqualTo(SqlState.DUPLICATE_OBJECT);
    assertThat(rc.readSlot("twice").block(T).orElseThrow().restartLsn()).isEqualTo(Lsn.INVALID);
    assertThat(rc.readSlot("absent").block(T)).isEmpty();
    rc.dropSlot("twice").block(T);
    assertThat(rc.readSlot("twice").block(T)).isEmpty();
    assertThatThrownBy(() -> rc.createPhysicalSlot("Bad-Name", true))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("invalid replication slot name \"Bad-Name\"");
    rc.close().block(T);
  }

  @Test
  void cancellingAStreamEndsCopyAndAnotherStreamCanFollow() {
    ReplicationClient rc = ReplicationClient.connect(options(cluster, "zenith_cancel")).block(T);
    SystemIdentity id = rc.identifySystem().block(T);
    Lsn start = PgWal.segmentStart(id.xlogPos(), segmentSize);
    List<WalChunk> first = rc.startReplication(null, start, 0).take(2).collectList().block(T);
    assertThat(first).hasSize(2);
    assertThat(first.get(1).start()).isEqualTo(first.get(0).end());
    // the connection is back in command mode and can stream again from where we stopped
    WalChunk next = rc.startReplication(null, first.get(1).end(), 0).blockFirst(T);
    assertThat(next.start()).isEqualTo(first.get(1).end());
    assertThat(rc.identifySystem().block(T).systemId()).isEqualTo(id.systemId());
    assertThat(rc.metrics().bufferedChunks()).isZero();
    rc.close().block(T);
  }
}
