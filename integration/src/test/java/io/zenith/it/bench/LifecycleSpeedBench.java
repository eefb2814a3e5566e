package io.zenith.it.bench;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.it.support.Basebackups;
import io.zenith.it.support.RepoTokens;
import io.zenith.layer.Key;
import io.zenith.layer.LayerStore;
import io.zenith.layer.Timeline;
import io.zenith.page.Basebackup;
import io.zenith.page.PageChecksum;
import io.zenith.page.PageReconstructor;
import io.zenith.page.redo.WalRedoConfig;
import io.zenith.page.redo.WalRedoManager;
import io.zenith.pg.PgDistribution;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * Issue 11's speed benchmarks on one pgbench database served by the real {@code ./zenith}
 * processes, before and after {@code POST …/compact} in the same run: GetPage@LSN of pgbench's
 * pages at the latest LSN (in-process on the pageserver's layer store, page cache off, as {@link
 * GetPageBenchmark} measures), the basebackup's speed and a compute's start. The "before" side runs
 * with compaction switched off ({@code compaction_threshold} and {@code image_creation_threshold}
 * out of reach), the "after" side with the defaults. Not thread-safe.
 */
final class LifecycleSpeedBench {
  /** Thresholds no timeline reaches: compaction is off. */
  static final Map<String, String> NO_COMPACTION =
      Map.of("compaction_threshold", "1000000", "image_creation_threshold", "1000000");

  /** The defaults ({@code zenith init} writes them). */
  static final Map<String, String> DEFAULT_COMPACTION =
      Map.of("compaction_threshold", "10", "image_creation_threshold", "3");

  private static final int PAGES = 2000;

  private final Path projectRoot;
  private final Path scratch;

  LifecycleSpeedBench(Path projectRoot, Path scratch) {
    this.projectRoot = projectRoot;
    this.scratch = scratch;
  }

  /** What one side measured. */
  record Side(
      String name,
      ApiModel.LayerCounts layers,
      long tarBytes,
      double basebackupSeconds,
      double startSeconds,
      long[] getPageNanos,
      double inProcessSeconds) {}

  /**
   * {@code pgbench -i -s scale}, then {@code runSeconds} of tpcb-like; measures with compaction
   * off, then turns it on (defaults), compacts and measures again.
   */
  void run(int scale, int runSeconds, boolean getPage, boolean basebackup) throws Exception {
    System.out.println("speed: setup starts; " + HistoryBench.uptime());
    List<Side> sides = new ArrayList<>();
    long dbBytes;
    String compactLine;
    try (ZenithProcesses z = new ZenithProcesses(projectRoot, scratch, 1, NO_COMPACTION)) {
      ZenithProcesses.Main main = z.startMain();
      int port = main.port();
      TenantId tenant = main.tenant();
      TimelineId timeline = main.timeline();
      long t0 = System.nanoTime();
      z.pgbench(port, Duration.ofMinutes(60), "-i", "-q", "-s", Integer.toString(scale));
      System.out.printf(
          Locale.ROOT, "speed: pgbench -i -s %d took %.0f s%n", scale, secondsSince(t0));
      if (runSeconds > 0) {
        z.pgbench(
            port,
            Duration.ofSeconds(runSeconds).plusMinutes(10),
            "-c",
            "8",
            "-j",
            "2",
            "-n",
            "-T",
            Integer.toString(runSeconds));
      }
      dbBytes = Long.parseLong(z.sql(port, "SELECT pg_database_size('postgres')"));
      Lsn end = Lsn.parse(z.sql(port, "SELECT pg_current_wal_insert_lsn()"));
      z.ok("pg", "stop", "main");
      awaitIngested(z, tenant, timeline, end);
      z.pageserver().checkpoint(tenant, timeline);
      System.out.println("speed: measuring before compaction; " + HistoryBench.uptime());
      sides.add(measure(z, "before compaction", tenant, timeline, getPage, basebackup));

      z.ok("pageserver", "stop");
      setOptions(z, DEFAULT_COMPACTION);
      z.ok("pageserver", "start");
      System.out.println("speed: compacting; " + HistoryBench.uptime());
      long c0 = System.nanoTime();
      ApiModel.CompactionInfo c = z.pageserver().compact(tenant, timeline);
      compactLine =
          String.format(
              Locale.ROOT,
              "POST compact took %.1f s: %d L0 merged, %d L1 written, %d image layers (%d pages),"
                  + " %d layers removed",
              secondsSince(c0),
              c.l0Merged(),
              c.l1Written(),
              c.imageLayers(),
              c.imagePages(),
              c.layersRemoved());
      System.out.println("speed: " + compactLine);
      z.pageserver().checkpoint(tenant, timeline);
      System.out.println("speed: measuring after compaction; " + HistoryBench.uptime());
      sides.add(measure(z, "after compaction", tenant, timeline, getPage, basebackup));
    }
    print(scale, runSeconds, dbBytes, compactLine, sides, getPage, basebackup);
  }

