package io.zenith.it.bench;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Issue 11's bounded-storage benchmark: pgbench tpcb-like at scale 20, 8 clients, for {@code
 * duration} through the real {@code ./zenith} processes (pageserver, one safekeeper, compute {@code
 * main}) with the default settings except {@code gc_horizon = "64MiB"} and {@code pitr_interval =
 * "0s"}, sampling sizes and positions every 30 s; then the same run on vanilla PostgreSQL 15 and
 * the size of its data directory without {@code pg_wal}. Prints Markdown tables. Not thread-safe.
 */
final class BoundedStorageBench {
  private static final long SEGMENT = 16L << 20;
  private static final Pattern TX =
      Pattern.compile("number of transactions actually processed: (\\d+)");

  private final Path projectRoot;
  private final Path scratch;
  private final int scale;
  private final Duration duration;
  private final Duration every;

  BoundedStorageBench(
      Path projectRoot, Path scratch, int scale, Duration duration, Duration every) {
    this.projectRoot = projectRoot;
    this.scratch = scratch;
    this.scale = scale;
    this.duration = duration;
    this.every = every;
  }

  /** One sample of the Zenith side. */
  record Sample(
      String when,
      Lsn computeLsn,
      Lsn lastRecord,
      Lsn diskConsistent,
      String gcCutoff,
      ApiModel.LayerCounts layers,
      long pageserverDir,
      Lsn commitLsn,
      Lsn horizon,
      long safekeeperDir) {
    /** WAL the safekeeper has to keep: from its horizon to its commit LSN. */
    long mustKeep() {
      return Math.max(0, commitLsn.minus(horizon));
    }
  }

  /** What the Zenith side measured. */
  record ZenithSide(List<Sample> samples, Lsn start, String pgbench, long afterInit) {}

  /** What the vanilla side measured. */
  record VanillaSide(String pgbench, long afterInit, long end, long endWithWal) {}

  /**
   * Both sides, Zenith first; {@code -Dzenith.bench.history.storage.only=zenith|vanilla} runs one
   * (the other's table row is then missing).
   */
  void run() throws Exception {
    String only = System.getProperty("zenith.bench.history.storage.only", "");
    ZenithSide z = only.equals("vanilla") ? null : zenith();
    if (z != null) {
      // printed before the vanilla run: a failure there must not lose these numbers
      print(z.samples(), z.start());
    }
    VanillaSide v = only.equals("zenith") ? null : vanilla();
    System.out.println();
    System.out.println(
        "| scale "
            + scale
            + ", 8 clients, "
            + duration.toSeconds()
            + " s | TPS | transactions | size after pgbench -i | size at the end | ratio to"
            + " vanilla |");
    System.out.println("|---|---:|---:|---:|---:|---:|");
    if (v != null) {
      System.out.printf(
          Locale.ROOT,
          "| vanilla PostgreSQL 15, data directory without pg_wal (with pg_wal: %s) | %.0f | %s |"
              + " %s | %s | 1.00 |%n",
          mib(v.endWithWal()),
          PgbenchComparison.parse(v.pgbench()).tps(),
          tx(v.pgbench()),
          mib(v.afterInit()),
          mib(v.end()));
    }
    if (z != null) {
      Sample last = lastOf(z.samples(), "end of run");
      Sample fin = z.samples().getLast();
      double base = v == null ? Double.NaN : v.end();
      System.out.printf(
          Locale.ROOT,
          "| Zenith pageserver directory, end of run | %.0f | %s | %s | %s | %.2f |%n",
          PgbenchComparison.parse(z.pgbench()).tps(),
          tx(z.pgbench()),
          mib(z.afterInit()),
          mib(last.pageserverDir()),
          last.pageserverDir() / base);
      System.out.printf(
          Locale.ROOT,
          "| Zenith pageserver directory, after do_gc + compact + do_gc | | | | %s | %.2f |%n",
          mib(fin.pageserverDir()),
          fin.pageserverDir() / base);
    }
  }

