package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.it.safekeeper.ComputeQuorum;
import io.zenith.it.safekeeper.SafekeeperSet;
import io.zenith.it.support.S3Remote;
import io.zenith.layer.LayerFileInfo;
import io.zenith.layer.RemoteIndex;
import io.zenith.layer.Timeline;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.testing.FaultProxy;
import io.zenith.wal.testing.S3Proxy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 12's S3 faults, with real processes: a real PostgreSQL 15 compute commits through three
 * safekeepers into a pageserver whose remote storage is a real s3proxy behind a {@link FaultProxy}
 * (the safekeepers offload their WAL there too). The S3 endpoint answers 500 to everything for 10
 * s, is stopped for 30 s, then is slow for 10 s: through all of it commits go on (the local disks
 * buffer), uploads fail and are retried with backoff, and the lag shows in the timeline's API and
 * in the metrics. Once S3 is healthy again everything arrives: the remote index reaches the
 * timeline's disk-consistent LSN and names every local layer file, each object whole, and a compute
 * at the end shows every committed row.
 */
class RemoteStorageFaultsTest {
  private static final Duration T = Duration.ofSeconds(120);

  @TempDir Path data;
  @TempDir Path skRoot;

  @Test
  void commitsGoOnThroughS3ErrorsAnOutageAndSlownessAndEverythingArrivesAfterwards()
      throws Exception {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    try (PgCluster template = PgCluster.initdb("--data-checksums", "--wal-segsize=1")) {
      PageserverHarness.importTimeline(data, tenant, main, template);
    }
    try (S3Proxy s3 = S3Proxy.start();
        FaultProxy faults = FaultProxy.start(s3.endpoint().getPort())) {
      // the SDK's default credential chain, as a deployment would give them; set for the rest of
      // the JVM (the shared regression run's pageserver uses them too), never cleared
      S3Remote.credentialsForThisJvm();
      RemoteStorageConfig remote =
          RemoteStorageConfig.fromUrl(
              "s3://" + S3Proxy.BUCKET + "/faults", faults.endpoint(), null);
      SafekeeperSet sks = new SafekeeperSet(skRoot, 3);
      for (int id = 1; id <= 3; id++) {
        sks.configure(id, s -> s.withRemoteStorage(remote));
      }
      try (Pageserver ps =
          Pageserver.start(
              data, PageserverHarness.config("2MiB", "60s", 1).withRemoteStorage(remote))) {
        Timeline timeline = ps.store().timeline(tenant, main);
        Lsn start = timeline.lastRecordLsn();
        try (PgCluster compute =
                PageserverHarness.compute(ps, tenant, main, null, ComputeQuorum::configure);
            ComputeQuorum q =
                new ComputeQuorum(sks, compute, tenant, main, start, LagLimits.NONE)) {
          ps.startWalReceiver(tenant, main, ApiModel.WalSource.fromSafekeepers(q.endpoints()));
          compute.sql("create table t (id int primary key, v text)");
          Writer w = new Writer(compute);
          w.runFor(Duration.ofSeconds(3));
          awaitUploaded(ps, timeline);
          long retriesBefore = uploads(ps, tenant, main).retries();

          faults.mode(FaultProxy.Mode.ERRORS);
          assertThat(w.runFor(Duration.ofSeconds(10)))
              .as("commits while S3 answers 500")
              .isPositive();
          ps.checkpoint(tenant, main); // a flush whose upload must fail
          PgWal.await(
              T,
              "an upload failure in the timeline's status",
              () -> uploads(ps, tenant, main).failure() != null);
          assertThat(faults.errorsAnswered()).isPositive();

          faults.mode(FaultProxy.Mode.PASS);
          s3.stop();
          assertThat(w.runFor(Duration.ofSeconds(30))).as("commits while S3 is down").isPositive();
          ps.checkpoint(tenant, main);
          // the lag is visible: in the API and in the metrics
          assertThat(timeline.remoteConsistentLsn()).isLessThan(timeline.diskConsistentLsn());
          String metrics = ps.scrapeMetrics();
          assertThat(metricValue(metrics, "zenith_timeline_remote_upload_lag_bytes", main))
              .isPositive();
          assertThat(metricValue(metrics, "zenith_remote_upload_retries_total", null))
              .isGreaterThan(retriesBefore);
          s3.restart();

          faults.mode(FaultProxy.Mode.SLOW, Duration.ofMillis(30));
          assertThat(w.runFor(Duration.ofSeconds(10))).as("commits while S3 is slow").isPositive();
          faults.mode(FaultProxy.Mode.PASS);

          Lsn end = q.lastRecordEnd();
          q.awaitCommit(end, 1, 2, 3);
          PgWal.await(
              T, "the pageserver to ingest " + end, () -> !timeline.lastRecordLsn().isBefore(end));
          awaitUploaded(ps, timeline);
          assertThat(uploads(ps, tenant, main).retries()).isGreaterThan(retriesBefore);
          assertRemoteHoldsTheTimeline(s3, timeline);
          try (PgCluster check =
              PageserverHarness.compute(ps, tenant, main, end.toString(), false)) {
            assertThat(check.sql("select count(*) from t").trim())
                .as("every committed row")
                .isEqualTo(Long.toString(w.rows));
          }
        }
      }
    }
  }

