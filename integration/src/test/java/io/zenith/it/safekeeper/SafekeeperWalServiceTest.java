package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.pg.PgDistribution;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.ReplicationClient;
import io.zenith.replication.client.SystemIdentity;
import io.zenith.replication.client.WalChunk;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.safekeeper.serving.WalService;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalSegmentName;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.jspecify.annotations.Nullable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.Disposable;

/**
 * The safekeeper's libpq WAL service ({@link WalService}, ADR 0005 §3) against real clients: a real
 * PostgreSQL 15 compute commits through three safekeeper processes' servers (real sockets), and
 * PostgreSQL's {@code pg_receivewal} (the independent oracle), our replication client as a
 * pageserver stand-in, and a safekeeper catching up from its peers read from them.
 */
@ExtendWith(NettyLeakCheck.class)
class SafekeeperWalServiceTest {
  @TempDir Path tmp;
  private ComputeQuorum q;
  private final List<Path> dirs = new ArrayList<>();

  @BeforeEach
  void start() {
    q = ComputeQuorum.fresh(tmp);
  }

  @AfterEach
  void stop() {
    if (q != null) {
      q.close();
      q.compute.close();
    }
    dirs.forEach(PgCluster::deleteTree);
  }

  private Lsn writeRows(int from, int to) {
    q.compute.sql(
        "create table if not exists t (id int primary key, v text);"
            + " insert into t select i, repeat('x', 200) from generate_series("
            + from
            + ", "
            + to
            + ") i");
    Lsn end = q.lastRecordEnd();
    q.awaitCommit(end, 1, 2, 3);
    return end;
  }

  private static String digest(byte[] b) {
    return b.length + " bytes " + HexFormat.of().formatHex(PgWal.sha256().digest(b));
  }

  private byte[] computeWal(Lsn from, Lsn to) {
    return PgWal.readWal(q.compute, 1, q.identity.segmentSize(), from, to);
  }

  private PgConnectOptions.Builder options(int sk, @Nullable String startupOptions) {
    PgConnectOptions.Builder b =
        PgConnectOptions.builder()
            .host("127.0.0.1")
            .port(q.pgPort(sk))
            .user("pageserver")
            .database("postgres")
            .applicationName("pageserver")
            .replication(true);
    if (startupOptions != null) {
      b.parameter("options", startupOptions);
    }
    return b;
  }

  private PgConnectOptions.Builder options(int sk) {
    return options(sk, WalService.startupOptions(q.tenant(), q.timeline()));
  }

  @Test
  void pgReceiveWalWritesTheCommittedWalByteIdenticalToTheComputes() throws Exception {
    // Without a slot, pg_receivewal starts at the segment of IDENTIFY_SYSTEM's position (the
    // commit LSN): started while that is in the timeline's first segment, it reads all of it.
    Lsn first = writeRows(1, 10);
    Lsn start = q.identity.startLsn();
    int seg = q.identity.segmentSize();
    assertThat(PgWal.segmentStart(first, seg)).isEqualTo(start);

    Path dir = Files.createTempDirectory("zenith-receivewal-");
    dirs.add(dir);
    PgDistribution.detect().createOwnedDirectory(dir);
    Path output = Files.createTempFile("pg_receivewal", ".log");
    dirs.add(output);
    // It runs until stopped: the files are complete once it reports the committed end written.
    ProcessBuilder pb =
        PgDistribution.detect()
            .processBuilder(
                "pg_receivewal",
                List.of(
                    "-d",
                    "host=127.0.0.1 port="
                        + q.pgPort(2)
                        + " user=standby options='"
                        + WalService.startupOptions(q.tenant(), q.timeline())
                        + "'",
                    "-w",
                    "-D",
                    dir.toString(),
                    "--no-loop",
                    "--status-interval",
                    "1",
                    "-v"))
            .directory(new File("/"))
            .redirectErrorStream(true)
            .redirectOutput(output.toFile());
    pb.environment().put("PGCONNECT_TIMEOUT", "10");
    Process p = pb.start();
    Lsn end;
    try {
      PgWal.await(
          ComputeQuorum.T,
          "pg_receivewal to start streaming",
          () -> log(output).contains("starting log streaming") || !p.isAlive());
      assertThat(p.isAlive()).as(Files.readString(output)).isTrue();
      end = writeRows(11, 60_000);
      assertThat(end.minus(start)).as("the WAL spans segments").isGreaterThan(seg);
      // It tails: its files reach the committed end. (Its status updates are not pageserver
      // feedback, so the timeline's status cannot tell: the last bytes before the end can.)
      Lsn tailStart = Lsn.of(Math.max(PgWal.segmentStart(end, seg).value(), end.value() - 8192));
      String tail = digest(computeWal(tailStart, end));
      PgWal.await(
          ComputeQuorum.T,
          "pg_receivewal to receive WAL up to " + end,
          () -> tail.equals(digest(receivedWal(dir, tailStart, end, seg, false))));
    } finally {
      p.destroy();
      assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("pg_receivewal ends").isTrue();
    }

    // Its files, over [start, end), against the compute's pg_wal.
    assertThat(digest(receivedWal(dir, start, end, seg, true)))
        .isEqualTo(digest(computeWal(start, end)));
  }

