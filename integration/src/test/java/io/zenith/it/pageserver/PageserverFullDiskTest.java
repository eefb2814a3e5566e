package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.r2dbc.postgresql.PostgresqlConnectionFactory;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.ingest.IngestPipeline;
import io.zenith.it.safekeeper.ComputeQuorum;
import io.zenith.it.support.BankWorkload;
import io.zenith.layer.Timeline;
import io.zenith.layer.testing.FullLayerDisk;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.LagLimits;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The pageserver's disk fills up while a compute commits bank transfers and a bulk load through
 * three safekeepers (the full disk simulated through the layer store's {@code LayerDisk} seam,
 * {@link FullLayerDisk}): its layer flushes fail and change nothing, ingest goes on until the
 * frozen layers hold it back, the disk-consistent LSN stays where it was, and the safekeepers'
 * flush-lag limit holds the compute's commits — they wait, none fails. Once space is back the
 * retried flush works and the commits go on, without a restart; a compute from a basebackup at the
 * end sees every acknowledged transfer, the bank's total and the bulk load's rows.
 */
@ExtendWith(NettyLeakCheck.class)
class PageserverFullDiskTest {
  private static final Logger log = LoggerFactory.getLogger(PageserverFullDiskTest.class);
  private static final Duration T = Duration.ofSeconds(60);
  private static final int ACCOUNTS = 100;
  private static final long BALANCE = 1_000;
  private static final int BULK_ROWS = 10_000;

  @TempDir Path data;
  @TempDir Path skRoot;

