package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.Timeline;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The history survives what it must (issue 11): a real PostgreSQL 15 compute writes through the
 * pageserver while snapshots (row checksums) are recorded at several LSNs; after compaction (image
 * layers, L0 merge) and GC with a small horizon, read-only computes from basebackups at the
 * snapshots inside the horizon see exactly the rows of their snapshot, a branch made at an old LSN
 * before GC still works (GC kept what its branch point needs), and a basebackup below the cutoff is
 * refused with a message naming the cutoff.
 */
class HistoryLifecycleTest {
  @TempDir Path data;

  /** A checksum of every row of t, and their count. */
  private static final String SNAPSHOT =
      "select count(*) || ':' || coalesce(sum(hashtext(t::text)), 0) from t";

  private static PageserverConfig config() {
    // Compaction and GC only when asked (the periods are long), so that the test decides when.
    return PageserverHarness.config("1MiB", "60s", 2)
        .withHistory("1MiB", 3, 2, "1h", "6MiB", "0s", "0s")
        .validate();
  }

  @Test
  void snapshotsInsideTheHorizonAndAnOldBranchSurviveCompactionAndGc() throws Exception {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    TimelineId old = TimelineId.generate();
    PageserverHarness.importTimeline(data, tenant, main);
    Map<Lsn, String> snapshots = new LinkedHashMap<>();
    String oldSnapshot;
    try (Pageserver ps = Pageserver.start(data, config())) {
      Timeline t = ps.store().timeline(tenant, main);
      try (PgCluster compute = PageserverHarness.compute(ps, tenant, main, null, true)) {
        PageserverHarness.stream(ps, tenant, main, compute);
        compute.sql("create table t (id int primary key, v text)");
        for (int round = 0; round < 8; round++) {
          // New rows and updates of old ones: pages with images, records, and both.
          compute.sql(
              "insert into t select i, repeat(md5(i::text), 8) from generate_series("
                  + (round * 5000 + 1)
                  + ", "
                  + (round + 1) * 5000
                  + ") i; update t set v = md5(v) where id % 7 = "
                  + round);
          Lsn at = PgWal.lsn(compute, "pg_current_wal_insert_lsn()");
          snapshots.put(at, compute.sql(SNAPSHOT).trim());
          if (round == 1) {
            awaitIngested(t, at);
            ps.store().branch(tenant, old, main, java.util.Optional.of(at));
          }
        }
        awaitIngested(t, PgWal.lsn(compute, "pg_current_wal_insert_lsn()"));
        ps.checkpoint(tenant, main);

        // The ingest pipeline compacts after its flushes already; this pass does what is left.
        ApiModel.CompactionInfo c = ps.compact(tenant, main);
        assertThat(c.timeline().layers().image()).as("%s", c).isPositive();
        assertThat(c.timeline().layers().l1()).as("%s", c).isPositive();
        assertThat(c.timeline().layers().l0()).as("%s", c).isLessThan(3);
        ApiModel.GcInfo gc = ps.gc(tenant, main);
        Lsn cutoff = Lsn.parse(gc.cutoff());
        assertThat(cutoff)
            .as("capped by the branch point of %s", old)
            .isEqualTo(ps.store().timeline(tenant, old).metadata().ancestorLsn());
        assertThat(gc.versionsRemoved()).isPositive();
        oldSnapshot = snapshotOn(ps, tenant, old, null);
        assertThat(cutoff).isLessThan(Lsn.of(t.lastRecordLsn().value() - (6 << 20)));
      }
    }
    // Read-only computes at each snapshot inside the horizon see exactly its rows.
    try (Pageserver ps = Pageserver.start(data, config())) {
      Timeline t = ps.store().timeline(tenant, main);
      Lsn cutoff = t.gcCutoff();
      int inside = 0;
      for (Map.Entry<Lsn, String> s : snapshots.entrySet()) {
        if (s.getKey().isBefore(cutoff)) {
          continue;
        }
        inside++;
        assertThat(snapshotOn(ps, tenant, main, s.getKey().toString()))
            .as("rows at %s", s.getKey())
            .isEqualTo(s.getValue());
      }
      assertThat(inside).isGreaterThanOrEqualTo(2);
      assertThat(snapshotOn(ps, tenant, old, null)).isEqualTo(oldSnapshot);

      // A basebackup below the cutoff is refused with the cutoff named.
      Lsn below = Lsn.of(cutoff.value() - 8).align();
      Path tar = Files.createTempFile(data, "bb", ".tar");
      PageserverHarness.Run r =
          PageserverHarness.basebackup(ps, tenant, main, below.toString(), tar);
      assertThat(r.exit()).isNotZero();
      assertThat(r.output()).contains("below its GC cutoff " + cutoff);
      assertThatThrownBy(
              () ->
                  ps.store()
                      .branch(tenant, TimelineId.generate(), main, java.util.Optional.of(below)))
          .isInstanceOf(LayerStoreException.class)
          .hasMessageContaining("below the GC cutoff " + cutoff);
    }
  }

