package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.it.safekeeper.ComputeQuorum;
import io.zenith.it.safekeeper.SafekeeperSet;
import io.zenith.layer.Timeline;
import io.zenith.layer.testing.SlowLayerDisk;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.replication.testing.ThreadDump;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.LagLimits;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The pageserver takes its WAL from the safekeepers (ADR 0005, {@code wal_source.safekeepers}): a
 * real PostgreSQL 15 compute, started from the pageserver's basebackup, commits through three
 * safekeepers ({@code ANY 2 (sk_1, sk_2, sk_3)}); the pageserver streams committed WAL from the
 * most advanced one, switches when it goes away or its stream stalls (its safekeeper OS process
 * SIGSTOPped), and its feedback drives the safekeepers' lag limits. (The switch rules themselves:
 * {@code WalReceiverSwitchTest} in {@code gateway}.)
 */
@ExtendWith(NettyLeakCheck.class)
class PageserverFromSafekeepersTest {
  private static final Logger log = LoggerFactory.getLogger(PageserverFromSafekeepersTest.class);
  private static final Duration T = Duration.ofSeconds(90);

  @TempDir Path data;
  @TempDir Path skRoot;

  private static ApiModel.WalReceiverInfo receiver(Pageserver ps, TenantId t, TimelineId tl) {
    return ps.timeline(t, tl, false).walReceiver();
  }

  /** The ids of the two safekeepers (of 1, 2, 3) other than {@code victim}. */
  private static int[] others(int victim) {
    return IntStream.rangeClosed(1, 3).filter(i -> i != victim).toArray();
  }

  /** The highest commit LSN the running safekeepers report. */
  private static Lsn maxCommit(ComputeQuorum q, int... ids) {
    Lsn m = Lsn.INVALID;
    for (int id : ids) {
      m = Lsn.max(m, Lsn.parse(q.info(id).commitLsn()));
    }
    return m;
  }

  /**
   * What a failed wait for the switch reports: the receiver, the positions on both sides, and the
   * threads of the receiver and its pipeline.
   */
  private static String diagnostics(
      Pageserver ps, TenantId t, TimelineId tl, Timeline timeline, ComputeQuorum q, int... ids) {
    StringBuilder b = new StringBuilder();
    b.append("receiver: ").append(receiver(ps, t, tl));
    b.append("\ntimeline: last record ").append(timeline.lastRecordLsn());
    b.append(", disk consistent ").append(timeline.diskConsistentLsn());
    for (int id : ids) {
      b.append("\nsafekeeper ").append(id).append(": ").append(q.info(id));
    }
    b.append("\n")
        .append(
            ThreadDump.startingWith(
                "ingest-", "flush-", "boundedElastic", "reactor-tcp", "parallel"));
    return b.toString();
  }

  @Test
  void switchesSafekeeperWhenItsGoesAwayAndABasebackupSeesEveryCommittedRow() {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    PageserverHarness.importTimeline(data, tenant, main);
    try (Pageserver ps = Pageserver.start(data, PageserverHarness.config("1MiB", "60s", 1))) {
      Timeline timeline = ps.store().timeline(tenant, main);
      Lsn start = timeline.lastRecordLsn();
      try (PgCluster compute =
              PageserverHarness.compute(ps, tenant, main, null, ComputeQuorum::configure);
          ComputeQuorum q =
              new ComputeQuorum(skRoot, compute, tenant, main, start, LagLimits.NONE)) {
        ApiModel.TimelineInfo set =
            ps.startWalReceiver(tenant, main, ApiModel.WalSource.fromSafekeepers(q.endpoints()));
        assertThat(set.walReceiver().safekeeperId()).isNotNull();
        compute.sql(
            "create table t (id int primary key, v text);"
                + " insert into t select i, repeat('a', 100) from generate_series(1, 20000) i");
        Lsn end = q.lastRecordEnd();
        q.awaitCommit(end, 1, 2, 3);
        PgWal.await(
            T, "the pageserver to ingest " + end, () -> !timeline.lastRecordLsn().isBefore(end));
        ApiModel.WalReceiverInfo r = receiver(ps, tenant, main);
        assertThat(r.state()).isEqualTo("streaming");
        int victim = r.safekeeperId();
        assertThat(r.port()).isEqualTo(q.pgPort(victim));
        assertThat(timeline.lastRecordLsn())
            .as("never beyond a commit LSN")
            .isLessThanOrEqualTo(maxCommit(q, 1, 2, 3));

        // The safekeeper it streams from goes away; the other two still commit.
        q.sks.stop(victim);
        int[] rest = others(victim);
        compute.sql(
            "insert into t select i, repeat('b', 100) from generate_series(20001, 40000) i");
        Lsn end2 = q.lastRecordEnd();
        Lsn flush = PgWal.lsn(compute, "pg_current_wal_flush_lsn()");
        q.awaitCommit(end2, rest);
        PgWal.await(
            T,
            "the pageserver to switch and ingest " + end2,
            () -> !timeline.lastRecordLsn().isBefore(end2),
            () -> diagnostics(ps, tenant, main, timeline, q, rest));
        ApiModel.WalReceiverInfo r2 = receiver(ps, tenant, main);
        assertThat(r2.safekeeperId()).isNotEqualTo(victim);
        assertThat(r2.state()).isEqualTo("streaming");
        assertThat(timeline.lastRecordLsn())
            .as("never beyond a commit LSN")
            .isLessThanOrEqualTo(maxCommit(q, rest));
        assertThat(timeline.lastRecordLsn()).isGreaterThanOrEqualTo(Lsn.min(end2, flush));
        // The safekeepers know only what the pageserver holds durably, also after it resumed
        // elsewhere at its last record: its durable position (apply) is its disk_consistent_lsn
        // without remote storage (ADR 0007), and retention keeps the WAL from there on.
        for (int id : rest) {
          SafekeeperApiModel.TimelineInfo info = q.info(id);
          SafekeeperApiModel.PageserverPositions p = info.pageserver();
          assertThat(Lsn.parse(p.flushLsn()))
              .as("safekeeper %d's view of the pageserver's flush LSN", id)
              .isLessThanOrEqualTo(timeline.diskConsistentLsn());
          assertThat(Lsn.parse(p.applyLsn()))
              .as("safekeeper %d's view of the pageserver's durable position", id)
              .isLessThanOrEqualTo(timeline.diskConsistentLsn())
              .isLessThanOrEqualTo(Lsn.parse(p.flushLsn()));
          assertThat(Lsn.parse(info.oldestLsn()))
              .as("safekeeper %d holds the WAL from the pageserver's durable position on", id)
              .isLessThanOrEqualTo(Lsn.parse(p.applyLsn()));
        }

        // A compute from a basebackup at that LSN sees every committed row.
        try (PgCluster check =
            PageserverHarness.compute(ps, tenant, main, end2.toString(), false)) {
          assertThat(check.sql("select count(*), count(distinct id) from t").trim())
              .isEqualTo("40000|40000");
        }
      }
    }
  }

