package io.zenith.it.bench;

import io.zenith.it.support.RepoTokens;
import io.zenith.page.stream.PagestreamClient;
import io.zenith.page.stream.PagestreamRequest;
import io.zenith.page.stream.PagestreamResponse;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Issue 13's lazy-compute benchmarks through the real launcher ({@link ZenithProcesses}: the
 * pageserver, the computes and their agents as the OS processes {@code make run} starts).
 *
 * <ul>
 *   <li>{@code lazy-start}: from {@code zenith pg start} to the first query answered, for pgbench
 *       scale 1 and a large scale (100 by default, {@code -Dzenith.bench.lazy.bigScale}), lazy and
 *       full; then a new branch of the large database on a lazy compute answers {@code SELECT
 *       sum(abalance)} as its parent did.
 *   <li>{@code lazy-speed}: pgbench tpcb-like and select-only (warm) on a lazy compute, a full
 *       compute and vanilla PostgreSQL 15 with the same settings, in the same run; a cold
 *       sequential scan of {@code pgbench_accounts} on a lazy compute (new mounts, new PostgreSQL:
 *       no cache holds it); {@code pgbench -i} on both kinds; GetPage p50/p99 over the wire
 *       (pagestream, one connection per client) with 1 and 8 clients.
 * </ul>
 *
 * Not a test: numbers never fail anything. Not thread-safe (one run).
 */
final class LazyComputeBench {
  private final Path projectRoot;
  private final Path scratch;

  /** The settings every compute and the vanilla server run with (beside the control plane's). */
  private static final Map<String, String> SETTINGS =
      Map.of("shared_buffers", "256MB", "max_wal_size", "4GB", "checkpoint_timeout", "30min");

  LazyComputeBench(Path projectRoot, Path scratch) {
    this.projectRoot = projectRoot;
    this.scratch = scratch;
  }

  private static String[] create(String name, String branch, String storage) {
    List<String> args =
        new ArrayList<>(List.of("pg", "create", name, "--branch", branch, "--storage", storage));
    SETTINGS.forEach((k, v) -> args.addAll(List.of("--config", k + "=" + v)));
    return args.toArray(String[]::new);
  }

  private static double secondsSince(long t0) {
    return (System.nanoTime() - t0) / 1e9;
  }

  private static String load() {
    try {
      String s = java.nio.file.Files.readString(Path.of("/proc/loadavg")).strip();
      return s.substring(0, s.indexOf(' ', s.indexOf(' ', s.indexOf(' ') + 1) + 1)).strip();
    } catch (java.io.IOException e) {
      return "?";
    }
  }

  // ---------------------------------------------------------------- lazy-start

  void start() throws Exception {
    int bigScale = Integer.getInteger("zenith.bench.lazy.bigScale", 100);
    System.out.printf("lazy-start: load average before: %s%n", load());
    List<String> rows = new ArrayList<>();
    try (ZenithProcesses z = new ZenithProcesses(projectRoot, scratch, 0, Map.of())) {
      z.ok("start");
      String bigSum = null;
      for (int scale : new int[] {1, bigScale}) {
        String branch = "s" + scale;
        z.ok("branch", branch);
        z.ok(create("init" + scale, branch, "full"));
        z.ok("pg", "start", "init" + scale);
        int port = z.port("init" + scale);
        long t0 = System.nanoTime();
        z.pgbench(port, Duration.ofMinutes(30), "-i", "-s", Integer.toString(scale), "-q");
        z.pgbench(port, Duration.ofMinutes(2), "-c", "4", "-T", "5", "-n");
        String size = z.sql(port, "SELECT pg_size_pretty(pg_database_size('postgres'))");
        String sum = z.sql(port, "SELECT sum(abalance) FROM pgbench_accounts");
        Lsn end = Lsn.parse(z.sql(port, "SELECT pg_current_wal_lsn()"));
        TenantId tenant = z.tenant("init" + scale);
        TimelineId timeline = z.timeline("init" + scale);
        z.ok("pg", "stop", "init" + scale);
        // Timed starts begin once the pageserver has ingested the load: a start at the latest LSN
        // would otherwise include the ingest backlog, which is not what a start costs.
        LifecycleSpeedBench.awaitIngested(z, tenant, timeline, end);
        System.out.printf(
            "scale %d: %s, pgbench -i and 5 s of tpcb-like on a full compute and its ingest in"
                + " %.0f s%n",
            scale, size, secondsSince(t0));
        if (scale == bigScale) {
          bigSum = sum;
        }
        for (String storage : List.of("lazy", "full")) {
          String name = storage + scale;
          z.ok(create(name, branch, storage));
          long s0 = System.nanoTime();
          z.ok("pg", "start", name);
          String first = z.sql(z.port(name), "SELECT abalance FROM pgbench_accounts WHERE aid = 1");
          double took = secondsSince(s0);
          rows.add(
              String.format(
                  Locale.ROOT,
                  "| %d | %s | %s | %.2f | (first query: %s) |",
                  scale,
                  size,
                  storage,
                  took,
                  first));
          System.out.println(rows.getLast());
          z.ok("pg", "stop", name, "--destroy");
        }
      }
      // a new branch of the large database answers its parent's sum on a lazy compute
      z.ok("branch", "child", "s" + bigScale);
      z.ok(create("child", "child", "lazy"));
      long c0 = System.nanoTime();
      z.ok("pg", "start", "child");
      String childSum = z.sql(z.port("child"), "SELECT sum(abalance) FROM pgbench_accounts");
      System.out.printf(
          "branch of scale %d on a lazy compute: sum %s (parent %s: %s), start and full scan in"
              + " %.1f s%n",
          bigScale,
          childSum,
          bigSum,
          childSum.equals(bigSum) ? "equal" : "DIFFERENT",
          secondsSince(c0));
      z.ok("pg", "stop", "child", "--destroy");
    }
    System.out.println();
    System.out.println("| pgbench scale | database | storage | pg start to first answer, s | |");
    System.out.println("|---:|---:|---|---:|---|");
    rows.forEach(System.out::println);
    System.out.printf("load average after: %s%n", load());
  }

