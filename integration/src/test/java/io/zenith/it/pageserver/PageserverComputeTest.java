package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.it.support.ZenithEnv;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.TimelineId;
import java.io.IOException;
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
  private ZenithEnv env;
  private Pageserver ps;

  @BeforeAll
  void start() throws IOException {
    env = ZenithEnv.start(data);
    ps = env.pageserver();
  }

  @AfterAll
  void stop() {
    if (env != null) {
      env.close();
    }
  }

  @Test
  void aComputeRebuiltFromThePageserverAloneHasEveryCommittedRow() {
    TimelineId main = env.main();
    try (PgCluster first = env.primary(main, Map.of())) {
      first.sql("CREATE TABLE t(id int PRIMARY KEY, v text)");
      first.sql("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 20000) g");
      Lsn committedAt = Lsn.parse(first.sql("SELECT pg_current_wal_insert_lsn()").trim());
      // The commit returned, so the pageserver, a remote_write standby, has ingested it.
      assertThat(ps.store().timeline(env.tenant(), main).lastRecordLsn())
          .isGreaterThanOrEqualTo(committedAt.plus(-64));
      env.stop(first, main); // waits until the pageserver reports everything flushed
    }
    try (PgCluster second = env.primary(main, Map.of())) {
      assertThat(second.sql("SELECT count(*), sum(id) FROM t").trim()).isEqualTo("20000|200010000");
      second.sql("INSERT INTO t VALUES (20001, 'second compute')");
      env.stop(second, main);
    }
    try (PgCluster third = env.primary(main, Map.of())) {
      assertThat(third.sql("SELECT v FROM t WHERE id = 20001").trim()).isEqualTo("second compute");
      env.stop(third, main);
    }
  }

  @Test
  void branchesAndReadOnlyComputesSeeTheirOwnHistory() {
    TimelineId base = TimelineId.generate();
    ps.branch(
        env.tenant(),
        new ApiModel.TimelineCreateRequest(base.toString(), env.main().toString(), null));
    Lsn after100;
    try (PgCluster c = env.primary(base, Map.of())) {
      c.sql("CREATE TABLE b(i int); INSERT INTO b SELECT generate_series(1, 100)");
      after100 = Lsn.parse(c.sql("SELECT pg_current_wal_insert_lsn()").trim());
      c.sql("INSERT INTO b SELECT generate_series(101, 100100)");
      env.stop(c, base);
    }
    ps.checkpoint(env.tenant(), base);

    TimelineId b1 = TimelineId.generate();
    ps.branch(
        env.tenant(),
        new ApiModel.TimelineCreateRequest(b1.toString(), base.toString(), after100.toString()));
    try (PgCluster onBranch = env.primary(b1, Map.of())) {
      assertThat(onBranch.sql("SELECT count(*) FROM b").trim()).isEqualTo("100");
      onBranch.sql("INSERT INTO b VALUES (-1)");
      env.stop(onBranch, b1);
    }
    try (PgCluster onBase = env.primary(base, Map.of())) {
      assertThat(onBase.sql("SELECT count(*), min(i) FROM b").trim()).isEqualTo("100100|1");
      env.stop(onBase, base);
    }
    try (PgCluster readOnly = env.readOnly(base, after100.toString())) {
      assertThat(readOnly.sql("SELECT count(*) FROM b").trim()).isEqualTo("100");
      assertThat(readOnly.sql("SELECT pg_is_in_recovery()").trim()).isEqualTo("t");
    }
    assertThat(ps.timeline(env.tenant(), b1, true).logicalSize()).isPositive();
    assertThat(Optional.ofNullable(ps.timeline(env.tenant(), b1, false).ancestorTimelineId()))
        .contains(base.toString());
  }

  @Test
  void basebackupErrorsAreClearAndKeepTheServerServing() {
    for (String cmd :
        List.of(
            "basebackup " + env.tenant() + " " + TimelineId.generate(),
            "basebackup " + env.tenant() + " nothex",
            "basebackup " + env.tenant() + " " + env.main() + " 0/zz",
            "basebackup " + env.tenant() + " " + env.main() + " FFFF/0",
            "no such command")) {
      long t0 = System.nanoTime();
      ZenithEnv.ProcessResult r = ZenithEnv.psql(ps.pgPort(), cmd);
      assertThat(r.exitCode()).as(cmd).isNotZero();
      assertThat(r.output()).as(cmd).contains("ERROR:");
      if (cmd.endsWith("FFFF/0")) {
        assertThat(r.output()).contains("timed out");
        assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(30));
      }
    }
    assertThat(ps.status().pgVersion()).isEqualTo(15);
  }
}