  /**
   * The stall rule with real processes: the safekeeper the pageserver streams from is SIGSTOPped,
   * so its connections stay open but nothing arrives and its probes go unanswered, while the other
   * two go on committing. After {@code STALL} (10 s) without WAL the receiver leaves it for another
   * one and ingests the new WAL; once the stopped one is resumed it catches up and the pageserver
   * goes on ingesting.
   */
  @Test
  void switchesSafekeeperWhenItsStreamStallsWhileTheOthersGoOn() {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    PageserverHarness.importTimeline(data, tenant, main);
    try (Pageserver ps = Pageserver.start(data, PageserverHarness.config("1MiB", "60s", 1))) {
      Timeline timeline = ps.store().timeline(tenant, main);
      Lsn start = timeline.lastRecordLsn();
      try (PgCluster compute =
              PageserverHarness.compute(ps, tenant, main, null, ComputeQuorum::configure);
          ComputeQuorum q =
              new ComputeQuorum(
                  new SafekeeperSet(skRoot, 3).osProcesses(),
                  compute,
                  tenant,
                  main,
                  start,
                  LagLimits.NONE)) {
        ps.startWalReceiver(tenant, main, ApiModel.WalSource.fromSafekeepers(q.endpoints()));
        compute.sql(
            "create table t (id int primary key, v text);"
                + " insert into t select i, repeat('a', 100) from generate_series(1, 2000) i");
        Lsn end = q.lastRecordEnd();
        q.awaitCommit(end, 1, 2, 3);
        PgWal.await(
            T, "the pageserver to ingest " + end, () -> !timeline.lastRecordLsn().isBefore(end));
        ApiModel.WalReceiverInfo r = receiver(ps, tenant, main);
        assertThat(r.state()).isEqualTo("streaming");
        int victim = r.safekeeperId();
        int[] rest = others(victim);

        q.sks.pause(victim);
        try {
          long stopped = System.nanoTime();
          compute.sql(
              "insert into t select i, repeat('b', 100) from generate_series(2001, 4000) i");
          Lsn end2 = q.lastRecordEnd();
          q.awaitCommit(end2, rest);
          // More than STALL (the last WAL from the victim may be older than its stop) plus a
          // check interval, a probe timeout and a reconnect, with room for a loaded machine.
          PgWal.await(
              Duration.ofSeconds(60),
              "the pageserver to leave stopped safekeeper " + victim + " and ingest " + end2,
              () -> !timeline.lastRecordLsn().isBefore(end2));
          ApiModel.WalReceiverInfo r2 = receiver(ps, tenant, main);
          log.warn(
              "left stopped safekeeper {} after {} ms: {}",
              victim,
              Duration.ofNanos(System.nanoTime() - stopped).toMillis(),
              r2);
          assertThat(r2.safekeeperId()).isIn(rest[0], rest[1]);
          assertThat(r2.port()).isEqualTo(q.pgPort(r2.safekeeperId()));
          assertThat(r2.state()).isEqualTo("streaming");
          // It left because of the stall, not a failure: the victim's connection never broke.
          assertThat(r2.lastError())
              .startsWith("leaving safekeeper " + victim + " at ")
              .contains(": nothing arrived for ");
          assertThat(timeline.lastRecordLsn())
              .as("never beyond a commit LSN")
              .isLessThanOrEqualTo(maxCommit(q, rest));
        } finally {
          q.sks.resume(victim);
        }

        // The victim catches up, and nothing broke: the pageserver goes on ingesting.
        compute.sql("insert into t select i, repeat('c', 100) from generate_series(4001, 6000) i");
        Lsn end3 = q.lastRecordEnd();
        q.awaitCommit(end3, 1, 2, 3);
        PgWal.await(
            T, "the pageserver to ingest " + end3, () -> !timeline.lastRecordLsn().isBefore(end3));
        ApiModel.WalReceiverInfo r3 = receiver(ps, tenant, main);
        assertThat(r3.state()).isEqualTo("streaming");
        assertThat(timeline.lastRecordLsn())
            .as("never beyond a commit LSN")
            .isLessThanOrEqualTo(maxCommit(q, 1, 2, 3));
        try (PgCluster check =
            PageserverHarness.compute(ps, tenant, main, end3.toString(), false)) {
          assertThat(check.sql("select count(*), count(distinct id) from t").trim())
              .isEqualTo("6000|6000");
        }
      }
    }
  }