  /**
   * The WAL in [from, to) of pg_receivewal's files in {@code dir} (whole or .partial segments);
   * while it still pads a new .partial file with zeros, empty unless {@code last}, when a file of
   * another size than a segment fails the test.
   */
  private static byte[] receivedWal(Path dir, Lsn from, Lsn to, int seg, boolean last) {
    ByteArrayOutputStream got = new ByteArrayOutputStream();
    for (Lsn s = from; s.isBefore(to); s = PgWal.segmentStart(s, seg).plus(seg)) {
      String name = WalSegmentName.of(1, s, seg).fileName(seg);
      Path f = dir.resolve(name);
      if (!Files.exists(f)) {
        f = dir.resolve(name + WalSegmentName.PARTIAL_SUFFIX);
      }
      byte[] b;
      try {
        b = Files.readAllBytes(f);
      } catch (IOException e) {
        return new byte[0];
      }
      if (last) {
        assertThat(b.length).as("%s is a whole segment", f.getFileName()).isEqualTo(seg);
      } else if (b.length != seg) {
        return new byte[0];
      }
      int offset = (int) s.minus(PgWal.segmentStart(s, seg));
      int n = (int) Math.min(seg - offset, to.minus(s));
      got.write(b, offset, n);
    }
    return got.toByteArray();
  }

