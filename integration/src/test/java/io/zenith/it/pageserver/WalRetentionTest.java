package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.gateway.safekeeper.SafekeeperSettings;
import io.zenith.it.safekeeper.ComputeQuorum;
import io.zenith.it.safekeeper.SafekeeperSet;
import io.zenith.layer.Timeline;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.ReplicationClient;
import io.zenith.replication.safekeeper.serving.WalService;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalSegmentName;
import io.zenith.wal.log.ControlFile.LagLimits;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.Disposable;

/**
 * WAL retention with real processes (ADR 0007): a real PostgreSQL 15 compute with 1 MiB WAL
 * segments commits through three safekeepers, a pageserver streams from them and checkpoints; each
 * safekeeper deletes the segments below min(commit LSN, the pageserver's durable position, every
 * peer's flush LSN) and holds at most that plus two segments; the pageserver restarted afterwards
 * resumes at its disk-consistent LSN, which is still held, and catches up. Only the pageserver's
 * feedback moves the horizon: a standby's, or a client claiming another application name, does not.
 */
@ExtendWith(NettyLeakCheck.class)
class WalRetentionTest {
  private static final Duration T = Duration.ofSeconds(90);
  private static final int SEG = 1 << 20;

  @TempDir Path data;
  @TempDir Path skRoot;

  /** A fresh cluster with 1 MiB WAL segments imported as {@code timeline}. */
  private void importSmallSegments(TenantId tenant, TimelineId timeline) {
    try (PgCluster template = PgCluster.initdb("--data-checksums", "--wal-segsize=1")) {
      PageserverHarness.importTimeline(data, tenant, timeline, template);
    }
  }