  /** The acknowledged count once it has not moved for {@code quiet}; fails after {@code max}. */
  private static long awaitStalled(BankWorkload bank, Duration quiet, Duration max) {
    long deadline = System.nanoTime() + max.toNanos();
    long last = bank.acknowledgedCount();
    long since = System.nanoTime();
    while (System.nanoTime() < deadline) {
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError(e);
      }
      long now = bank.acknowledgedCount();
      if (now != last) {
        last = now;
        since = System.nanoTime();
      } else if (System.nanoTime() - since >= quiet.toNanos()) {
        return now;
      }
    }
    throw new AssertionError(
        "commits did not stall within " + max.toSeconds() + " s (" + last + " acknowledged)");
  }

  private static String metric(Pageserver ps, String name, TimelineId timeline) {
    for (String line : ps.scrapeMetrics().split("\n")) {
      if (line.startsWith(name + "{") && line.contains(timeline.toString())) {
        return line.substring(line.lastIndexOf(' ') + 1);
      }
    }
    return null;
  }

  @Test
  void aFullDiskHoldsCommitsBackWithoutErrorsAndFreeingSpaceResumesThem() throws Exception {
    FullLayerDisk disk = FullLayerDisk.unlimited();
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    PageserverHarness.importTimeline(data, tenant, main);
    try (Pageserver ps =
        Pageserver.start(data, PageserverHarness.config("64KiB", "60s", 1), disk)) {
      Timeline timeline = ps.store().timeline(tenant, main);
      Lsn start = timeline.lastRecordLsn();
      LagLimits limits = new LagLimits(0, 512 << 10, 0);
      try (PgCluster compute =
              PageserverHarness.compute(ps, tenant, main, null, ComputeQuorum::configure);
          ComputeQuorum q = new ComputeQuorum(skRoot, compute, tenant, main, start, limits)) {
        ps.startWalReceiver(tenant, main, ApiModel.WalSource.fromSafekeepers(q.endpoints()));
        PostgresqlConnectionFactory factory =
            BankWorkload.factory("127.0.0.1", compute.port(), "postgres");
        log.warn("pageserver, compute and safekeepers set up");
        try (BankWorkload bank = BankWorkload.create(factory, ACCOUNTS, BALANCE).start(4)) {
          long t0 = System.nanoTime();
          PgWal.await(T, "50 transfers", () -> bank.acknowledgedCount() >= 50);
          long t1 = System.nanoTime();
          assertThat(timeline.flushFailure()).isEmpty();

          disk.setFree(0);
          // A bulk load beside the transfers: WAL beyond the flush-lag limit quickly.
          CompletableFuture<String> bulk =
              CompletableFuture.supplyAsync(
                  () ->
                      compute.sql(
                          "create table bulk as select g, repeat('x', 200) as v"
                              + " from generate_series(1, "
                              + BULK_ROWS
                              + ") g"));
          PgWal.await(
              T, "a flush to fail for want of space", () -> timeline.flushFailure().isPresent());
          // From the first failed flush on, nothing becomes durable.
          Lsn durable = timeline.diskConsistentLsn();
          // Ingest goes on until the backpressure point, then stops reading the WAL.
          int maxFrozen = IngestPipeline.Options.DEFAULT.maxFrozenLayers();
          PgWal.await(
              T,
              "ingest to stop at the backpressure point",
              () -> timeline.frozenCount() > maxFrozen);
          Lsn ingested = timeline.lastRecordLsn();
          // The safekeepers store the compute's WAL but hold their acknowledgements back.
          PgWal.await(
              T,
              "the safekeepers to hold their acknowledgements back",
              () -> {
                for (int id = 1; id <= 3; id++) {
                  SafekeeperApiModel.TimelineInfo sk = q.info(id);
                  assertThat(Lsn.parse(sk.pageserver().flushLsn()))
                      .as("safekeeper %d's view of the pageserver's flush LSN", id)
                      .isLessThanOrEqualTo(durable);
                  assertThat(Lsn.parse(sk.ackLsn()))
                      .as("safekeeper %d's acknowledgement", id)
                      .isLessThanOrEqualTo(durable.plus(limits.maxFlushLag()));
                  if (!Lsn.parse(sk.ackLsn()).isBefore(Lsn.parse(sk.flushLsn()))) {
                    return false;
                  }
                }
                return true;
              });
          long stalled = awaitStalled(bank, Duration.ofSeconds(3), T);
          long t2 = System.nanoTime();
          log.warn(
              "disk full: commits stalled at {} transfers after {} ms; ingested {}, durable {}",
              stalled,
              Duration.ofNanos(t2 - t1).toMillis(),
              ingested,
              durable);
          // Commits wait for the safekeepers (whose acks wait for the pageserver): no errors.
          PgWal.await(
              T,
              "commits waiting for synchronous replication",
              () ->
                  Integer.parseInt(
                          compute
                              .sql(
                                  "select count(*) from pg_stat_activity"
                                      + " where wait_event = 'SyncRep'")
                              .trim())
                      > 0);
          assertThat(bank.errors()).isEmpty();
          assertThat(bank.failures()).isZero();
          ApiModel.TimelineInfo info = ps.timeline(tenant, main, false);
          assertThat(info.flushError()).isEqualTo(FullLayerDisk.ENOSPC);
          assertThat(info.diskConsistentLsn()).isEqualTo(durable.toString());
          assertThat(info.walReceiver().state()).isEqualTo("streaming");
          assertThat(metric(ps, "zenith_flush_blocked", main)).isEqualTo("1.0");
          assertThat(Double.parseDouble(metric(ps, "zenith_flush_failures_total", main)))
              .isPositive();
          assertThat(bank.acknowledgedCount()).as("still held").isEqualTo(stalled);
          assertThat(bulk).as("the bulk load's commit waits too").isNotDone();
          assertThat(timeline.diskConsistentLsn()).as("nothing became durable").isEqualTo(durable);
          assertThat(timeline.lastRecordLsn()).as("nothing more ingested").isEqualTo(ingested);
          assertThat(timeline.frozenCount()).as("frozen layers queued").isEqualTo(maxFrozen + 1);

          disk.setFree(Long.MAX_VALUE);
          PgWal.await(
              T,
              "commits to resume once space is back",
              () -> bank.acknowledgedCount() >= stalled + 100);
          log.warn(
              "space back: commits resumed after {} ms (50 transfers in {} ms before the disk"
                  + " filled)",
              Duration.ofNanos(System.nanoTime() - t2).toMillis(),
              Duration.ofNanos(t1 - t0).toMillis());
          bulk.get(T.toSeconds(), TimeUnit.SECONDS); // committed, no error
          assertThat(timeline.flushFailure()).isEmpty();
          assertThat(timeline.diskConsistentLsn()).isGreaterThan(durable);
          assertThat(metric(ps, "zenith_flush_blocked", main)).isEqualTo("0.0");
          bank.stop();
          assertThat(bank.errors()).isEmpty();
          assertThat(bank.failures()).isZero();
          assertThat(disk.refusals()).isPositive();

          Lsn end = q.lastRecordEnd();
          q.awaitCommit(end, 1, 2, 3);
          PgWal.await(
              T, "the pageserver to ingest " + end, () -> !timeline.lastRecordLsn().isBefore(end));
          try (PgCluster check =
              PageserverHarness.compute(ps, tenant, main, end.toString(), false)) {
            BankWorkload.Snapshot s =
                BankWorkload.read(BankWorkload.factory("127.0.0.1", check.port(), "postgres"));
            assertThat(s.total()).isEqualTo(bank.expectedTotal());
            assertThat(BankWorkload.missing(bank.acknowledged(), s.transfers()))
                .as("acknowledged transfers the compute does not have")
                .isEmpty();
            assertThat(check.sql("select count(*), count(distinct g) from bulk").trim())
                .isEqualTo(BULK_ROWS + "|" + BULK_ROWS);
          }
          log.warn("checked: {} transfers", bank.acknowledgedCount());
        }
      }
    }
  }
}