  @Test
  void aPageserverStandInReadsCommittedWalAndItsFeedbackReachesTheTimeline() throws Exception {
    Lsn end = writeRows(1, 20_000);
    Lsn start = q.identity.startLsn();
    ReplicationClient c = ReplicationClient.connect(options(1).build()).block(ComputeQuorum.T);
    try {
      SystemIdentity id = c.identifySystem().block(ComputeQuorum.T);
      assertThat(id.systemId()).isEqualTo(q.identity.systemId());
      assertThat(id.timeline()).isEqualTo(1);
      SafekeeperApiModel.TimelineInfo info = q.info(1);
      assertThat(id.xlogPos())
          .as("IDENTIFY_SYSTEM's position is the commit LSN")
          .isGreaterThanOrEqualTo(end)
          .isLessThanOrEqualTo(Lsn.parse(info.commitLsn()));
      MessageDigest md = PgWal.sha256();
      AtomicReference<Lsn> received = new AtomicReference<>(start);
      AtomicReference<Lsn> highestServerEnd = new AtomicReference<>(Lsn.INVALID);
      Disposable stream =
          c.startReplication(null, start, 0)
              .subscribe(
                  (WalChunk ch) -> {
                    md.update(ch.data());
                    received.set(ch.end());
                    highestServerEnd.accumulateAndGet(ch.serverWalEnd(), Lsn::max);
                  });
      try {
        PgWal.await(ComputeQuorum.T, "WAL up to " + end, () -> !received.get().isBefore(end));
        // More WAL while streaming: it tails.
        Lsn end2 = writeRows(20_001, 30_000);
        PgWal.await(ComputeQuorum.T, "WAL up to " + end2, () -> !received.get().isBefore(end2));
        Lsn got = received.get();
        assertThat(got)
            .as("never beyond the commit LSN")
            .isLessThanOrEqualTo(Lsn.parse(q.info(1).commitLsn()));
        assertThat(HexFormat.of().formatHex(md.digest()))
            .isEqualTo(HexFormat.of().formatHex(PgWal.sha256().digest(computeWal(start, got))));

        // The stand-in reports write / flush / apply: the timeline takes them as its pageserver's.
        Lsn flush = Lsn.of(start.value() + (got.value() - start.value()) / 2);
        c.reportProgress(got, flush, start);
        PgWal.await(
            ComputeQuorum.T,
            "the pageserver's positions in the timeline status",
            () -> {
              SafekeeperApiModel.PageserverPositions ps = q.info(1).pageserver();
              return ps.writeLsn().equals(got.toString()) && ps.flushLsn().equals(flush.toString());
            });
        // Gossip carries them to the peers.
        q.awaitAll(
            "the peers to learn the pageserver's positions",
            new int[] {2, 3},
            t -> t.pageserver().writeLsn().equals(got.toString()));

        // Another client's status updates (pg_receivewal, a standby) are not the pageserver's:
        // streaming from the start with the default status (the start point as flushed and
        // applied) and reporting everything it got, it moves none of the positions.
        ReplicationClient other =
            ReplicationClient.connect(options(1).applicationName("pg_receivewal").build())
                .block(ComputeQuorum.T);
        try {
          AtomicReference<Lsn> otherGot = new AtomicReference<>(start);
          Disposable otherStream =
              other.startReplication(null, got, 0).subscribe(ch -> otherGot.set(ch.end()));
          try {
            Lsn end3 = writeRows(30_001, 31_000);
            PgWal.await(ComputeQuorum.T, "WAL up to " + end3, () -> !otherGot.get().isBefore(end3));
            other.reportProgress(otherGot.get(), otherGot.get(), otherGot.get());
            // A keepalive asking for a reply comes within wal_sender_timeout / 2; a status
            // update the server answers is the quickest proof ours arrived: await its echo.
            PgWal.await(
                ComputeQuorum.T,
                "the other client's status update to be sent",
                () -> other.metrics().statusUpdatesSent() >= 2);
            Thread.sleep(500);
            SafekeeperApiModel.PageserverPositions ps = q.info(1).pageserver();
            assertThat(List.of(ps.writeLsn(), ps.flushLsn(), ps.applyLsn()))
                .as("the pageserver's positions after another client's status update")
                .containsExactly(got.toString(), flush.toString(), start.toString());
          } finally {
            otherStream.dispose();
          }
        } finally {
          other.close().block(ComputeQuorum.T);
        }
      } finally {
        stream.dispose();
      }
    } finally {
      c.close().block(ComputeQuorum.T);
    }
  }

