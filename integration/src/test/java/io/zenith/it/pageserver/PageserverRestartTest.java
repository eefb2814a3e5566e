package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.layer.Timeline;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Restarts of a pageserver in this JVM on the same data directory (the library, no CLI): closed
 * while WAL is in flight, it comes back with its timelines and its WAL source, reconnects to the
 * restarted compute, resumes at its disk-consistent LSN, and ends with exactly the compute's data —
 * no record lost, none applied twice. Then its RocksDB index is deleted while it is stopped: it is
 * rebuilt from the layer files, with the same positions and the same data.
 */
@ExtendWith(NettyLeakCheck.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PageserverRestartTest {
  /** What a compute's data is, in one line: count, distinct keys, sum, digest. */
  private static final String CHECKSUM =
      "SELECT count(*), count(DISTINCT i), sum(i), md5(string_agg(i::text || v, ',' ORDER BY i))"
          + " FROM t";

  @TempDir static Path data;
  private final TenantId tenant = TenantId.generate();
  private final TimelineId main = TimelineId.generate();
  private final PageserverConfig config = PageserverHarness.config("1MiB", "5s", 1);
  private Pageserver ps;
  private String computeData;
  private ApiModel.TimelineInfo beforeRebuild;

  @AfterAll
  void stop() {
    if (ps != null) {
      ps.close();
    }
  }

  @Test
  @Order(1)
  void closedWithWalInFlightItResumesItsSourceAndLosesNothing() throws Exception {
    PageserverHarness.importTimeline(data, tenant, main);
    ps = Pageserver.start(data, config);
    try (PgCluster compute = PageserverHarness.compute(ps, tenant, main, null, true)) {
      PageserverHarness.stream(ps, tenant, main, compute);
      compute.sql("CREATE TABLE t(i int PRIMARY KEY, v text)");
      compute.sql("INSERT INTO t SELECT g, 'a' || g FROM generate_series(1, 10000) g");

      // A big transaction streams; the pageserver closes in the middle of it.
      Timeline timeline = ps.store().timeline(tenant, main);
      Lsn before = timeline.lastRecordLsn();
      CompletableFuture<String> big =
          CompletableFuture.supplyAsync(
              () -> {
                try {
                  return compute.sql(
                      "INSERT INTO t SELECT g, 'b' || g FROM generate_series(10001, 110000) g");
                } catch (IllegalStateException e) {
                  return e.getMessage(); // ended by the compute's shutdown, see below
                }
              });
      PgWal.await(
          Duration.ofSeconds(60),
          "the pageserver ingests part of the big transaction",
          () -> timeline.lastRecordLsn().minus(before) > 2 << 20);
      ps.close();
      ps = null;
      // The compute committed locally and waits for its synchronous standby, which is gone: a
      // fast shutdown ends the wait (the transaction stays committed).
      PgWal.await(
          Duration.ofSeconds(60),
          "the big transaction commits locally",
          () ->
              compute
                  .sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
                  .trim()
                  .equals("1"));
      compute.stop();
      assertThat(big.get()).contains("already committed locally");
      Lsn computeEnd = latestCheckpoint(compute);

      ps = Pageserver.start(data, config);
      ApiModel.TimelineInfo restarted = ps.timeline(tenant, main, false);
      assertThat(restarted.state()).isEqualTo("active");
      assertThat(restarted.lastRecordLsn())
          .as("resumes at the disk-consistent LSN")
          .isEqualTo(restarted.diskConsistentLsn());
      assertThat(Lsn.parse(restarted.lastRecordLsn()))
          .as("WAL was in flight at the close")
          .isLessThan(computeEnd);
      assertThat(restarted.walReceiver()).as("the WAL source was resumed").isNotNull();
      assertThat(restarted.walReceiver().port()).isEqualTo(compute.port());

      compute.start(); // same port: the resumed receiver reconnects on its own
      PgWal.await(
          Duration.ofSeconds(60),
          "the receiver streams from the restarted compute",
          () -> "streaming".equals(ps.timeline(tenant, main, false).walReceiver().state()));
      compute.sql("INSERT INTO t SELECT g, 'c' || g FROM generate_series(110001, 111000) g");
      computeData = compute.sql(CHECKSUM).trim();
      assertThat(computeData).startsWith("111000|111000|");
      compute.stop(); // waits until the pageserver has flushed everything
    }
    ps.stopWalReceiver(tenant, main);
    assertThat(dataOfAFreshCompute()).isEqualTo(computeData);
  }

  /** The compute's latest checkpoint, i.e. the end of its WAL after a clean shutdown. */
  private static Lsn latestCheckpoint(PgCluster c) {
    String out = c.run("pg_controldata", List.of("-D", c.dataDir().toString()));
    for (String line : out.split("\n")) {
      if (line.startsWith("Latest checkpoint location:")) {
        return Lsn.parse(line.substring(line.indexOf(':') + 1).trim());
      }
    }
    throw new AssertionError("no checkpoint location in\n" + out);
  }

  private String dataOfAFreshCompute() {
    try (PgCluster fresh = PageserverHarness.compute(ps, tenant, main, null, false)) {
      return fresh.sql(CHECKSUM).trim();
    }
  }

  @Test
  @Order(2)
  void aDeletedIndexIsRebuiltWithTheSamePositionsAndData() {
    beforeRebuild = ps.timeline(tenant, main, true);
    ps.close();
    ps = null;
    PgCluster.deleteTree(data.resolve("index"));

    ps = Pageserver.start(data, config);
    assertThat(ps.store().rebuiltIndex()).isTrue();
    ApiModel.TimelineInfo after = ps.timeline(tenant, main, true);
    assertThat(after.lastRecordLsn()).isEqualTo(beforeRebuild.lastRecordLsn());
    assertThat(after.diskConsistentLsn()).isEqualTo(beforeRebuild.diskConsistentLsn());
    assertThat(after.initdbLsn()).isEqualTo(beforeRebuild.initdbLsn());
    assertThat(after.logicalSize()).isEqualTo(beforeRebuild.logicalSize());
    assertThat(dataOfAFreshCompute()).isEqualTo(computeData);

    // And the timeline takes WAL again: a new primary on it streams and commits.
    try (PgCluster compute = PageserverHarness.compute(ps, tenant, main, null, true)) {
      PageserverHarness.stream(ps, tenant, main, compute);
      compute.sql("INSERT INTO t VALUES (0, 'after the rebuild')");
      compute.stop();
    }
    ps.stopWalReceiver(tenant, main);
    try (PgCluster fresh = PageserverHarness.compute(ps, tenant, main, null, false)) {
      assertThat(fresh.sql("SELECT v FROM t WHERE i = 0").trim()).isEqualTo("after the rebuild");
    }
  }
}