  private static void setOptions(ZenithProcesses z, Map<String, String> options)
      throws java.io.IOException {
    Path toml = z.pageserverDir().resolve("pageserver.toml");
    String text = Files.readString(toml);
    for (Map.Entry<String, String> e : options.entrySet()) {
      text = text.replaceAll("(?m)^" + e.getKey() + " = .*$", e.getKey() + " = " + e.getValue());
    }
    Files.writeString(toml, text);
  }

  private Side measure(
      ZenithProcesses z,
      String name,
      TenantId tenant,
      TimelineId timeline,
      boolean getPage,
      boolean basebackup)
      throws Exception {
    ApiModel.LayerCounts layers = z.pageserver().timeline(tenant, timeline).layers();
    long tarBytes = 0;
    double bbSeconds = 0;
    double startSeconds = 0;
    if (basebackup) {
      long t0 = System.nanoTime();
      Path tar =
          Basebackups.tar(z.pgPort, RepoTokens.admin(z.repo), tenant, timeline, null, scratch);
      bbSeconds = secondsSince(t0);
      tarBytes = Files.size(tar);
      Files.delete(tar);
      // what a user waits for: `zenith pg start` fetches, extracts and starts the compute
      long t1 = System.nanoTime();
      z.ok("pg", "start", "main");
      startSeconds = secondsSince(t1);
      z.sql(z.port("main"), "SELECT count(*) FROM pgbench_branches");
      z.ok("pg", "stop", "main");
    }
    long[] nanos = new long[0];
    double[] inProcess = {0};
    if (getPage) {
      // the layer store is opened in this process (the pageserver stopped: one owner at a time)
      z.ok("pageserver", "stop");
      nanos = getPages(z.pageserverDir(), tenant, timeline, basebackup ? inProcess : null);
      z.ok("pageserver", "start");
    }
    return new Side(name, layers, tarBytes, bbSeconds, startSeconds, nanos, inProcess[0]);
  }

  /**
   * GetPage@LSN at the last record LSN of {@value #PAGES} random blocks of the database's relations
   * (pgbench's tables and indexes), page cache off; one pass to warm the OS cache and start the
   * redo process, one measured. Returns each page's time, sorted.
   */
  static long[] getPages(
      Path pageserverDir, TenantId tenant, TimelineId timeline, double[] basebackupSeconds) {
    PageserverConfig config = PageserverConfig.load(pageserverDir);
    try (LayerStore store = LayerStore.open(pageserverDir, config.layerStoreConfig());
        WalRedoManager redo =
            WalRedoManager.start(
                PgDistribution.detect(),
                WalRedoConfig.defaults().withMaxProcessesPerTenant(1),
                new SimpleMeterRegistry())) {
      Timeline t = store.timeline(tenant, timeline);
      Lsn lsn = t.lastRecordLsn();
      List<Key> all = new ArrayList<>();
      for (Catalog.RelFork rf : Catalog.relations(t, KeySpace.ALL_RELATIONS, lsn)) {
        // user relations only: pgbench's tables and indexes
        if (rf.fork() == ForkNumber.MAIN && rf.rel().relNumber() >= 16384) {
          for (int blk = 0; blk < rf.blocks(); blk++) {
            all.add(KeySpace.relBlock(rf.rel(), rf.fork(), blk));
          }
        }
      }
      Collections.shuffle(all, new Random(11));
      List<Key> keys = all.subList(0, Math.min(PAGES, all.size()));
      PageReconstructor pages = new PageReconstructor(PageReconstructor.using(redo), 0);
      for (Key k : keys) {
        pages.page(t, k, lsn);
      }
      long[] nanos = new long[keys.size()];
      for (int i = 0; i < keys.size(); i++) {
        long t0 = System.nanoTime();
        pages.page(t, keys.get(i), lsn);
        nanos[i] = System.nanoTime() - t0;
      }
      java.util.Arrays.sort(nanos);
      if (basebackupSeconds != null) {
        // the basebackup's tar generated here, without libpq, psql or the pageserver's threads:
        // what page reconstruction alone costs (page cache off, checksums set as the server does)
        long b0 = System.nanoTime();
        long bytes =
            Basebackup.stream(t, lsn, pages, PageChecksum::set)
                .map(java.nio.ByteBuffer::remaining)
                .reduce(0L, Long::sum)
                .block(Duration.ofMinutes(30));
        basebackupSeconds[0] = secondsSince(b0);
        System.out.printf(
            Locale.ROOT,
            "speed: basebackup generated in-process: %.0f MB in %.1f s%n",
            bytes / 1e6,
            basebackupSeconds[0]);
      }
      System.out.printf(
          Locale.ROOT,
          "speed: GetPage of %d of %d user pages at %s: p50 %.0f µs, p99 %.0f µs%n",
          keys.size(),
          all.size(),
          lsn,
          pct(nanos, 0.5) / 1e3,
          pct(nanos, 0.99) / 1e3);
      return nanos;
    }
  }