  @Test
  void anEmptySafekeeperCatchesUpFromItsPeersOverLibpq() throws Exception {
    q.sks.stop(3);
    Lsn end = writeRowsOnTwo(1, 40_000);
    // No compute: the WAL can only come from the peers.
    q.compute.stop();
    q.sks.start(3);
    q.awaitAll(
        "safekeeper 3 to hold the WAL up to " + end,
        new int[] {3},
        t -> !Lsn.parse(t.flushLsn()).isBefore(end));
    Lsn start = q.identity.startLsn();
    byte[] expected = computeWal(start, end);
    // Read back over libpq as a pageserver would: the same bytes.
    ReplicationClient c = ReplicationClient.connect(options(3).build()).block(ComputeQuorum.T);
    try {
      ByteArrayOutputStream got = new ByteArrayOutputStream();
      c.startReplication(null, start, 0)
          .takeUntil(ch -> !ch.end().isBefore(end))
          .doOnNext(ch -> got.write(ch.array(), ch.offset(), ch.length()))
          .blockLast(ComputeQuorum.T);
      byte[] b = got.toByteArray();
      assertThat(digest(java.util.Arrays.copyOf(b, (int) end.minus(start))))
          .isEqualTo(digest(expected));
    } finally {
      c.close().block(ComputeQuorum.T);
    }
  }

