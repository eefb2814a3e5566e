package io.zenith.it.bench;

import io.zenith.it.support.RepoTokens;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code lazy-scan}: the cold sequential scan of {@code lazy-speed} alone (issue 13), in about two
 * minutes instead of ten: {@code pgbench -i -s 10} on a full compute, the pageserver caught up,
 * then {@code SELECT count(*) FROM pgbench_accounts} (no parallel workers) on a new lazy compute —
 * nothing cached in the agent, the kernel or PostgreSQL; the pageserver's page cache is as the load
 * left it, as in {@code lazy-speed}. Prints MiB/s and the pageserver's WAL-redo and GetPage
 * counters over the scan.
 *
 * <p>{@code -Dzenith.bench.lazy.noimages=true} sets {@code image_creation_threshold} so high that
 * the pageserver makes no image layers: every page of the load is then rebuilt from its WAL, the
 * state of a scan right after a load (ADR 0034).
 *
 * <p>{@code -Dzenith.bench.lazy.jar=<zenith.jar>} runs another build (a before/after comparison in
 * one worktree). {@code -Dzenith.bench.lazy.jfr=<prefix>} records the pageserver with JFR ({@code
 * profile} settings) to that file, for a breakdown of where a page's time goes. Not a test; not
 * thread-safe.
 */
final class LazyScanBench {
  private final Path projectRoot;
  private final Path scratch;

  LazyScanBench(Path projectRoot, Path scratch) {
    this.projectRoot = projectRoot;
    this.scratch = scratch;
  }

  /** Counters of the pageserver's {@code /metrics} whose deltas explain a scan. */
  private static final List<String> COUNTERS =
      List.of(
          "zenith_walredo_requests_total",
          "zenith_walredo_records_total",
          "zenith_walredo_java_records_total",
          "zenith_walredo_latency_seconds_count",
          "zenith_walredo_latency_seconds_sum",
          "zenith_getpage_duration_seconds_count",
          "zenith_getpage_duration_seconds_sum",
          "zenith_pagestream_getpage_seconds_count",
          "zenith_pagestream_getpage_seconds_sum");

  void run() throws Exception {
    int scale = Integer.getInteger("zenith.bench.lazy.scale", 10);
    String jfrPath = System.getProperty("zenith.bench.lazy.jfr", "");
    System.out.printf("lazy-scan: scale %d, load average before: %s%n", scale, load());
    // -Dzenith.bench.lazy.noimages=true: no image layers, so every page of the load needs its WAL
    // applied, as in a scan that starts before the pageserver made images (ADR 0034)
    boolean noImages = Boolean.getBoolean("zenith.bench.lazy.noimages");
    System.out.printf(
        "image layers: %s%n",
        noImages ? "none (image_creation_threshold 1000000)" : "as configured");
    Map<String, String> options =
        noImages ? Map.of("image_creation_threshold", "1000000") : Map.of();
    try (ZenithProcesses z = new ZenithProcesses(projectRoot, scratch, 0, options)) {
      String jar = System.getProperty("zenith.bench.lazy.jar", "");
      if (!jar.isEmpty()) {
        z.useJar(Path.of(jar), "");
      }
      z.ok("start");
      z.ok("pg", "create", "full", "--branch", "main", "--storage", "full");
      z.ok("pg", "start", "full");
      int port = z.port("full");
      long t0 = System.nanoTime();
      z.pgbench(port, Duration.ofMinutes(30), "-i", "-s", Integer.toString(scale), "-q");
      Lsn end = Lsn.parse(z.sql(port, "SELECT pg_current_wal_lsn()"));
      TenantId tenant = z.tenant("full");
      TimelineId timeline = z.timeline("full");
      z.ok("pg", "stop", "full");
      LifecycleSpeedBench.awaitIngested(z, tenant, timeline, end);
      System.out.printf("pgbench -i and its ingest: %.1f s%n", (System.nanoTime() - t0) / 1e9);
      for (int round = 1; round <= 2; round++) {
        String name = "lazy" + round;
        z.ok("pg", "create", name, "--branch", "main", "--storage", "lazy");
        z.ok("pg", "start", name);
        int lp = z.port(name);
        long bytes = Long.parseLong(z.sql(lp, "SELECT pg_relation_size('pgbench_accounts')"));
        // Round 1 forces the sequential scan; round 2 is lazy-speed's statement as it is, whose
        // plan PostgreSQL picks (after pgbench -i's VACUUM, an index-only scan of the primary key).
        String set =
            "SET max_parallel_workers_per_gather = 0; "
                + (round == 1
                    ? "SET enable_indexonlyscan = off; SET enable_indexscan = off;"
                        + " SET enable_bitmapscan = off; "
                    : "");
        String plan = z.sql(lp, set + "EXPLAIN SELECT count(*) FROM pgbench_accounts");
        Map<String, Double> before = counters(z);
        String repo = z.repo.toString();
        double psCpu0 = cpuSeconds("pageserver run -D " + repo);
        double agentCpu0 = cpuSeconds("compute agent", "--pageserver 127.0.0.1:" + z.pgPort + " ");
        Jfr jfr = jfrPath.isEmpty() ? null : Jfr.start(z, jfrPath + "-" + round + ".jfr");
        long s0 = System.nanoTime();
        z.sql(lp, set + "SELECT count(*) FROM pgbench_accounts");
        double took = (System.nanoTime() - s0) / 1e9;
        if (jfr != null) {
          jfr.stop();
        }
        Map<String, Double> after = counters(z);
        double psCpu = cpuSeconds("pageserver run -D " + repo) - psCpu0;
        double agentCpu =
            cpuSeconds("compute agent", "--pageserver 127.0.0.1:" + z.pgPort + " ") - agentCpu0;
        System.out.printf("plan: %s%n", plan.replace('\n', ' '));
        System.out.printf(
            Locale.ROOT,
            "scan %d (%s): %.1f MiB in %.2f s = %.1f MiB/s, %d pages, load average %s%n",
            round,
            round == 1 ? "cold, sequential scan forced" : "as lazy-speed's, pageserver cache warm",
            bytes / 1048576.0,
            took,
            bytes / 1048576.0 / took,
            bytes / 8192,
            load());
        System.out.printf(
            Locale.ROOT,
            "  CPU s over the scan: pageserver with its WAL-redo processes %.2f (%.4f per MiB),"
                + " agent %.2f (%.4f per MiB)%n",
            psCpu,
            psCpu / (bytes / 1048576.0),
            agentCpu,
            agentCpu / (bytes / 1048576.0));
        after.forEach(
            (k, v) ->
                System.out.printf(
                    Locale.ROOT, "  %s: %+.4f%n", k, v - before.getOrDefault(k, 0.0)));
        z.ok("pg", "stop", name);
      }
    }
  }