  /**
   * ADR 0010: with {@code gc_period} an hour and nobody asking, GC still follows the WAL (it runs
   * once its cutoff can move by a checkpoint distance) and the compaction after it rewrites what GC
   * left mostly dead. So a timeline written on and on keeps its cutoff near the horizon, and its
   * layer files stay within issue 11's bound, in miniature: 1.5× the compute's own data directory
   * without {@code pg_wal}.
   */
  @Test
  void gcFollowsTheWalWithoutBeingAskedAndTheLayersStayBounded() throws Exception {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    PageserverHarness.importTimeline(data, tenant, main);
    PageserverConfig config =
        PageserverHarness.config("1MiB", "60s", 2)
            .withHistory("1MiB", 3, 2, "1h", "4MiB", "0s", "1h")
            .validate();
    try (Pageserver ps = Pageserver.start(data, config)) {
      Timeline t = ps.store().timeline(tenant, main);
      try (PgCluster compute = PageserverHarness.compute(ps, tenant, main, null, true)) {
        PageserverHarness.stream(ps, tenant, main, compute);
        compute.sql(
            "create table t (id int primary key, v text); insert into t select i, md5(i::text)"
                + " from generate_series(1, 20000) i");
        Lsn start = PgWal.lsn(compute, "pg_current_wal_insert_lsn()");
        Lsn written = start;
        // The same rows over and over: every version older than the horizon becomes garbage.
        while (written.minus(start) < 32 << 20) {
          compute.sql("update t set v = md5(v)");
          written = PgWal.lsn(compute, "pg_current_wal_insert_lsn()");
        }
        Lsn end = written;
        String rows = compute.sql(SNAPSHOT).trim();
        compute.sql("checkpoint");
        awaitIngested(t, end);
        PgWal.await(
            Duration.ofSeconds(60),
            "GC to cut off within 4 MiB + a few checkpoint distances of " + end,
            () -> t.gcCutoff().isValid() && end.minus(t.gcCutoff()) < 12 << 20);
        assertThat(t.gcCutoff()).isGreaterThan(start);
        String metrics = metrics(ps);
        String tl = main.toString();
        assertThat(
                PageserverApiConformanceTest.sample(
                    metrics, "zenith_gc_versions_removed_total", tl))
            .isPositive();
        assertThat(
                PageserverApiConformanceTest.sample(
                    metrics, "zenith_compaction_layers_rewritten_total", tl))
            .isPositive();
        long layerBytes = t.layerFiles().stream().mapToLong(f -> f.size()).sum();
        long computeBytes = bytesWithoutPgWal(compute.dataDir());
        assertThat(layerBytes)
            .as(
                "layer files after %s MiB of WAL (%s) against the compute's %s bytes",
                end.minus(start) >> 20, t.layerStats(), computeBytes)
            .isLessThanOrEqualTo(computeBytes * 3 / 2);
        assertThat(snapshotOn(ps, tenant, main, null)).isEqualTo(rows);
      }
    }
  }

  private static String metrics(Pageserver ps) throws Exception {
    try (java.net.http.HttpClient c = java.net.http.HttpClient.newHttpClient()) {
      return c.send(
              java.net.http.HttpRequest.newBuilder(
                      java.net.URI.create("http://127.0.0.1:" + ps.httpPort() + "/metrics"))
                  .timeout(Duration.ofSeconds(10))
                  .build(),
              java.net.http.HttpResponse.BodyHandlers.ofString())
          .body();
    }
  }

  /** What {@code du} counts of a data directory, {@code pg_wal} left out (as issue 11 does). */
  private static long bytesWithoutPgWal(Path dir) throws java.io.IOException {
    try (java.util.stream.Stream<Path> files = Files.walk(dir)) {
      return files
          .filter(p -> !dir.relativize(p).startsWith("pg_wal") && Files.isRegularFile(p))
          .mapToLong(
              p -> {
                try {
                  return Files.size(p);
                } catch (java.io.IOException e) {
                  return 0; // a file the compute removed meanwhile
                }
              })
          .sum();
    }
  }

  private static void awaitIngested(Timeline t, Lsn at) {
    PgWal.await(
        Duration.ofSeconds(60),
        "the pageserver to ingest " + at,
        () -> !t.lastRecordLsn().isBefore(at));
  }

  /** The snapshot of t that a read-only compute from a basebackup at {@code lsn} sees. */
  private static String snapshotOn(Pageserver ps, TenantId tenant, TimelineId tl, String lsn) {
    try (PgCluster ro = PageserverHarness.compute(ps, tenant, tl, lsn, false)) {
      return ro.sql(SNAPSHOT).trim();
    }
  }
}
