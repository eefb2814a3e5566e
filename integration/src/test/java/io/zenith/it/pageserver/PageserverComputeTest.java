package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.ingest.DatadirImport;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.pg.PgDistribution;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * A pageserver (in this JVM) and real PostgreSQL 15 computes: a compute built from the pageserver's
 * basebackup streams its WAL back to the pageserver, which is its synchronous {@code remote_write}
 * standby; the compute is then thrown away and a new one built from the pageserver alone has every
 * committed row; branches see their own history.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class PageserverComputeTest {
  @TempDir static Path data;
  private static final TenantId TENANT = TenantId.generate();
  private static final TimelineId MAIN = TimelineId.generate();
  private Pageserver ps;

  @BeforeAll
  void importAndStart() throws IOException {
    try (PgCluster initdb = PgCluster.initdb("--data-checksums");
        LayerStore store = LayerStore.open(data, LayerStoreConfig.DEFAULT)) {
      store.createTenant(TENANT);
      DatadirImport.run(store, TENANT, MAIN, initdb.dataDir());
    }
    PageserverConfig cfg =
        new PageserverConfig(
            "127.0.0.1:0", "127.0.0.1:0", "test", "8MiB", "10m", "5s", "64MiB", 2, "10s", true);
    ps = Pageserver.start(data, cfg.validate());
  }

  @AfterAll
  void stop() {
    if (ps != null) {
      ps.close();
    }
  }

  /** A compute on {@code timeline} at {@code lsn} (latest if null): basebackup through psql. */
  private PgCluster compute(TimelineId timeline, String lsn, boolean primary) {
    PgCluster c = Basebackups.fetch(ps.pgPort(), TENANT, timeline, lsn, data);
    if (primary) {
      c.configure(
          Map.of(
              "synchronous_standby_names", "pageserver",
              "synchronous_commit", "remote_write",
              "wal_level", "replica",
              "wal_log_hints", "on",
              "max_wal_senders", "4",
              "max_replication_slots", "4"));
    } else {
      c.configure(Map.of("hot_standby", "on"));
      try {
        Files.writeString(c.dataDir().resolve("standby.signal"), "");
        c.distribution().giveToPgUser(c.dataDir().resolve("standby.signal"));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return c.start();
  }

  private void streamFrom(TimelineId timeline, PgCluster compute) {
    ps.startWalReceiver(
        TENANT,
        timeline,
        new ApiModel.WalSource(
            "127.0.0.1", compute.port(), "postgres", "pageserver", "pageserver"));
  }

  @Test
  void aComputeRebuiltFromThePageserverAloneHasEveryCommittedRow() {
    Lsn committedAt;
    try (PgCluster first = compute(MAIN, null, true)) {
      streamFrom(MAIN, first);
      first.sql("CREATE TABLE t(id int PRIMARY KEY, v text)");
      first.sql("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 20000) g");
      committedAt = Lsn.parse(first.sql("SELECT pg_current_wal_insert_lsn()").trim());
      // The commit returned, so the pageserver, a remote_write standby, has ingested it.
      assertThat(ps.store().timeline(TENANT, MAIN).lastRecordLsn())
          .isGreaterThanOrEqualTo(committedAt.plus(-64));
      first.stop(); // waits until the pageserver reports everything flushed
    }
    ps.stopWalReceiver(TENANT, MAIN);
    try (PgCluster second = compute(MAIN, null, true)) {
      assertThat(second.sql("SELECT count(*), sum(id) FROM t").trim()).isEqualTo("20000|200010000");
      streamFrom(MAIN, second);
      second.sql("INSERT INTO t VALUES (20001, 'second compute')");
      second.stop();
    }
    ps.stopWalReceiver(TENANT, MAIN);
    try (PgCluster third = compute(MAIN, null, true)) {
      assertThat(third.sql("SELECT v FROM t WHERE id = 20001").trim()).isEqualTo("second compute");
    }
  }

  @Test
  void branchesAndReadOnlyComputesSeeTheirOwnHistory() {
    TimelineId base = TimelineId.generate();
    ps.branch(TENANT, new ApiModel.TimelineCreateRequest(base.toString(), MAIN.toString(), null));
    Lsn after100;
    try (PgCluster c = compute(base, null, true)) {
      streamFrom(base, c);
      c.sql("CREATE TABLE b(i int); INSERT INTO b SELECT generate_series(1, 100)");
      after100 = Lsn.parse(c.sql("SELECT pg_current_wal_insert_lsn()").trim());
      c.sql("INSERT INTO b SELECT generate_series(101, 100100)");
      c.stop();
    }
    ps.stopWalReceiver(TENANT, base);
    ps.checkpoint(TENANT, base);

    TimelineId b1 = TimelineId.generate();
    ps.branch(
        TENANT,
        new ApiModel.TimelineCreateRequest(b1.toString(), base.toString(), after100.toString()));
    try (PgCluster onBranch = compute(b1, null, true)) {
      assertThat(onBranch.sql("SELECT count(*) FROM b").trim()).isEqualTo("100");
      streamFrom(b1, onBranch);
      onBranch.sql("INSERT INTO b VALUES (-1)");
      onBranch.stop();
    }
    ps.stopWalReceiver(TENANT, b1);
    try (PgCluster onBase = compute(base, null, true)) {
      assertThat(onBase.sql("SELECT count(*), min(i) FROM b").trim()).isEqualTo("100100|1");
    }
    try (PgCluster readOnly = compute(base, after100.toString(), false)) {
      assertThat(readOnly.sql("SELECT count(*) FROM b").trim()).isEqualTo("100");
      assertThat(readOnly.sql("SELECT pg_is_in_recovery()").trim()).isEqualTo("t");
    }
    assertThat(ps.timeline(TENANT, b1, true).logicalSize()).isPositive();
    assertThat(Optional.ofNullable(ps.timeline(TENANT, b1, false).ancestorTimelineId()))
        .contains(base.toString());
  }

  @Test
  void basebackupErrorsAreClearAndKeepTheServerServing() throws Exception {
    {
      for (String cmd :
          List.of(
              "basebackup " + TENANT + " " + TimelineId.generate(),
              "basebackup " + TENANT + " nothex",
              "basebackup " + TENANT + " " + MAIN + " 0/zz",
              "basebackup " + TENANT + " " + MAIN + " FFFF/0",
              "no such command")) {
        ProcessBuilder pb =
            new ProcessBuilder(
                    PgDistribution.detect().bin("psql").toString(),
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    Integer.toString(ps.pgPort()),
                    "-U",
                    "postgres",
                    "-c",
                    cmd)
                .redirectErrorStream(true);
        long t0 = System.nanoTime();
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor()).as(cmd).isNotZero();
        assertThat(out).as(cmd).contains("ERROR:");
        if (cmd.endsWith("FFFF/0")) {
          assertThat(out).contains("timed out");
          assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(30));
        }
      }
    }
    assertThat(ps.status().pgVersion()).isEqualTo(15);
  }
}