  private static String log(Path output) {
    try {
      return Files.readString(output);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private Lsn writeRowsOnTwo(int from, int to) {
    q.compute.sql(
        "create table if not exists t (id int primary key, v text);"
            + " insert into t select i, repeat('y', 200) from generate_series("
            + from
            + ", "
            + to
            + ") i");
    Lsn end = q.lastRecordEnd();
    q.awaitCommit(end, 1, 2);
    return end;
  }

  private PgServerException refused(PgConnectOptions o) {
    return catchThrowableOfType(
        PgServerException.class, () -> ReplicationClient.connect(o).block(ComputeQuorum.T));
  }

  private PgServerException failedStart(Lsn start) {
    ReplicationClient c = ReplicationClient.connect(options(1).build()).block(ComputeQuorum.T);
    try {
      return catchThrowableOfType(
          PgServerException.class,
          () -> c.startReplication(null, start, 0).blockLast(ComputeQuorum.T));
    } finally {
      c.close().block(ComputeQuorum.T);
    }
  }

  /**
   * Deleting the timeline on one safekeeper while a reader streams from it: the stream ends, a new
   * connection naming the timeline is refused with 3D000 "was deleted", and the compute commits on
   * with the other two.
   */
  @Test
  void aDeletedTimelineEndsItsStreamsAndRefusesConnections() throws Exception {
    Lsn end = writeRows(1, 2_000);
    Lsn start = q.identity.startLsn();
    ReplicationClient reader = ReplicationClient.connect(options(1).build()).block(ComputeQuorum.T);
    AtomicReference<Lsn> received = new AtomicReference<>(start);
    java.util.concurrent.CompletableFuture<String> ended =
        new java.util.concurrent.CompletableFuture<>();
    Disposable stream =
        reader
            .startReplication(null, start, 0)
            .subscribe(
                ch -> received.set(ch.end()),
                e -> ended.complete("failed: " + e.getMessage()),
                () -> ended.complete("completed"));
    try {
      PgWal.await(ComputeQuorum.T, "WAL up to " + end, () -> !received.get().isBefore(end));

      SafekeeperApiModel.TimelineDeleted d =
          q.sks.client(1).deleteTimeline(q.tenant(), q.timeline());
      assertThat(d.deletedNow()).isTrue();

      assertThat(ended.get(ComputeQuorum.T.toSeconds(), TimeUnit.SECONDS))
          .as("the stream of the deleted timeline ends")
          .isNotNull();
      PgServerException e = refused(options(1).build());
      assertThat(e.sqlState()).isEqualTo("3D000");
      assertThat(e.notice().message())
          .isEqualTo(
              "timeline " + q.tenant() + "/" + q.timeline() + " was deleted on safekeeper 1");

      q.compute.sql("insert into t select i, 'y' from generate_series(2001, 3000) i");
      Lsn more = q.lastRecordEnd();
      q.awaitCommit(more, 2, 3);
    } finally {
      stream.dispose();
      reader.close().block(ComputeQuorum.T);
    }
  }

  @Test
  void badConnectionsGetPreciseErrorsWhileAnotherStreamGoesOn() throws Exception {
    Lsn end = writeRows(1, 5_000);
    Lsn start = q.identity.startLsn();
    ReplicationClient good = ReplicationClient.connect(options(1).build()).block(ComputeQuorum.T);
    AtomicReference<Lsn> received = new AtomicReference<>(start);
    Disposable stream =
        good.startReplication(null, start, 0).subscribe(ch -> received.set(ch.end()));
    try {
      PgWal.await(ComputeQuorum.T, "WAL up to " + end, () -> !received.get().isBefore(end));

      PgServerException e = refused(options(1, null).build());
      assertThat(e.sqlState()).isEqualTo("28000");
      assertThat(e.notice().severity()).isEqualTo("FATAL");
      assertThat(e.notice().message()).contains("no timeline named").contains("zenith.tenant_id");

      TimelineId unknown = TimelineId.generate();
      e = refused(options(1, WalService.startupOptions(q.tenant(), unknown)).build());
      assertThat(e.sqlState()).isEqualTo("3D000");
      assertThat(e.notice().message())
          .isEqualTo("timeline " + q.tenant() + "/" + unknown + " does not exist on safekeeper 1");

      TenantId otherTenant = TenantId.generate();
      e = refused(options(1, WalService.startupOptions(otherTenant, q.timeline())).build());
      assertThat(e.sqlState()).isEqualTo("3D000");
      assertThat(e.notice().message()).contains(otherTenant + "/" + q.timeline());

      e =
          refused(
              options(1, "-c zenith.tenant_id=XYZ -c zenith.timeline_id=" + q.timeline()).build());
      assertThat(e.sqlState()).isEqualTo("22023");
      assertThat(e.notice().message())
          .isEqualTo("invalid value for parameter \"zenith.tenant_id\": \"XYZ\"");

      e =
          refused(
              options(1, WalService.startupOptions(q.tenant(), q.timeline()) + " bogus").build());
      assertThat(e.sqlState()).isEqualTo("42601");
      assertThat(e.notice().message()).contains("\"bogus\" is not -c name=value");

      e =
          refused(
              options(1, WalService.startupOptions(q.tenant(), q.timeline()) + " -c zenith.nope=1")
                  .build());
      assertThat(e.sqlState()).isEqualTo("42704");
      assertThat(e.notice().message())
          .isEqualTo("unrecognized configuration parameter \"zenith.nope\"");

      e =
          refused(
              options(
                      1,
                      WalService.startupOptions(q.tenant(), q.timeline()) + " -c zenith.peer_id=2")
                  .build());
      assertThat(e.sqlState()).isEqualTo("28000");
      assertThat(e.notice().message()).contains("zenith.up_to");

      // Start points as PostgreSQL's walsender answers them: ahead of the WAL, and removed.
      Lsn flushed = Lsn.parse(q.info(1).flushLsn());
      Lsn ahead = flushed.plus(16 << 20);
      e = failedStart(ahead);
      assertThat(e.sqlState()).isEqualTo("XX000");
      assertThat(e.notice().severity()).isEqualTo("ERROR");
      assertThat(e.notice().message())
          .startsWith(
              "requested starting point "
                  + ahead
                  + " is ahead of the WAL flush position of this server ");
      int seg = q.identity.segmentSize();
      Lsn before = start.plus(-seg);
      e = failedStart(before);
      assertThat(e.sqlState()).isEqualTo("58P01");
      assertThat(e.notice().message())
          .isEqualTo(
              "requested WAL segment "
                  + WalSegmentName.of(1, before, seg).fileName(seg)
                  + " has already been removed");

      // The good stream never noticed.
      Lsn end2 = writeRows(5_001, 10_000);
      PgWal.await(ComputeQuorum.T, "WAL up to " + end2, () -> !received.get().isBefore(end2));
      assertThat(stream.isDisposed()).isFalse();
    } finally {
      stream.dispose();
      good.close().block(ComputeQuorum.T);
    }
  }
}