  /** Bytes of the WAL segment files safekeeper {@code id} holds for the timeline. */
  private static long walBytes(ComputeQuorum q, int id) {
    Path dir = q.sks.dataDir(id).resolve(q.tenant().toString()).resolve(q.timeline().toString());
    try (Stream<Path> s = Files.list(dir)) {
      long total = 0;
      for (Path p : s.toList()) {
        String name = p.getFileName().toString().replace(".partial", "");
        if (WalSegmentName.parse(name, SEG).isPresent()) {
          try {
            total += Files.size(p);
          } catch (NoSuchFileException removed) {
            // retention removed it since the listing: it holds no bytes any more
          }
        }
      }
      return total;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** min(commit LSN, the pageserver's durable position, every peer's flush LSN), as it says. */
  private static Lsn horizon(SafekeeperApiModel.TimelineInfo i) {
    Lsn h = Lsn.min(Lsn.parse(i.commitLsn()), Lsn.parse(i.pageserver().applyLsn()));
    for (SafekeeperApiModel.PeerInfo p : i.peers()) {
      h = Lsn.min(h, Lsn.parse(p.flushLsn()));
    }
    return h;
  }

  private static String metrics(SafekeeperSettings s) throws Exception {
    try (HttpClient c = HttpClient.newHttpClient()) {
      HttpResponse<String> r =
          c.send(
              HttpRequest.newBuilder(URI.create("http://" + s.listenHttp() + "/metrics"))
                  .timeout(Duration.ofSeconds(10))
                  .build(),
              HttpResponse.BodyHandlers.ofString());
      assertThat(r.statusCode()).isEqualTo(200);
      return r.body();
    }
  }

  /** The value of the one series of gauge {@code name} in a Prometheus scrape. */
  private static long metric(String scrape, String name) {
    java.util.regex.Matcher m =
        java.util.regex.Pattern.compile("(?m)^" + name + "\\{[^}]*\\} (\\S+)$").matcher(scrape);
    assertThat(m.find()).as("%s in the metrics", name).isTrue();
    return (long) Double.parseDouble(m.group(1));
  }

  private static void insert(PgCluster compute, int from, int to) {
    compute.sql(
        "insert into t select i, repeat('a', 200) from generate_series("
            + from
            + ", "
            + to
            + ") i");
  }

  @Test
  void safekeepersDeleteWalBelowThePageserversDurablePositionAndItStillCatchesUpAfterARestart()
      throws Exception {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    importSmallSegments(tenant, main);
    Pageserver ps = Pageserver.start(data, PageserverHarness.config("1MiB", "60s", 1));
    try {
      Timeline timeline = ps.store().timeline(tenant, main);
      Lsn start = timeline.lastRecordLsn();
      try (PgCluster compute =
              PageserverHarness.compute(ps, tenant, main, null, ComputeQuorum::configure);
          ComputeQuorum q =
              new ComputeQuorum(skRoot, compute, tenant, main, start, LagLimits.NONE)) {
        assertThat(q.identity.segmentSize()).isEqualTo(SEG);
        ps.startWalReceiver(tenant, main, ApiModel.WalSource.fromSafekeepers(q.endpoints()));
        compute.sql("create table t (id int primary key, v text)");
        // About 12 MiB of WAL: a dozen segments.
        for (int i = 0; i < 6; i++) {
          insert(compute, i * 5000 + 1, (i + 1) * 5000);
        }
        Lsn end = q.lastRecordEnd();
        assertThat(end.minus(start)).isGreaterThan(8L * SEG);
        q.awaitCommit(end, 1, 2, 3);
        PgWal.await(
            T, "the pageserver to ingest " + end, () -> !timeline.lastRecordLsn().isBefore(end));
        ps.checkpoint(tenant, main);
        Lsn durable = timeline.diskConsistentLsn();
        assertThat(durable).as("the pageserver's checkpoint").isGreaterThanOrEqualTo(end);

        // Each safekeeper learns the durable position (from the pageserver or through gossip)
        // and deletes what lies below its horizon: it holds at most that plus two segments.
        q.awaitAll(
            "every safekeeper to remove the WAL below its horizon",
            new int[] {1, 2, 3},
            i -> {
              Lsn h = horizon(i);
              return !Lsn.parse(i.pageserver().applyLsn()).isBefore(durable)
                  && !h.isBefore(end)
                  && walBytes(q, i.safekeeperId()) <= Lsn.parse(i.flushLsn()).minus(h) + 2L * SEG;
            });
        for (int id = 1; id <= 3; id++) {
          SafekeeperApiModel.TimelineInfo i = q.info(id);
          Lsn oldest = Lsn.parse(i.oldestLsn());
          assertThat(oldest).as("safekeeper %d's oldest LSN", id).isGreaterThan(start);
          assertThat(oldest)
              .as("safekeeper %d keeps the pageserver's durable position", id)
              .isLessThanOrEqualTo(durable);
          assertThat(i.removedBytes())
              .isEqualTo(oldest.value() - PgWal.segmentStart(start, SEG).value());
          // The metrics say the same (retention may have gone on since: the compute writes).
          String m = metrics(q.sks.settings(id));
          assertThat(metric(m, "safekeeper_oldest_lsn")).isGreaterThanOrEqualTo(oldest.value());
          assertThat(metric(m, "safekeeper_wal_removed_bytes"))
              .isGreaterThanOrEqualTo(i.removedBytes());
        }

        // The pageserver restarts: it resumes at its disk-consistent LSN, which every safekeeper
        // still holds, and ingests what was committed while it was down and after.
        ps.close();
        insert(compute, 30_001, 35_000);
        ps = Pageserver.start(data, PageserverHarness.config("1MiB", "60s", 1));
        Timeline again = ps.store().timeline(tenant, main);
        Lsn resume = again.lastRecordLsn();
        for (int id = 1; id <= 3; id++) {
          assertThat(Lsn.parse(q.info(id).oldestLsn()))
              .as("safekeeper %d holds where the pageserver resumes", id)
              .isLessThanOrEqualTo(resume);
        }
        insert(compute, 35_001, 40_000);
        Lsn end2 = q.lastRecordEnd();
        q.awaitCommit(end2, 1, 2, 3);
        PgWal.await(
            T,
            "the restarted pageserver to ingest " + end2,
            () -> !again.lastRecordLsn().isBefore(end2));
        assertThat(receiverError(ps, tenant, main)).isNull();
        try (PgCluster check =
            PageserverHarness.compute(ps, tenant, main, end2.toString(), false)) {
          assertThat(check.sql("select count(*), count(distinct id) from t").trim())
              .isEqualTo("40000|40000");
        }
      }
    } finally {
      ps.close();
    }
  }

  private static String receiverError(Pageserver ps, TenantId t, TimelineId tl) {
    ApiModel.WalReceiverInfo r = ps.timeline(t, tl, false).walReceiver();
    return r.state().equals("streaming") ? null : r.state() + ": " + r.lastError();
  }

  /**
   * Status updates move the pageserver positions only from the connection the safekeepers' {@code
   * [pageserver]} setting names ({@code application_name} {@code ps-main} from 127.0.0.1 here): a
   * standby's and one sending the default name {@code pageserver} move nothing, although they
   * report every byte they got as applied.
   */
  @Test
  void onlyTheConfiguredPageserversFeedbackMovesTheHorizon() throws Exception {
    PgCluster compute = PgCluster.initdb("--wal-segsize=1");
    try {
      ComputeQuorum.configure(compute);
      compute.start();
      compute.sql("select pg_switch_wal()");
      Lsn start = PgWal.segmentStart(PgWal.lsn(compute, "pg_current_wal_insert_lsn()"), SEG);
      SafekeeperSet sks = new SafekeeperSet(skRoot, 3);
      SafekeeperSettings.Pageserver mine =
          new SafekeeperSettings.Pageserver("ps-main", List.of("127.0.0.1"));
      for (int id = 1; id <= 3; id++) {
        sks.configure(id, s -> s.withPageserver(mine));
      }
      try (ComputeQuorum q =
          new ComputeQuorum(
              sks, compute, TenantId.generate(), TimelineId.generate(), start, LagLimits.NONE)) {
        compute.sql("create table t (id int primary key, v text)");
        for (int i = 0; i < 3; i++) {
          insert(compute, i * 5000 + 1, (i + 1) * 5000);
        }
        Lsn end = q.lastRecordEnd();
        q.awaitCommit(end, 1, 2, 3);
        assertThat(end.minus(start)).isGreaterThan(4L * SEG);

        // A standby and an impostor read everything and report it all as applied.
        for (String name : List.of("standby", "pageserver")) {
          Lsn got = streamAndReport(q, 1, name, start, end, null);
          assertThat(got).isEqualTo(end);
        }
        for (int id = 1; id <= 3; id++) {
          SafekeeperApiModel.TimelineInfo i = q.info(id);
          assertThat(Lsn.parse(i.pageserver().applyLsn()))
              .as("safekeeper %d's view of the pageserver's durable position", id)
              .isEqualTo(start);
          assertThat(i.oldestLsn()).isEqualTo(start.toString());
          assertThat(i.removedBytes()).isZero();
        }

        // The configured pageserver's durable position moves it; retention follows.
        Lsn durable = PgWal.segmentStart(start, SEG).plus(3L * SEG + 100);
        streamAndReport(q, 2, "ps-main", start, end, durable);
        q.awaitAll(
            "every safekeeper to remove the segments below " + durable,
            new int[] {1, 2, 3},
            i ->
                i.pageserver().applyLsn().equals(durable.toString())
                    && i.oldestLsn().equals(PgWal.segmentStart(durable, SEG).toString()));
        assertThat(q.info(1).removedBytes()).isEqualTo(3L * SEG);
      }
    } finally {
      compute.close();
    }
  }

  /**
   * Streams safekeeper {@code id}'s WAL from {@code from} to {@code end} as {@code applicationName}
   * and reports it written and flushed, and applied up to {@code apply} (all of it if null), then
   * waits until its status update was sent and a little more, and disconnects.
   *
   * @return how far it got
   */
  private static Lsn streamAndReport(
      ComputeQuorum q, int id, String applicationName, Lsn from, Lsn end, Lsn apply)
      throws InterruptedException {
    PgConnectOptions o =
        PgConnectOptions.builder()
            .host("127.0.0.1")
            .port(q.pgPort(id))
            .user("postgres")
            .database("postgres")
            .applicationName(applicationName)
            .replication(true)
            .parameter("options", WalService.startupOptions(q.tenant(), q.timeline()))
            .build();
    ReplicationClient c = ReplicationClient.connect(o).block(ComputeQuorum.T);
    try {
      AtomicReference<Lsn> got = new AtomicReference<>(from);
      Disposable stream = c.startReplication(null, from, 0).subscribe(ch -> got.set(ch.end()));
      try {
        PgWal.await(ComputeQuorum.T, "WAL up to " + end, () -> !got.get().isBefore(end));
        Lsn g = got.get();
        c.reportProgress(g, g, apply == null ? g : apply);
        PgWal.await(
            ComputeQuorum.T,
            "the status update to be sent",
            () -> c.metrics().statusUpdatesSent() >= 2);
        // Upkeep runs every 200 ms and gossip every 150 ms: time for an update that counted
        // to show (the other test and the configured pageserver's half show that it would).
        Thread.sleep(1000);
        return g;
      } finally {
        stream.dispose();
      }
    } finally {
      c.close().block(ComputeQuorum.T);
    }
  }
}