  private ZenithSide zenith() throws Exception {
    List<Sample> samples = new ArrayList<>();
    String zenithRun;
    long zenithAfterInit;
    Lsn startLsn;
    System.out.println("storage: zenith part starts; " + HistoryBench.uptime());
    try (ZenithProcesses z =
        new ZenithProcesses(
            projectRoot, scratch, 1, Map.of("gc_horizon", "'64MiB'", "pitr_interval", "'0s'"))) {
      ZenithProcesses.Main main = z.startMain();
      int port = main.port();
      TenantId tenant = main.tenant();
      TimelineId timeline = main.timeline();
      startLsn = Lsn.parse(z.sql(port, "SELECT pg_current_wal_insert_lsn()"));
      z.pgbench(port, Duration.ofMinutes(30), "-i", "-q", "-s", Integer.toString(scale));
      zenithAfterInit = ZenithProcesses.sizeOf(z.pageserverDir());
      samples.add(sample(z, port, tenant, timeline, "after pgbench -i"));
      long t0 = System.nanoTime();
      ScheduledExecutorService sampler =
          Executors.newSingleThreadScheduledExecutor(
              r -> Thread.ofPlatform().daemon().name("storage-sampler").unstarted(r));
      try {
        sampler.scheduleAtFixedRate(
            () -> {
              try {
                String at = Math.round((System.nanoTime() - t0) / 1e9) + " s";
                Sample s = sample(z, port, tenant, timeline, at);
                synchronized (samples) {
                  samples.add(s);
                }
              } catch (RuntimeException e) {
                System.err.println("storage: sample failed: " + e);
              }
            },
            every.toMillis(),
            every.toMillis(),
            TimeUnit.MILLISECONDS);
        zenithRun =
            z.pgbench(
                port,
                duration.plusMinutes(10),
                "-c",
                "8",
                "-j",
                "2",
                "-n",
                "-T",
                Long.toString(duration.toSeconds()));
      } finally {
        sampler.shutdown();
        if (!sampler.awaitTermination(2, TimeUnit.MINUTES)) {
          sampler.shutdownNow();
        }
      }
      Lsn end = Lsn.parse(z.sql(port, "SELECT pg_current_wal_insert_lsn()"));
      awaitIngested(z, tenant, timeline, end);
      samples.add(sample(z, port, tenant, timeline, "end of run"));
      breakdown(z.pageserverDir());
      ApiModel.GcInfo gc = z.pageserver().gc(tenant, timeline);
      System.out.printf(
          Locale.ROOT,
          "storage: do_gc: cutoff %s, %d versions, %d layers, %.1f MiB removed%n",
          gc.cutoff(),
          gc.versionsRemoved(),
          gc.layersRemoved(),
          gc.bytesRemoved() / 1048576.0);
      samples.add(sample(z, port, tenant, timeline, "after do_gc"));
      ApiModel.CompactionInfo c = z.pageserver().compact(tenant, timeline);
      System.out.printf(
          Locale.ROOT,
          "storage: compact: %d L0 merged, %d L1 written, %d images (%d pages), %d layers /"
              + " %.1f MiB removed%n",
          c.l0Merged(),
          c.l1Written(),
          c.imageLayers(),
          c.imagePages(),
          c.layersRemoved(),
          c.bytesRemoved() / 1048576.0);
      samples.add(sample(z, port, tenant, timeline, "after compact"));
      gc = z.pageserver().gc(tenant, timeline);
      System.out.printf(
          Locale.ROOT,
          "storage: do_gc again: cutoff %s, %d versions, %d layers, %.1f MiB removed%n",
          gc.cutoff(),
          gc.versionsRemoved(),
          gc.layersRemoved(),
          gc.bytesRemoved() / 1048576.0);
      samples.add(sample(z, port, tenant, timeline, "after compact + do_gc"));
      breakdown(z.pageserverDir());
      breakdown(z.safekeeperDir(1));
      System.out.println("storage: pageserver log lines about GC:");
      for (String l :
          java.nio.file.Files.readAllLines(z.pageserverDir().resolve("pageserver.log"))) {
        if (l.contains("gc") || l.contains("GC") || l.contains("garbage")) {
          System.out.println("  " + l);
        }
      }
    }

    return new ZenithSide(samples, startLsn, zenithRun, zenithAfterInit);
  }

  private VanillaSide vanilla() throws Exception {
    System.out.println("storage: vanilla part starts; " + HistoryBench.uptime());
    String vanillaRun;
    long vanillaAfterInit;
    long vanillaEnd;
    long vanillaEndWithWal;
    try (PgCluster c = PgCluster.initdb("--data-checksums")) {
      c.configure(PgbenchComparison.SETTINGS).configure(Map.of("synchronous_commit", "on")).start();
      BenchMain.pgbench(c, List.of("-i", "-s", Integer.toString(scale), "-q"));
      vanillaAfterInit = ZenithProcesses.sizeOf(c.dataDir(), "pg_wal");
      // not BenchMain.pgbench: PgCluster bounds a program at 5 minutes
      vanillaRun =
          ZenithProcesses.BenchProcess.run(
              List.of(
                  c.distribution().bin("pgbench").toString(),
                  "-c",
                  "8",
                  "-j",
                  "2",
                  "-n",
                  "-T",
                  Long.toString(duration.toSeconds()),
                  "-h",
                  "127.0.0.1",
                  "-p",
                  Integer.toString(c.port()),
                  "-U",
                  "postgres",
                  "postgres"),
              duration.plusMinutes(10));
      c.sql("CHECKPOINT");
      vanillaEnd = ZenithProcesses.sizeOf(c.dataDir(), "pg_wal");
      vanillaEndWithWal = ZenithProcesses.sizeOf(c.dataDir());
    }

    return new VanillaSide(vanillaRun, vanillaAfterInit, vanillaEnd, vanillaEndWithWal);
  }