  // ---------------------------------------------------------------- lazy-speed

  void speed() throws Exception {
    int scale = Integer.getInteger("zenith.bench.lazy.scale", 10);
    int seconds = Integer.getInteger("zenith.bench.lazy.seconds", 30);
    int clients = 8;
    List<String> run =
        List.of("-c", Integer.toString(clients), "-j", "2", "-T", Integer.toString(seconds), "-n");
    List<String> selectOnly = new ArrayList<>(run);
    selectOnly.add("-S");
    List<String> warmUp = List.of("-c", "2", "-j", "2", "-T", "5", "-n", "-S");
    System.out.printf("lazy-speed: scale %d, load average before: %s%n", scale, load());
    List<String> rows = new ArrayList<>();
    double[] vanilla = new double[3];
    try (PgCluster c = PgCluster.initdb("--data-checksums")) {
      c.configure(SETTINGS).configure(Map.of("synchronous_commit", "on")).start();
      long t0 = System.nanoTime();
      BenchMain.pgbench(c, List.of("-i", "-s", Integer.toString(scale), "-q"));
      vanilla[2] = secondsSince(t0);
      vanilla[0] = PgbenchComparison.parse(BenchMain.pgbench(c, run)).tps();
      BenchMain.pgbench(c, warmUp);
      vanilla[1] = PgbenchComparison.parse(BenchMain.pgbench(c, selectOnly)).tps();
    }
    rows.add(row("vanilla PostgreSQL 15", vanilla, vanilla, "local disk"));
    System.out.printf("vanilla done, load average %s%n", load());
    try (ZenithProcesses z = new ZenithProcesses(projectRoot, scratch, 0, Map.of())) {
      z.ok("start");
      double[] full = new double[3];
      z.ok(create("full", "main", "full"));
      z.ok("pg", "start", "full");
      int port = z.port("full");
      long t0 = System.nanoTime();
      z.pgbench(port, Duration.ofMinutes(30), "-i", "-s", Integer.toString(scale), "-q");
      full[2] = secondsSince(t0);
      full[0] = PgbenchComparison.parse(z.pgbench(port, Duration.ofMinutes(30), args(run))).tps();
      z.pgbench(port, Duration.ofMinutes(2), args(warmUp));
      full[1] =
          PgbenchComparison.parse(z.pgbench(port, Duration.ofMinutes(30), args(selectOnly))).tps();
      String db = z.sql(port, "SELECT oid FROM pg_database WHERE datname = 'postgres'");
      String rel = z.sql(port, "SELECT pg_relation_filenode('pgbench_accounts')");
      z.ok("pg", "stop", "full");
      rows.add(row("Zenith, full compute", full, vanilla, "local copy"));
      System.out.printf("full compute done, load average %s%n", load());

      double[] lazy = new double[3];
      z.ok(create("lazy", "main", "lazy"));
      z.ok("pg", "start", "lazy");
      port = z.port("lazy");
      long bytes = Long.parseLong(z.sql(port, "SELECT pg_relation_size('pgbench_accounts')"));
      long s0 = System.nanoTime();
      // After pgbench -i's VACUUM the planner picks an index-only scan of the primary key (2,744
      // pages, not the table's 16,394): the plan is fixed to the sequential scan this times.
      z.sql(
          port,
          "SET max_parallel_workers_per_gather = 0; SET enable_indexonlyscan = off;"
              + " SET enable_indexscan = off; SET enable_bitmapscan = off;"
              + " SELECT count(*) FROM pgbench_accounts");
      double scan = secondsSince(s0);
      System.out.printf(
          Locale.ROOT,
          "cold sequential scan on the lazy compute: %.1f MiB in %.2f s = %.0f MiB/s%n",
          bytes / 1048576.0,
          scan,
          bytes / 1048576.0 / scan);
      lazy[0] = PgbenchComparison.parse(z.pgbench(port, Duration.ofMinutes(30), args(run))).tps();
      z.pgbench(port, Duration.ofMinutes(2), args(warmUp));
      lazy[1] =
          PgbenchComparison.parse(z.pgbench(port, Duration.ofMinutes(30), args(selectOnly))).tps();
      long i0 = System.nanoTime();
      z.pgbench(port, Duration.ofMinutes(30), "-i", "-s", Integer.toString(scale), "-q");
      lazy[2] = secondsSince(i0);
      z.ok("pg", "stop", "lazy");
      rows.add(row("Zenith, lazy compute", lazy, vanilla, "FUSE, agent"));
      System.out.printf(Locale.ROOT, "lazy compute done, load average %s%n", load());
      System.out.println();
      System.out.printf(
          Locale.ROOT,
          "| scale %d, %d clients, %d s | tpcb-like TPS | ratio | select-only TPS (warm) | ratio"
              + " | pgbench -i s | relation files |%n",
          scale,
          clients,
          seconds);
      System.out.println("|---|---:|---:|---:|---:|---:|---|");
      rows.forEach(System.out::println);
      System.out.printf(
          Locale.ROOT,
          "lazy / full: tpcb-like %.2f, select-only %.2f, pgbench -i %.2f× the time%n",
          lazy[0] / full[0],
          lazy[1] / full[1],
          lazy[2] / full[2]);
      getPage(z, Integer.parseInt(db), Integer.parseInt(rel), (int) (bytes / 8192));
    }
    System.out.printf("load average after: %s%n", load());
  }

