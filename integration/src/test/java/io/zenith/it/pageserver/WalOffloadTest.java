package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.it.safekeeper.ComputeQuorum;
import io.zenith.it.safekeeper.SafekeeperSet;
import io.zenith.it.support.S3Remote;
import io.zenith.layer.Timeline;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.offload.RemoteWal;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.testing.S3Proxy;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * WAL offload with real processes (ADR 0025): a real PostgreSQL 15 compute with 1 MiB segments
 * commits through three safekeepers with remote storage (a real s3proxy on loopback); they offload
 * the completed segments and, once the pageserver checkpointed, remove them. A second pageserver
 * whose timeline starts where the first one's did (below every safekeeper's oldest WAL) gets
 * "already removed" from the safekeepers, reads the offloaded segments from remote storage,
 * continues from the safekeepers, and its pages show every committed row.
 */
@ExtendWith(NettyLeakCheck.class)
class WalOffloadTest {
  private static final Duration T = Duration.ofSeconds(90);
  private static final int SEG = 1 << 20;

  @TempDir Path data;
  @TempDir Path data2;
  @TempDir Path skRoot;

  private static void insert(PgCluster compute, int from, int to) {
    compute.sql(
        "insert into t select i, repeat('a', 200) from generate_series("
            + from
            + ", "
            + to
            + ") i");
  }

  @Test
  void aPageserverReadsFromRemoteStorageTheWalNoSafekeeperHoldsAnyMore() throws Exception {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    try (S3Proxy s3 =
        S3Remote.startDuring(
            () -> {
              try (PgCluster template = PgCluster.initdb("--data-checksums", "--wal-segsize=1")) {
                PageserverHarness.importTimeline(data, tenant, main, template);
                PageserverHarness.importTimeline(data2, tenant, main, template);
              }
            })) {
      run(tenant, main, S3Remote.config(s3, "offload"));
    }
  }

  private void run(TenantId tenant, TimelineId main, RemoteStorageConfig remote) throws Exception {
    SafekeeperSet sks = new SafekeeperSet(skRoot, 3);
    for (int id = 1; id <= 3; id++) {
      sks.configure(id, s -> s.withRemoteStorage(remote));
    }
    try (Pageserver ps = Pageserver.start(data, PageserverHarness.config("1MiB", "60s", 1))) {
      Timeline timeline = ps.store().timeline(tenant, main);
      Lsn start = timeline.lastRecordLsn();
      try (PgCluster compute =
              PageserverHarness.compute(ps, tenant, main, null, ComputeQuorum::configure);
          ComputeQuorum q = new ComputeQuorum(sks, compute, tenant, main, start, LagLimits.NONE)) {
        ps.startWalReceiver(tenant, main, ApiModel.WalSource.fromSafekeepers(q.endpoints()));
        compute.sql("create table t (id int primary key, v text)");
        for (int i = 0; i < 4; i++) { // about 8 MiB of WAL
          insert(compute, i * 5000 + 1, (i + 1) * 5000);
        }
        Lsn end = q.lastRecordEnd();
        q.awaitCommit(end, 1, 2, 3);
        PgWal.await(
            T,
            "the first pageserver to ingest " + end,
            () -> !timeline.lastRecordLsn().isBefore(end));
        ps.checkpoint(tenant, main);

        // The safekeepers offload, then (the pageserver's durable position being past it) remove
        // the WAL where the timeline starts: only remote storage has it now.
        Lsn lastComplete = Lsn.of(end.value() / SEG * SEG);
        q.awaitAll(
            "every safekeeper to offload up to " + lastComplete + " and remove the WAL at " + start,
            new int[] {1, 2, 3},
            i ->
                !Lsn.parse(i.backupLsn()).isBefore(lastComplete)
                    && Lsn.parse(i.oldestLsn()).isAfter(start));
        try (RemoteStorage storage = RemoteStorage.open(remote.settings(skRoot))) {
          assertThat(storage.list(RemoteWal.prefix(tenant, main)).count().block(T))
              .as("one object per offloaded segment")
              .isGreaterThanOrEqualTo((lastComplete.value() - start.value() / SEG * SEG) / SEG);
        }

        // A second pageserver, its timeline still at the start, with the same remote storage.
        try (Pageserver ps2 =
            Pageserver.start(
                data2, PageserverHarness.config("1MiB", "60s", 1).withRemoteStorage(remote))) {
          Timeline t2 = ps2.store().timeline(tenant, main);
          assertThat(t2.lastRecordLsn()).isEqualTo(start);
          insert(compute, 20_001, 25_000); // more WAL, which only the safekeepers hold
          Lsn end2 = q.lastRecordEnd();
          q.awaitCommit(end2, 1, 2, 3);
          ps2.startWalReceiver(tenant, main, ApiModel.WalSource.fromSafekeepers(q.endpoints()));
          PgWal.await(
              T,
              "the second pageserver to ingest " + end2 + " (offloaded WAL, then the safekeepers')",
              () -> !t2.lastRecordLsn().isBefore(end2));
          try (PgCluster check =
              PageserverHarness.compute(ps2, tenant, main, end2.toString(), false)) {
            assertThat(check.sql("select count(*), count(distinct id) from t").trim())
                .isEqualTo("25000|25000");
          }
        }
      }
    }
  }
}
