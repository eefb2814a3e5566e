package io.zenith.it.bench;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Ingest speed of the real pageserver process with compaction running against compaction off, on
 * the same WAL: {@code pgbench -i -s scale} is written to the safekeeper while the pageserver is
 * stopped (the safekeeper's timeline has no write-lag limit, so the compute does not wait for it),
 * both services are stopped and their directories kept; then, for each setting, the kept
 * directories are put back, the services started, and the time the pageserver takes to reach the
 * safekeeper's commit LSN is measured. Both settings use {@code checkpoint_distance = "16MiB"} (a
 * flush every 16 MiB, so a compaction has layers to work on); "compaction running" has the default
 * thresholds and {@code compaction_period = "1s"}, "compaction off" thresholds out of reach. Not
 * thread-safe.
 */
final class IngestCompactionBench {
  private final Path projectRoot;
  private final Path scratch;

  IngestCompactionBench(Path projectRoot, Path scratch) {
    this.projectRoot = projectRoot;
    this.scratch = scratch;
  }

  record Result(
      String name,
      long bytes,
      double seconds,
      int maxL0,
      ApiModel.LayerCounts layersAtEnd,
      double pageserverCpu,
      double safekeeperCpu) {
    double mibPerSecond() {
      return bytes / 1048576.0 / seconds;
    }

    /** CPU-seconds of the pageserver (its JVM and its WAL-redo processes) per GiB ingested. */
    double pageserverCpuPerGib() {
      return pageserverCpu / (bytes / 1073741824.0);
    }
  }

  void run(int scale) throws Exception {
    System.out.println("ingest: setup starts; " + HistoryBench.uptime());
    Map<String, String> base = new HashMap<>();
    base.put("checkpoint_distance", "'16MiB'");
    base.put("compaction_period", "'1s'");
    base.putAll(LifecycleSpeedBench.NO_COMPACTION);
    List<Result> results = new ArrayList<>();
    try (ZenithProcesses z = new ZenithProcesses(projectRoot, scratch, 1, base)) {
      Path skToml = z.safekeeperDir(1).resolve("safekeeper.toml");
      Files.writeString(
          skToml,
          Files.readString(skToml)
              .replaceAll("(?m)^max_replication_write_lag = .*$", "max_replication_write_lag = '0'")
              .replaceAll(
                  "(?m)^max_replication_flush_lag = .*$", "max_replication_flush_lag = '0'"));
      ZenithProcesses.Main main = z.startMain();
      int port = main.port();
      TenantId tenant = main.tenant();
      TimelineId timeline = main.timeline();
      z.ok("pageserver", "stop");
      long t0 = System.nanoTime();
      z.pgbench(port, Duration.ofMinutes(60), "-i", "-q", "-s", Integer.toString(scale));
      Lsn end = Lsn.parse(z.sql(port, "SELECT pg_current_wal_insert_lsn()"));
      System.out.printf(
          Locale.ROOT,
          "ingest: pgbench -i -s %d wrote up to %s in %.0f s with the pageserver stopped%n",
          scale,
          end,
          LifecycleSpeedBench.secondsSince(t0));
      z.ok("pg", "stop", "main");
      z.ok("stop");
      Path keep = Files.createTempDirectory(scratch, "ingest-kept-");
      copy(z.pageserverDir(), keep.resolve("pageserver"));
      copy(z.safekeeperDir(1), keep.resolve("sk1"));
      Map<String, Map<String, String>> variants = new java.util.LinkedHashMap<>();
      variants.put("compaction off", LifecycleSpeedBench.NO_COMPACTION);
      variants.put("compaction running (defaults, compaction_period 1s)", defaults());
      variants.put("compaction off (again)", LifecycleSpeedBench.NO_COMPACTION);
      for (Map.Entry<String, Map<String, String>> v : variants.entrySet()) {
        BenchMain.deleteTree(z.pageserverDir());
        BenchMain.deleteTree(z.safekeeperDir(1));
        copy(keep.resolve("pageserver"), z.pageserverDir());
        copy(keep.resolve("sk1"), z.safekeeperDir(1));
        Path toml = z.pageserverDir().resolve("pageserver.toml");
        String text = Files.readString(toml);
        for (Map.Entry<String, String> e : v.getValue().entrySet()) {
          text =
              text.replaceAll("(?m)^" + e.getKey() + " = .*$", e.getKey() + " = " + e.getValue());
        }
        Files.writeString(toml, text);
        System.out.println("ingest: " + v.getKey() + "; " + HistoryBench.uptime());
        z.ok("start");
        results.add(catchUp(z, v.getKey(), tenant, timeline, end));
        printCompactionLog(z.pageserverDir().resolve("pageserver.log"));
        z.ok("stop");
      }
    }
    Result off = results.getFirst();
    System.out.println();
    System.out.println(
        "| pageserver catching up "
            + String.format(Locale.ROOT, "%.0f MiB", off.bytes() / 1048576.0)
            + " of WAL (pgbench -i -s "
            + scale
            + "), checkpoint_distance 16MiB | time | MiB/s | most L0 layers seen |"
            + " layers L0 / L1 / image at the end | pageserver CPU s (per GiB) | safekeeper CPU s"
            + " | ratio to compaction off |");
    System.out.println("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (Result r : results) {
      System.out.printf(
          Locale.ROOT,
          "| %s | %.1f s | %.1f | %d | %d / %d / %d | %.1f (%.1f) | %.1f | %.2f |%n",
          r.name(),
          r.seconds(),
          r.mibPerSecond(),
          r.maxL0(),
          r.layersAtEnd().l0(),
          r.layersAtEnd().l1(),
          r.layersAtEnd().image(),
          r.pageserverCpu(),
          r.pageserverCpuPerGib(),
          r.safekeeperCpu(),
          r.mibPerSecond() / off.mibPerSecond());
    }
  }