  private static String[] args(List<String> l) {
    return l.toArray(String[]::new);
  }

  private static String row(String system, double[] m, double[] vanilla, String files) {
    return String.format(
        Locale.ROOT,
        "| %s | %.0f | %.2f | %.0f | %.2f | %.1f | %s |",
        system,
        m[0],
        m[0] / vanilla[0],
        m[1],
        m[1] / vanilla[1],
        m[2],
        files);
  }

  /**
   * GetPage of random blocks of {@code pgbench_accounts} at the latest LSN over pagestream, one
   * request in flight per connection, with 1 and 8 client threads: p50 and p99 of the round trip.
   */
  private static void getPage(ZenithProcesses z, int db, int relNode, int blocks) throws Exception {
    TenantId tenant = z.tenant("lazy");
    TimelineId timeline = z.timeline("lazy");
    String token = RepoTokens.admin(z.repo);
    Lsn nms = Lsn.parse(z.pageserver().timeline(tenant, timeline).lastRecordLsn());
    RelTag rel = new RelTag(1663, db, relNode);
    System.out.println();
    System.out.println("| GetPage over pagestream | requests | p50 µs | p99 µs | pages/s |");
    System.out.println("|---|---:|---:|---:|---:|");
    for (int clients : new int[] {1, 8}) {
      int perClient = 4000 / clients * 2;
      long[][] lat = new long[clients][perClient];
      List<Thread> threads = new ArrayList<>();
      Exception[] failed = new Exception[1];
      long t0 = System.nanoTime();
      for (int c = 0; c < clients; c++) {
        long[] mine = lat[c];
        threads.add(
            Thread.ofPlatform()
                .start(
                    () -> {
                      try (PagestreamClient p =
                          PagestreamClient.connect(
                              "127.0.0.1",
                              z.pgPort,
                              "postgres",
                              token,
                              tenant,
                              timeline,
                              Duration.ofSeconds(30))) {
                        for (int i = 0; i < mine.length; i++) {
                          int block = ThreadLocalRandom.current().nextInt(blocks);
                          long s = System.nanoTime();
                          PagestreamResponse r =
                              p.call(
                                  new PagestreamRequest.GetPage(
                                      i,
                                      PagestreamRequest.LATEST,
                                      nms,
                                      rel,
                                      ForkNumber.MAIN,
                                      block));
                          mine[i] = System.nanoTime() - s;
                          if (r instanceof PagestreamResponse.Error e) {
                            throw new IllegalStateException("GetPage failed: " + e);
                          }
                        }
                      } catch (Exception e) {
                        synchronized (failed) {
                          failed[0] = e;
                        }
                      }
                    }));
      }
      for (Thread t : threads) {
        t.join();
      }
      double took = secondsSince(t0);
      if (failed[0] != null) {
        throw failed[0];
      }
      long[] all = Arrays.stream(lat).flatMapToLong(Arrays::stream).sorted().toArray();
      System.out.printf(
          Locale.ROOT,
          "| %d client%s | %d | %d | %d | %.0f |%n",
          clients,
          clients == 1 ? "" : "s",
          all.length,
          LifecycleSpeedBench.pct(all, 0.50) / 1000,
          LifecycleSpeedBench.pct(all, 0.99) / 1000,
          all.length / took);
    }
  }
}