  static long pct(long[] sorted, double q) {
    return sorted[Math.min(sorted.length - 1, (int) Math.floor(q * sorted.length))];
  }

  static double secondsSince(long t0) {
    return (System.nanoTime() - t0) / 1e9;
  }

  static void awaitIngested(ZenithProcesses z, TenantId tenant, TimelineId timeline, Lsn target)
      throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofMinutes(10).toNanos();
    while (Lsn.parse(z.pageserver().timeline(tenant, timeline).lastRecordLsn()).isBefore(target)) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("the pageserver did not reach " + target + " in 10 min");
      }
      Thread.sleep(200);
    }
  }

  private static void print(
      int scale,
      int runSeconds,
      long dbBytes,
      String compactLine,
      List<Side> sides,
      boolean getPage,
      boolean basebackup) {
    System.out.println();
    System.out.printf(
        Locale.ROOT,
        "database: pgbench -i -s %d + %d s tpcb-like, %.0f MB; %s%n",
        scale,
        runSeconds,
        dbBytes / 1e6,
        compactLine);
    Side before = sides.getFirst();
    if (getPage) {
      System.out.println();
      System.out.println(
          "| GetPage@LSN, latest LSN, "
              + PAGES
              + " random pgbench pages, page cache off | layers L0 / L1 / image | p50 µs | p90 µs"
              + " | p99 µs | max µs | p50 ratio to before |");
      System.out.println("|---|---:|---:|---:|---:|---:|---:|");
      for (Side s : sides) {
        System.out.printf(
            Locale.ROOT,
            "| %s | %d / %d / %d | %.0f | %.0f | %.0f | %.0f | %.2f |%n",
            s.name(),
            s.layers().l0(),
            s.layers().l1(),
            s.layers().image(),
            pct(s.getPageNanos(), 0.5) / 1e3,
            pct(s.getPageNanos(), 0.9) / 1e3,
            pct(s.getPageNanos(), 0.99) / 1e3,
            s.getPageNanos()[s.getPageNanos().length - 1] / 1e3,
            pct(s.getPageNanos(), 0.5) / (double) pct(before.getPageNanos(), 0.5));
      }
    }
    if (basebackup) {
      System.out.println();
      System.out.println(
          "| basebackup | layers L0 / L1 / image | tar | fetch time | fetch speed | speed ratio to"
              + " before | compute start (`zenith pg start`) | tar generated in-process |");
      System.out.println("|---|---:|---:|---:|---:|---:|---:|---:|");
      for (Side s : sides) {
        double mbs = s.tarBytes() / 1e6 / s.basebackupSeconds();
        double beforeMbs = before.tarBytes() / 1e6 / before.basebackupSeconds();
        System.out.printf(
            Locale.ROOT,
            "| %s | %d / %d / %d | %.0f MB | %.1f s | %.0f MB/s | %.2f | %.1f s | %s |%n",
            s.name(),
            s.layers().l0(),
            s.layers().l1(),
            s.layers().image(),
            s.tarBytes() / 1e6,
            s.basebackupSeconds(),
            mbs,
            mbs / beforeMbs,
            s.startSeconds(),
            s.inProcessSeconds() > 0
                ? String.format(
                    Locale.ROOT,
                    "%.1f s (%.0f MB/s)",
                    s.inProcessSeconds(),
                    s.tarBytes() / 1e6 / s.inProcessSeconds())
                : "not measured");
      }
    }
  }
}