  /**
   * CPU seconds so far of the processes whose command line contains all {@code parts}, with their
   * descendants (the pageserver's WAL-redo processes): a measure that a shared machine's load
   * disturbs less than wall time.
   */
  private static double cpuSeconds(String... parts) {
    return ProcessHandle.allProcesses()
        .filter(
            h -> {
              String line = h.info().arguments().map(a -> String.join(" ", a)).orElse("");
              return java.util.Arrays.stream(parts).allMatch(line::contains);
            })
        .flatMap(
            h -> java.util.stream.Stream.concat(java.util.stream.Stream.of(h), h.descendants()))
        .mapToDouble(h -> h.info().totalCpuDuration().map(d -> d.toNanos() / 1e9).orElse(0.0))
        .sum();
  }

  /** Sums of the {@link #COUNTERS} over their labels. */
  private static Map<String, Double> counters(ZenithProcesses z) throws Exception {
    HttpResponse<String> r =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + z.httpPort + "/metrics"))
                    .header("Authorization", "Bearer " + RepoTokens.admin(z.repo))
                    .timeout(Duration.ofSeconds(30))
                    .build(),
                HttpResponse.BodyHandlers.ofString());
    Map<String, Double> out = new LinkedHashMap<>();
    Matcher byOutcome =
        Pattern.compile(
                "(?m)^zenith_getpage_duration_seconds_count\\{.*outcome=\"(\\w+)\".* (\\S+)$")
            .matcher(r.body());
    while (byOutcome.find()) {
      out.merge(
          "getpage " + byOutcome.group(1), Double.parseDouble(byOutcome.group(2)), Double::sum);
    }
    for (String name : COUNTERS) {
      Matcher m =
          Pattern.compile("(?m)^" + Pattern.quote(name) + "(?:\\{[^}]*})? (\\S+)$")
              .matcher(r.body());
      double sum = 0;
      while (m.find()) {
        sum += Double.parseDouble(m.group(1));
      }
      out.put(name, sum);
    }
    return out;
  }

  /** A JFR recording of the pageserver's JVM ({@code jcmd}), started and dumped around a scan. */
  private record Jfr(long pid, String file) {
    static Jfr start(ZenithProcesses z, String file) throws Exception {
      String repo = z.repo.toString();
      long pid =
          ProcessHandle.allProcesses()
              .filter(
                  h ->
                      h.info()
                          .arguments()
                          .map(a -> String.join(" ", a))
                          .orElse("")
                          .contains("pageserver run -D " + repo))
              .findFirst()
              .orElseThrow(() -> new IllegalStateException("no pageserver process for " + repo))
              .pid();
      jcmd(pid, "JFR.start", "name=scan", "settings=profile");
      return new Jfr(pid, file);
    }

    void stop() throws Exception {
      jcmd(pid, "JFR.stop", "name=scan", "filename=" + file);
      System.out.printf("JFR recording of the pageserver: %s%n", file);
    }

    private static void jcmd(long pid, String... args) throws Exception {
      java.util.List<String> cmd =
          new java.util.ArrayList<>(
              List.of(
                  Path.of(System.getProperty("java.home"), "bin", "jcmd").toString(),
                  Long.toString(pid)));
      cmd.addAll(List.of(args));
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes());
      if (!p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS) || p.exitValue() != 0) {
        throw new IllegalStateException("jcmd " + String.join(" ", args) + " failed: " + out);
      }
    }
  }

  private static String load() {
    try {
      String s = Files.readString(Path.of("/proc/loadavg")).strip();
      return s.substring(0, s.indexOf(' ', s.indexOf(' ') + 1));
    } catch (java.io.IOException e) {
      return "?";
    }
  }
}