  /**
   * Inserts rows in small committed transactions, at most ten a second (about 1 MiB of WAL a
   * second: a fast machine must not write more than the pageserver ingests in the test's bounds);
   * counts those whose commit returned.
   */
  private static final class Writer {
    final PgCluster compute;
    long rows;

    Writer(PgCluster compute) {
      this.compute = compute;
    }

    /** Commits for {@code d}; returns the number of commits. */
    long runFor(Duration d) throws InterruptedException {
      long commits = 0;
      long until = System.nanoTime() + d.toNanos();
      while (System.nanoTime() < until) {
        long t0 = System.nanoTime();
        compute.sql(
            "insert into t select i, repeat('x', 500) from generate_series("
                + (rows + 1)
                + ", "
                + (rows + 200)
                + ") i");
        rows += 200;
        commits++;
        long left = 100 - (System.nanoTime() - t0) / 1_000_000;
        if (left > 0) {
          Thread.sleep(left);
        }
      }
      return commits;
    }
  }

  /** The timeline's upload state, as the API shows it. */
  private static ApiModel.RemoteUploadInfo uploads(Pageserver ps, TenantId t, TimelineId tl) {
    ApiModel.RemoteUploadInfo u = ps.timeline(t, tl, false).remoteUpload();
    assertThat(u).as("the timeline's remote_upload").isNotNull();
    return u;
  }

  /** Checkpoints and waits until the last index reaches the disk-consistent LSN, queue empty. */
  private static void awaitUploaded(Pageserver ps, Timeline t) throws Exception {
    ps.checkpoint(t.tenant(), t.id());
    PgWal.await(
        T,
        "remote_consistent_lsn to reach disk_consistent_lsn with nothing queued",
        () -> {
          ApiModel.RemoteUploadInfo u = uploads(ps, t.tenant(), t.id());
          return t.remoteConsistentLsn().equals(t.diskConsistentLsn())
              && u.queueLength() == 0
              && u.failure() == null;
        });
  }

  /** The index in S3 names every local layer file, and each object is there, whole. */
  private static void assertRemoteHoldsTheTimeline(S3Proxy s3, Timeline t) {
    try (RemoteStorage storage = RemoteStorage.open(s3.settings("faults"))) {
      RemoteKey ik = RemoteIndex.indexKey(t.tenant(), t.id(), 1);
      RemoteIndex index = RemoteIndex.fromBytes(storage.get(ik).block(T), ik.toString());
      assertThat(index.diskConsistentLsn()).isEqualTo(t.diskConsistentLsn());
      Map<String, Long> objects = new HashMap<>();
      for (RemoteObject o :
          storage
              .list(RemoteIndex.timelinePrefix(t.tenant(), t.id()).path() + "/")
              .collectList()
              .block(T)) {
        objects.put(o.key().name(), o.size());
      }
      Map<String, Long> local = new HashMap<>();
      for (LayerFileInfo f : t.layerFiles()) {
        local.put(f.fileName(), f.size());
      }
      Map<String, Long> indexed = new HashMap<>();
      for (RemoteIndex.Layer l : index.layers()) {
        indexed.put(l.fileName(), l.size());
        assertThat(objects).containsEntry(l.objectName(), l.size());
      }
      assertThat(indexed).isEqualTo(local);
    }
  }

  /** The value of a Prometheus sample (of {@code timeline} when given), or -1 if absent. */
  private static double metricValue(String text, String name, TimelineId timeline) {
    for (String line : text.split("\n")) {
      if (line.startsWith(name)
          && (line.charAt(name.length()) == ' ' || line.charAt(name.length()) == '{')
          && (timeline == null || line.contains("timeline=\"" + timeline + "\""))) {
        return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
      }
    }
    return -1;
  }
}
