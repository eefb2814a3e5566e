package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.it.support.S3Remote;
import io.zenith.layer.RemoteGenerations;
import io.zenith.layer.Timeline;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.testing.S3Proxy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A tenant attached on an empty pageserver (ADR 0027) ingests WAL at once, before anything else
 * read its layers: the WAL receiver reads {@code pg_control} when it connects, and the ingest
 * thread reads relation sizes, both from layer files that are only in remote storage then, whose
 * download blocks. Both used to run on threads where Reactor refuses to block (the connection's
 * event loop, a {@code newSingle} ingest thread): the download failed with
 * "block()/blockFirst()/blockLast() are blocking", the receiver retried for ever and the attached
 * pageserver never caught up (found by {@code CliRemoteSeamCrashTest}, where a compute keeps
 * writing across the attach). Here the second pageserver compacts nothing, so only those reads can
 * fetch the files. Remote storage is a real s3proxy on loopback.
 */
class PageserverAttachIngestTest {
  private static final Duration T = Duration.ofSeconds(60);

  @TempDir Path data1;
  @TempDir Path data2;

  @Test
  void aTenantAttachedOnAnEmptyPageserverIngestsBeforeAnythingElseReadItsLayers() throws Exception {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    try (S3Proxy s3 =
        S3Remote.startDuring(() -> PageserverHarness.importTimeline(data1, tenant, main))) {
      run(tenant, main, S3Remote.config(s3, "attach-ingest"));
    }
  }

  private void run(TenantId tenant, TimelineId main, RemoteStorageConfig rc) throws Exception {
    // No maintenance on its own: nothing but the reads under test fetches a layer file.
    PageserverConfig quiet =
        PageserverHarness.config("1MiB", "60s", 1)
            .withHistory("128MiB", 10, 3, "1h", "64MiB", "7d", "1h")
            .withRemoteStorage(rc);
    try (RemoteStorage storage = RemoteStorage.open(rc.settings(data1));
        PgCluster compute = startFirstAndLoad(tenant, main, quiet)) {
      int g2 = RemoteGenerations.issue(storage, tenant, T);
      try (Pageserver ps2 = Pageserver.start(data2, quiet)) {
        HttpJson.Response attached =
            new HttpJson(ps2.httpPort())
                .call("POST", "/v1/tenant/" + tenant + "/attach", "{\"generation\": " + g2 + "}");
        assertThat(attached.status()).as(attached.body()).isEqualTo(200);
        assertThat(localLayerFiles(data2)).as("the attach downloaded no layer file").isZero();

        PageserverHarness.stream(ps2, tenant, main, compute);
        // Not waiting for this pageserver (its synchronous standby): it may not ingest.
        compute.sql(
            "set synchronous_commit = local; insert into u values (2);"
                + " insert into t select i, repeat('b', 300) from generate_series(10001, 15000) i");
        Lsn end = PgWal.lsn(compute, "pg_current_wal_flush_lsn()");
        Timeline t2 = ps2.store().timeline(tenant, main);
        PgWal.await(
            T,
            "the attached pageserver to ingest up to " + end,
            () -> !t2.lastRecordLsn().isBefore(end));
        try (PgCluster check =
            PageserverHarness.compute(ps2, tenant, main, end.toString(), false)) {
          assertThat(check.sql("select count(*), sum(id) from t").trim())
              .isEqualTo("15000|" + (15000L * 15001 / 2));
          assertThat(check.sql("select sum(id) from u").trim()).isEqualTo("3");
        }
        assertThat(ps2.timeline(tenant, main, false).walReceiver().lastError())
            .as("the WAL receiver's last error")
            .isNull();
        assertThat(ps2.store().downloads().totals().failures()).as("failed downloads").isZero();
        assertThat(ps2.store().downloads().totals().downloads()).isPositive();
      }
    }
  }

  /**
   * Streams a compute's WAL into a first pageserver, loads a table, uploads everything and stops
   * that pageserver; returns the compute, still running.
   */
  private PgCluster startFirstAndLoad(TenantId tenant, TimelineId main, PageserverConfig config)
      throws Exception {
    try (Pageserver ps1 = Pageserver.start(data1, config)) {
      PgCluster compute = PageserverHarness.compute(ps1, tenant, main, null, true);
      try {
        PageserverHarness.stream(ps1, tenant, main, compute);
        Timeline t1 = ps1.store().timeline(tenant, main);
        // u's size is in an early layer file, apart from the newest ones the receiver reads first
        compute.sql("create table u (id int); insert into u values (1)");
        Lsn early = PgWal.lsn(compute, "pg_current_wal_flush_lsn()");
        PgWal.await(
            T,
            "the first pageserver to ingest " + early,
            () -> !t1.lastRecordLsn().isBefore(early));
        ps1.checkpoint(tenant, main);
        compute.sql("create table t (id int primary key, v text)");
        compute.sql("insert into t select i, repeat('a', 300) from generate_series(1, 10000) i");
        Lsn end = PgWal.lsn(compute, "pg_current_wal_flush_lsn()");
        PgWal.await(
            T, "the first pageserver to ingest " + end, () -> !t1.lastRecordLsn().isBefore(end));
        ps1.checkpoint(tenant, main);
        PgWal.await(
            T,
            "the first pageserver's upload",
            () -> t1.remoteConsistentLsn().equals(t1.diskConsistentLsn()));
        return compute;
      } catch (Exception | Error e) {
        compute.close();
        throw e;
      }
    }
  }

  private static long localLayerFiles(Path data) throws Exception {
    try (Stream<Path> s = Files.walk(data.resolve("tenants"))) {
      return s.filter(p -> p.getFileName().toString().endsWith(".layer")).count();
    }
  }
}