  /** Commits counted while a procedure commits small transactions for {@code seconds}. */
  private static int commitsIn(PgCluster compute, int seconds) {
    String n =
        compute.sql("call load(" + seconds + "); select n from runs order by id desc limit 1");
    return Integer.parseInt(n.trim());
  }

  @Test
  void maxReplicationWriteLagHoldsTheComputeBackWhileThePageserverFlushesSlowly() {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    PageserverHarness.importTimeline(data, tenant, main);
    SlowLayerDisk slowDisk = new SlowLayerDisk();
    try (Pageserver ps =
        Pageserver.start(data, PageserverHarness.config("256KiB", "60s", 1), slowDisk)) {
      Timeline timeline = ps.store().timeline(tenant, main);
      Lsn start = timeline.lastRecordLsn();
      LagLimits limits = new LagLimits(1 << 20, 0, 0);
      try (PgCluster compute =
              PageserverHarness.compute(ps, tenant, main, null, ComputeQuorum::configure);
          ComputeQuorum q = new ComputeQuorum(skRoot, compute, tenant, main, start, limits)) {
        ps.startWalReceiver(tenant, main, ApiModel.WalSource.fromSafekeepers(q.endpoints()));
        compute.sql(
            "create table t (i int, v text);"
                + " create table runs (id serial, n int);"
                + " create procedure load(secs int) language plpgsql as $$"
                + " declare t0 timestamptz := clock_timestamp(); k int := 0;"
                + " begin"
                + "  while clock_timestamp() < t0 + secs * interval '1 second' loop"
                + "   insert into t select g, repeat('v', 100) from generate_series(1, 1000) g;"
                + "   commit; k := k + 1;"
                + "  end loop;"
                + "  insert into runs (n) values (k); commit;"
                + " end $$");
        int fast = commitsIn(compute, 4);

        slowDisk.setDelay(Duration.ofMillis(400));
        AtomicLong maxHeldBack = new AtomicLong();
        AtomicBoolean sampling = new AtomicBoolean(true);
        Thread sampler =
            Thread.ofPlatform()
                .start(
                    () -> {
                      while (sampling.get()) {
                        var i = q.info(1);
                        maxHeldBack.accumulateAndGet(
                            Lsn.parse(i.flushLsn()).minus(Lsn.parse(i.ackLsn())), Math::max);
                        try {
                          Thread.sleep(50);
                        } catch (InterruptedException e) {
                          return;
                        }
                      }
                    });
        int slow;
        try {
          slow = commitsIn(compute, 4);
        } finally {
          sampling.set(false);
        }
        slowDisk.setDelay(Duration.ZERO);
        PgWal.await(
            T,
            "the pageserver to catch up",
            () -> timeline.diskConsistentLsn().equals(timeline.lastRecordLsn()));
        int recovered = commitsIn(compute, 4);
        log.warn(
            "commits in 4 s: {} without the slow flush, {} with it, {} after; acks held back up to"
                + " {} bytes",
            fast,
            slow,
            recovered,
            maxHeldBack.get());
        try {
          sampler.join();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        assertThat(maxHeldBack.get())
            .as("the safekeeper held its acknowledgement back behind its flush")
            .isGreaterThan(0);
        assertThat(slow).as("commits slowed down by the lag limit").isLessThan(fast / 2);
        assertThat(recovered).as("and recovered after").isGreaterThan(slow * 2);
      }
    }
  }
}