  private static Map<String, String> defaults() {
    return LifecycleSpeedBench.DEFAULT_COMPACTION;
  }

  /**
   * From the first moment the pageserver answers until its last record LSN reaches {@code end}: the
   * bytes it ingested in that time (polled every 100 ms).
   */
  private static Result catchUp(
      ZenithProcesses z, String name, TenantId tenant, TimelineId timeline, Lsn end)
      throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofMinutes(15).toNanos();
    Lsn seen = null;
    Lsn first = null;
    long t0 = 0;
    int maxL0 = 0;
    double psCpu0 = 0;
    double skCpu0 = 0;
    ApiModel.TimelineInfo t;
    while (true) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("ingest: the pageserver did not reach " + end);
      }
      try {
        t = z.pageserver().timeline(tenant, timeline);
      } catch (RuntimeException e) {
        Thread.sleep(100);
        continue;
      }
      Lsn last = Lsn.parse(t.lastRecordLsn());
      if (seen == null) {
        seen = last;
      }
      // the clock starts when ingest does (the WAL receiver connects a while after the HTTP API
      // answers), at the LSN reached by then
      if (first == null && last.isAfter(seen)) {
        first = last;
        t0 = System.nanoTime();
        psCpu0 = treeCpuSeconds(z.pageserverDir().resolve("pageserver.pid"));
        skCpu0 = treeCpuSeconds(z.safekeeperDir(1).resolve("safekeeper.pid"));
      }
      if (t.layers() != null) {
        maxL0 = Math.max(maxL0, t.layers().l0());
      }
      if (first == null && !last.isBefore(end)) {
        throw new IllegalStateException("ingest: caught up before it could be timed; more WAL");
      }
      if (first != null && !last.isBefore(end)) {
        break;
      }
      Thread.sleep(100);
    }
    double seconds = LifecycleSpeedBench.secondsSince(t0);
    double psCpu = treeCpuSeconds(z.pageserverDir().resolve("pageserver.pid")) - psCpu0;
    double skCpu = treeCpuSeconds(z.safekeeperDir(1).resolve("safekeeper.pid")) - skCpu0;
    Result r = new Result(name, end.minus(first), seconds, maxL0, t.layers(), psCpu, skCpu);
    System.out.printf(
        Locale.ROOT,
        "ingest: %s: %s → %s in %.1f s, %.1f MiB/s, most L0 %d, CPU s pageserver %.1f,"
            + " safekeeper %.1f%n",
        name,
        first,
        end,
        seconds,
        r.mibPerSecond(),
        maxL0,
        psCpu,
        skCpu);
    return r;
  }

  /**
   * The CPU time (user + system) of the process named by {@code pidFile} and of its live
   * descendants (the pageserver's WAL-redo processes): what a catch-up costs on a machine whose
   * other load moves wall times (ADR 0033). 0 when the pid file or /proc is unreadable.
   */
  static double treeCpuSeconds(Path pidFile) {
    try {
      long root = Long.parseLong(Files.readString(pidFile).strip());
      Map<Long, List<Long>> children = new HashMap<>();
      Map<Long, Long> ticks = new HashMap<>();
      try (var dirs = Files.list(Path.of("/proc"))) {
        for (Path d : (Iterable<Path>) dirs::iterator) {
          String n = d.getFileName().toString();
          if (!n.chars().allMatch(Character::isDigit)) {
            continue;
          }
          try {
            String stat = Files.readString(d.resolve("stat"));
            // fields after the command (which may hold spaces) in parentheses
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            long pid = Long.parseLong(n);
            children.computeIfAbsent(Long.parseLong(f[1]), k -> new ArrayList<>()).add(pid);
            ticks.put(pid, Long.parseLong(f[11]) + Long.parseLong(f[12]));
          } catch (java.io.IOException | RuntimeException gone) {
            // the process ended while listed
          }
        }
      }
      long sum = 0;
      List<Long> todo = new ArrayList<>(List.of(root));
      while (!todo.isEmpty()) {
        long p = todo.removeLast();
        sum += ticks.getOrDefault(p, 0L);
        todo.addAll(children.getOrDefault(p, List.of()));
      }
      return sum / 100.0; // USER_HZ
    } catch (java.io.IOException | RuntimeException e) {
      return 0;
    }
  }

  /** The compaction passes' own log lines (what each merged or materialized, and how long). */
  private static void printCompactionLog(Path log) {
    try (var lines = Files.lines(log)) {
      lines
          .filter(
              l ->
                  l.contains("compacted ")
                      || l.contains("created image layer")
                      || l.contains("rewrote ")
                      || l.contains("GC of "))
          .forEach(l -> System.out.println("ingest:   " + l));
    } catch (java.io.IOException | java.io.UncheckedIOException e) {
      System.out.println("ingest: cannot read " + log + ": " + e.getMessage());
    }
  }

  private static void copy(Path from, Path to) {
    ZenithProcesses.BenchProcess.run(
        List.of("cp", "-a", from.toString(), to.toString()), Duration.ofMinutes(10));
  }
}
