package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.ingest.IngestPipeline;
import io.zenith.layer.Timeline;
import io.zenith.layer.testing.SlowLayerDisk;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.client.ReplicationOptions;
import io.zenith.replication.client.StreamMetrics;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A compute bulk-loads while its pageserver, its synchronous standby, flushes slowly (its layer
 * files go to a {@link SlowLayerDisk}): the pageserver's memory for WAL in flight stays bounded —
 * frozen layers, the WAL ingested but not durable, the replication client's read-ahead — its socket
 * reads pause, and the compute's commits wait for it. The same load without the hook is not held
 * back. Bounds are asserted, not speeds: the slowed load's duration is compared with the unhindered
 * one and with the least time its flushes can have taken.
 */
@ExtendWith(NettyLeakCheck.class)
class PageserverBackpressureTest {
  private static final Logger log = LoggerFactory.getLogger(PageserverBackpressureTest.class);
  private static final long CHECKPOINT_DISTANCE = 256 * 1024;
  private static final Duration FLUSH_DELAY = Duration.ofMillis(150);
  private static final int STATEMENTS = 4;
  private static final int ROWS_PER_STATEMENT = 16000;

  @TempDir static Path data;

  /** What one load did, as seen from the pageserver while it ran. */
  record Load(
      Duration took,
      long walBytes,
      long flushes,
      int maxFrozen,
      long maxFlushLag,
      long maxBufferedBytes,
      int maxBufferedChunks,
      long readPauses) {}

  @Test
  void aSlowFlushHoldsTheComputeBackWithBoundedMemory() throws Exception {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    PageserverHarness.importTimeline(data, tenant, main);
    SlowLayerDisk slowDisk = new SlowLayerDisk();
    try (Pageserver ps =
            Pageserver.start(data, PageserverHarness.config("256KiB", "5s", 1), slowDisk);
        PgCluster compute = PageserverHarness.compute(ps, tenant, main, null, true)) {
      PageserverHarness.stream(ps, tenant, main, compute);
      compute.sql("CREATE TABLE t(i int, v text)");
      Timeline timeline = ps.store().timeline(tenant, main);

      Load fast = load(ps, compute, timeline, tenant, main);
      slowDisk.setDelay(FLUSH_DELAY);
      Load slow = load(ps, compute, timeline, tenant, main);
      slowDisk.setDelay(Duration.ZERO);
      log.warn("backpressure: without the slow flush {}; with it {}", fast, slow);

      int maxFrozen = IngestPipeline.Options.DEFAULT.maxFrozenLayers();
      for (Load l : new Load[] {fast, slow}) {
        assertThat(l.maxFrozen()).as("frozen layers, %s", l).isLessThanOrEqualTo(maxFrozen + 1);
        // Ingested but not durable: the open layer and the frozen ones, each at most the
        // checkpoint distance and one record (an 8 KiB page image, or a bit more) past it.
        assertThat(l.maxFlushLag())
            .as("WAL ingested but not yet flushed, %s", l)
            .isLessThanOrEqualTo((maxFrozen + 2) * (CHECKPOINT_DISTANCE + 64 * 1024));
        // The replication client's read-ahead (ReplicationOptions, WalStreamExchange's bound).
        assertThat(l.maxBufferedBytes())
            .as("WAL buffered by the replication client, %s", l)
            .isLessThanOrEqualTo(
                ReplicationOptions.DEFAULT.maxBufferedChunks() * 128L * 1024 + 192 * 1024);
      }
      assertThat(slow.readPauses()).as("socket reads paused while the flush lagged").isPositive();
      // Each flush takes at least the delay, and ingest runs at most maxFrozen + 1 frozen layers
      // and an open one ahead of the flushes: the commits waited for all but those.
      long flushBound = Math.max(0, slow.flushes() - (maxFrozen + 2)) * FLUSH_DELAY.toMillis();
      assertThat(slow.flushes()).as("layers flushed during the slowed load").isGreaterThan(10);
      assertThat(slow.took().toMillis())
          .as("the slowed load waits for its flushes")
          .isGreaterThanOrEqualTo(flushBound);
      assertThat(slow.took()).as("the slowed load is held back").isGreaterThan(fast.took());

      // Nothing was lost on the way.
      assertThat(compute.sql("SELECT count(*) FROM t").trim())
          .isEqualTo(Integer.toString(2 * STATEMENTS * ROWS_PER_STATEMENT));
      compute.stop(); // waits until the pageserver has flushed everything
      ps.stopWalReceiver(tenant, main);
      try (PgCluster check = PageserverHarness.compute(ps, tenant, main, null, false)) {
        assertThat(check.sql("SELECT count(*), count(DISTINCT i) FROM t").trim())
            .isEqualTo(
                2 * STATEMENTS * ROWS_PER_STATEMENT + "|" + 2 * STATEMENTS * ROWS_PER_STATEMENT);
      }
    }
  }