  /** What takes the space: {@code du} of every file and directory up to three levels down. */
  private static void breakdown(Path dir) {
    System.out.println("storage: du of " + dir + ":");
    System.out.print(
        ZenithProcesses.BenchProcess.run(
            List.of("du", "-a", "-B1", "--max-depth=6", "-t", "1048576", dir.toString()),
            Duration.ofMinutes(2)));
  }

  private static Sample lastOf(List<Sample> samples, String when) {
    for (Sample s : samples) {
      if (s.when().equals(when)) {
        return s;
      }
    }
    throw new IllegalStateException("no sample " + when);
  }

  private static String tx(String pgbenchOutput) {
    Matcher m = TX.matcher(pgbenchOutput);
    return m.find() ? m.group(1) : "?";
  }

  private Sample sample(
      ZenithProcesses z, int port, TenantId tenant, TimelineId timeline, String when) {
    Lsn compute = Lsn.parse(z.sql(port, "SELECT pg_current_wal_insert_lsn()"));
    ApiModel.TimelineInfo t = z.pageserver().timeline(tenant, timeline);
    long psDir = ZenithProcesses.sizeOf(z.pageserverDir());
    SafekeeperApiModel.TimelineInfo sk = z.safekeeper(1).timeline(tenant, timeline);
    long skDir = ZenithProcesses.sizeOf(z.safekeeperDir(1));
    Lsn commit = Lsn.parse(sk.commitLsn());
    Lsn horizon = commit;
    if (sk.pageserver() != null && sk.pageserver().applyLsn() != null) {
      horizon = Lsn.min(horizon, Lsn.parse(sk.pageserver().applyLsn()));
    }
    Sample s =
        new Sample(
            when,
            compute,
            Lsn.parse(t.lastRecordLsn()),
            Lsn.parse(t.diskConsistentLsn()),
            t.gcCutoff(),
            t.layers(),
            psDir,
            commit,
            horizon,
            skDir);
    System.out.printf(
        Locale.ROOT,
        "storage: %s: compute %s, pageserver %s (disk %s, cutoff %s, layers %s) %s, safekeeper"
            + " commit %s horizon %s oldest %s %s%n",
        when,
        compute,
        t.lastRecordLsn(),
        t.diskConsistentLsn(),
        t.gcCutoff(),
        t.layers(),
        mib(psDir),
        sk.commitLsn(),
        horizon,
        sk.oldestLsn(),
        mib(skDir));
    return s;
  }

  private static void awaitIngested(
      ZenithProcesses z, TenantId tenant, TimelineId timeline, Lsn target) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
    while (Lsn.parse(z.pageserver().timeline(tenant, timeline).lastRecordLsn()).isBefore(target)) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("the pageserver did not reach " + target + " in 5 min");
      }
      Thread.sleep(500);
    }
  }

  private static void print(List<Sample> samples, Lsn start) {
    System.out.println();
    System.out.println(
        "| time | WAL written | pageserver last record − GC cutoff | layers L0 / L1 / image |"
            + " layer bytes | pageserver dir | safekeeper must keep (commit − horizon) |"
            + " safekeeper dir | safekeeper bound (must keep + 2 segments) |");
    System.out.println("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (Sample s : samples) {
      String behindCutoff;
      try {
        Lsn cutoff = Lsn.parse(s.gcCutoff());
        behindCutoff = cutoff.isValid() ? mib(s.lastRecord().minus(cutoff)) : "no cutoff";
      } catch (RuntimeException e) {
        behindCutoff = s.gcCutoff() == null ? "no cutoff" : s.gcCutoff();
      }
      System.out.printf(
          Locale.ROOT,
          "| %s | %s | %s | %d / %d / %d | %s | %s | %s | %s | %s |%n",
          s.when(),
          mib(s.computeLsn().minus(start)),
          behindCutoff,
          s.layers().l0(),
          s.layers().l1(),
          s.layers().image(),
          mib(s.layers().bytes()),
          mib(s.pageserverDir()),
          mib(s.mustKeep()),
          mib(s.safekeeperDir()),
          mib(s.mustKeep() + 2 * SEGMENT));
    }
  }

  static String mib(long bytes) {
    return String.format(Locale.ROOT, "%.0f MiB", bytes / 1048576.0);
  }
}