  private static int loads;

  /** Commits {@link #STATEMENTS} inserts, each waiting for the pageserver; samples meanwhile. */
  private static Load load(
      Pageserver ps, PgCluster compute, Timeline timeline, TenantId tenant, TimelineId main)
      throws InterruptedException {
    // Start from a quiet pipeline: everything before is durable.
    PgWal.await(
        Duration.ofSeconds(60),
        "the pageserver flushed the previous load",
        () -> timeline.diskConsistentLsn().equals(timeline.lastRecordLsn()));
    StreamMetrics client = ps.walReceiverStreamMetrics(tenant, main).orElseThrow();
    long pausesBefore = client.readPauses();
    int[] maxFrozen = {0};
    long[] maxLag = {0};
    AtomicBoolean running = new AtomicBoolean(true);
    Thread sampler =
        Thread.ofPlatform()
            .name("backpressure-sampler")
            .start(
                () -> {
                  while (running.get()) {
                    maxFrozen[0] = Math.max(maxFrozen[0], timeline.frozenCount());
                    maxLag[0] =
                        Math.max(
                            maxLag[0],
                            timeline.lastRecordLsn().minus(timeline.diskConsistentLsn()));
                    try {
                      Thread.sleep(2);
                    } catch (InterruptedException e) {
                      return;
                    }
                  }
                });
    long flushesBefore = flushes(ps, main);
    Lsn from = timeline.lastRecordLsn();
    StringBuilder sql = new StringBuilder();
    int base = loads++ * STATEMENTS * ROWS_PER_STATEMENT;
    for (int s = 0; s < STATEMENTS; s++) {
      int first = base + s * ROWS_PER_STATEMENT + 1;
      sql.append(
          "INSERT INTO t SELECT g, repeat('v', 100) FROM generate_series(%d, %d) g;\n"
              .formatted(first, first + ROWS_PER_STATEMENT - 1));
    }
    long t0 = System.nanoTime();
    compute.sql(sql.toString()); // each statement commits, synchronously with the pageserver
    Duration took = Duration.ofNanos(System.nanoTime() - t0);
    long flushes = flushes(ps, main) - flushesBefore;
    running.set(false);
    sampler.join();
    return new Load(
        took,
        timeline.lastRecordLsn().minus(from),
        flushes,
        maxFrozen[0],
        maxLag[0],
        client.maxBufferedBytesSeen(),
        client.maxBufferedChunksSeen(),
        client.readPauses() - pausesBefore);
  }

  /** Layers flushed so far by the timeline's ingest pipelines ({@code zenith_flush_duration}). */
  private static long flushes(Pageserver ps, TimelineId timeline) {
    for (String line : ps.scrapeMetrics().split("\n")) {
      if (line.startsWith("zenith_flush_duration_seconds_count{")
          && line.contains(timeline.toString())) {
        return (long) Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
      }
    }
    return 0;
  }
}
