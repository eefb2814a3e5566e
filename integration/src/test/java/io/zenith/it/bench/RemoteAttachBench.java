package io.zenith.it.bench;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.it.support.RepoTokens;
import io.zenith.page.stream.PagestreamClient;
import io.zenith.page.stream.PagestreamRequest;
import io.zenith.page.stream.PagestreamResponse;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.testing.S3Proxy;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * {@code make bench BENCH=remote-attach} (issue 12's attach benchmark), through the real launcher
 * ({@link ZenithProcesses}) on remote storage in s3proxy on loopback:
 *
 * <ol>
 *   <li>{@code pgbench -i} at a scale of about 1 GB ({@code -Dzenith.bench.attach.scale}, 68),
 *       compacted, everything uploaded;
 *   <li>with the layers local (after a pageserver restart): {@code pg start} of a new lazy compute
 *       to its first answer ({@code pgbench_branches}), then a full {@code sum(abalance)};
 *   <li>detach, the pageserver's data directory emptied, attach: the attach's time, then the same
 *       new compute, first query and sum, which now download their layers (meters);
 *   <li>GetPage over pagestream whose layers are remote only (detach and attach again, {@code
 *       -Dzenith.bench.attach.rounds} times), each request marked by whether the download meter
 *       moved across it, against the same requests once the files are local.
 * </ol>
 *
 * Not a test: numbers never fail anything. Not thread-safe (one run).
 */
final class RemoteAttachBench {
  private static final String FIRST = "SELECT count(*) FROM pgbench_branches";
  private static final String SUM = "SELECT sum(abalance) FROM pgbench_accounts";
  private static final Pattern ATTACH_MS = Pattern.compile(" in (\\d+) ms");

  private final Path projectRoot;
  private final Path scratch;
  private final List<String> report = new ArrayList<>();

  RemoteAttachBench(Path projectRoot, Path scratch) {
    this.projectRoot = projectRoot;
    this.scratch = scratch;
  }

  private static String[] create(String name, String storage) {
    return new String[] {
      "pg",
      "create",
      name,
      "--storage",
      storage,
      "--config",
      "shared_buffers=256MB",
      "--config",
      "max_wal_size=4GB",
      "--config",
      "checkpoint_timeout=30min"
    };
  }

  private void note(String format, Object... args) {
    String line = String.format(Locale.ROOT, format, args);
    report.add(line);
    System.out.println(line);
  }

  void run() throws Exception {
    int scale = Integer.getInteger("zenith.bench.attach.scale", 68);
    int rounds = Integer.getInteger("zenith.bench.attach.rounds", 5);
    System.out.printf("remote-attach: scale %d, load average %s%n", scale, load());
    try (S3Proxy s3 = S3Proxy.start();
        ZenithProcesses z =
            new ZenithProcesses(
                projectRoot,
                scratch,
                1,
                Map.of(),
                List.of(
                    "--remote",
                    "s3://" + S3Proxy.BUCKET + "/attach",
                    "--remote-endpoint",
                    s3.endpoint().toString()),
                Map.of(
                    "AWS_ACCESS_KEY_ID", S3Proxy.ACCESS_KEY,
                    "AWS_SECRET_ACCESS_KEY", S3Proxy.SECRET_KEY))) {
      z.ok("start");
      z.ok(create("init", "full"));
      z.ok("pg", "start", "init");
      int port = z.port("init");
      long t0 = System.nanoTime();
      z.pgbench(port, Duration.ofMinutes(60), "-i", "-s", Integer.toString(scale), "-q");
      double load = secondsSince(t0);
      long dbBytes = Long.parseLong(z.sql(port, "SELECT pg_database_size('postgres')"));
      String sum = z.sql(port, SUM);
      String first = z.sql(port, FIRST);
      int db =
          Integer.parseInt(z.sql(port, "SELECT oid FROM pg_database WHERE datname = 'postgres'"));
      int rel = Integer.parseInt(z.sql(port, "SELECT pg_relation_filenode('pgbench_accounts')"));
      int blocks =
          (int) (Long.parseLong(z.sql(port, "SELECT pg_relation_size('pgbench_accounts')")) / 8192);
      Lsn end = Lsn.parse(z.sql(port, "SELECT pg_current_wal_lsn()"));
      TenantId tenant = z.tenant("init");
      TimelineId timeline = z.timeline("init");
      z.ok("pg", "stop", "init", "--destroy");
      note(
          "pgbench -i -s %d: %.0f MB database in %.0f s (load %s)",
          scale, dbBytes / 1e6, load, load());

      long u0 = System.nanoTime();
      LifecycleSpeedBench.awaitIngested(z, tenant, timeline, end);
      ApiModel.CompactionInfo c = z.pageserver().compact(tenant, timeline);
      z.pageserver().checkpoint(tenant, timeline);
      awaitUploaded(z, tenant, timeline);
      note(
          "ingest, compaction (%d L0 merged, %d image layers) and upload done %.0f s after the"
              + " load (load %s)",
          c.l0Merged(), c.imageLayers(), secondsSince(u0), load());
      layerSizes(z.pageserver().layers(tenant, timeline));

      // the layers local: the same pageserver restarted, so both sides pay its cold start
      z.ok("pageserver", "stop");
      z.ok("pageserver", "start");
      double[] local = firstQueryAndSum(z, "local", first, sum);

      long d0 = System.nanoTime();
      z.ok("tenant", "detach", "default");
      double detach = secondsSince(d0);
      z.ok("pageserver", "stop");
      Path data = z.pageserverDir();
      for (String d : List.of("index", "tenants", "deletion")) {
        BenchMain.deleteTree(data.resolve(d));
      }
      z.ok("pageserver", "start");
      long a0 = System.nanoTime();
      String attached = z.ok("tenant", "attach", "default");
      double attach = secondsSince(a0);
      long stubs = count(data.resolve("tenants"), ".layer.remote");
      long files = count(data.resolve("tenants"), ".layer");
      note(
          "detach %.1f s; attach on an emptied pageserver %.2f s (CLI included; the pageserver"
              + " says %s ms): %d layer stubs, %d layer files local",
          detach, attach, attachMs(attached), stubs, files);
      Map<String, Double> m0 = meters(z);
      double[] cold = firstQueryAndSum(z, "cold", first, sum);
      Map<String, Double> m1 = meters(z);
      note(
          "the cold side downloaded %.0f layer files, %.0f MB, in %.1f s of download time",
          m1.get("zenith_layer_downloads_total") - m0.get("zenith_layer_downloads_total"),
          (m1.get("zenith_layer_download_bytes_total")
                  - m0.get("zenith_layer_download_bytes_total"))
              / 1e6,
          m1.get("zenith_layer_download_duration_seconds_total")
              - m0.get("zenith_layer_download_duration_seconds_total"));
      // local again, now that the attached tenant's files are all here: the order's effect
      z.ok("pageserver", "stop");
      z.ok("pageserver", "start");
      double[] again = firstQueryAndSum(z, "again", first, sum);
      System.out.println();
      System.out.printf(
          Locale.ROOT,
          "| pgbench -i -s %d (%.0f MB), lazy compute | layers local (before; after) |"
              + " attached, remote only | ratio to the mean of the local runs |%n",
          scale,
          dbBytes / 1e6);
      System.out.println("|---|---:|---:|---:|");
      System.out.printf(Locale.ROOT, "| attach | | %.2f s | |%n", attach);
      row("pg start → first answer (`%s`)".formatted(FIRST), local[0], again[0], cold[0]);
      row("attach + pg start → first answer", local[0], again[0], attach + cold[0]);
      row("then `%s` (full scan)".formatted(SUM), local[1], again[1], cold[1]);

      getPages(z, tenant, timeline, new RelTag(1663, db, rel), blocks, rounds);
    }
    System.out.println();
    report.forEach(System.out::println);
    System.out.printf("load average after: %s%n", load());
  }

  private static void row(String what, double before, double after, double remote) {
    System.out.printf(
        Locale.ROOT,
        "| %s | %.2f s; %.2f s | %.2f s | %.1f× |%n",
        what,
        before,
        after,
        remote,
        remote / ((before + after) / 2));
  }

  /** {@code pg start} of a new lazy compute to {@code FIRST}'s answer, then {@code SUM}: s. */
  private double[] firstQueryAndSum(ZenithProcesses z, String name, String first, String sum) {
    z.ok(create(name, "lazy"));
    long t0 = System.nanoTime();
    z.ok("pg", "start", name);
    String f = z.sql(z.port(name), FIRST);
    double firstSeconds = secondsSince(t0);
    long s0 = System.nanoTime();
    String s = z.sql(z.port(name), "SET max_parallel_workers_per_gather = 0; " + SUM);
    s = s.substring(s.lastIndexOf('\n') + 1); // psql prints SET first
    double sumSeconds = secondsSince(s0);
    z.ok("pg", "stop", name, "--destroy");
    if (!f.equals(first) || !s.equals(sum)) {
      throw new IllegalStateException(
          name
              + ": answers differ from the loaded database's: "
              + f
              + "/"
              + s
              + " vs "
              + first
              + "/"
              + sum);
    }
    note(
        "%s: pg start to first answer %.2f s, sum %.2f s (load %s)",
        name, firstSeconds, sumSeconds, load());
    return new double[] {firstSeconds, sumSeconds};
  }

  /**
   * GetPage of random blocks at the latest LSN whose layers are remote only: each round detaches
   * and attaches the tenant (a warm pageserver), then asks for {@code perRound} blocks, scraping
   * the download meter around each request; the same blocks again once local.
   */
  private void getPages(
      ZenithProcesses z, TenantId tenant, TimelineId timeline, RelTag rel, int blocks, int rounds)
      throws Exception {
    int perRound = 40;
    List<long[]> downloaded = new ArrayList<>(); // {nanos, downloads, bytes}
    List<Long> noDownload = new ArrayList<>();
    List<Long> local = new ArrayList<>();
    List<Double> attaches = new ArrayList<>();
    int background = 0;
    Random random = new Random(7);
    String token = RepoTokens.admin(z.repo);
    for (int r = 0; r < rounds; r++) {
      z.ok("tenant", "detach", "default");
      long a0 = System.nanoTime();
      z.ok("tenant", "attach", "default");
      attaches.add(secondsSince(a0));
      Lsn lsn = Lsn.parse(z.pageserver().timeline(tenant, timeline).lastRecordLsn());
      int[] picks = random.ints(perRound, 0, blocks).toArray();
      try (PagestreamClient p =
          PagestreamClient.connect(
              "127.0.0.1", z.pgPort, "postgres", token, tenant, timeline, Duration.ofSeconds(60))) {
        for (int i = 0; i < picks.length; i++) {
          Map<String, Double> before = meters(z);
          long ns = getPage(p, i, lsn, rel, picks[i]);
          Map<String, Double> after = meters(z);
          double n =
              after.get("zenith_layer_downloads_total")
                  - before.get("zenith_layer_downloads_total");
          double busy =
              after.get("zenith_layer_download_duration_seconds_total")
                  - before.get("zenith_layer_download_duration_seconds_total");
          if (n > 0 && busy * 1e9 <= ns + 1e6) {
            downloaded.add(
                new long[] {
                  ns,
                  (long) n,
                  (long)
                      (after.get("zenith_layer_download_bytes_total")
                          - before.get("zenith_layer_download_bytes_total"))
                });
          } else if (n > 0) {
            // A download longer than the request was not (only) the request's: something in the
            // background (after an attach) read the layer. Neither side counts it.
            background++;
          } else {
            noDownload.add(ns);
          }
        }
        for (int i = 0; i < picks.length; i++) {
          local.add(getPage(p, perRound + i, lsn, rel, picks[i]));
        }
      }
    }
    long[] dl = downloaded.stream().mapToLong(x -> x[0]).sorted().toArray();
    long layers = downloaded.stream().mapToLong(x -> x[1]).sum();
    long bytes = downloaded.stream().mapToLong(x -> x[2]).sum();
    note(
        "GetPage rounds: %d detach+attach on a warm pageserver, attach %.2f–%.2f s (CLI"
            + " included); %d requests downloaded %d layer files, %.0f MB (%.1f MB per"
            + " download); %d requests left out (a background download overlapped them)",
        rounds,
        attaches.stream().mapToDouble(Double::doubleValue).min().orElse(0),
        attaches.stream().mapToDouble(Double::doubleValue).max().orElse(0),
        dl.length,
        layers,
        bytes / 1e6,
        layers == 0 ? 0 : bytes / 1e6 / layers,
        background);
    note(
        "GetPage requests that downloaded (ms: layer files, MB): %s",
        String.join(
            ", ",
            downloaded.stream()
                .sorted(java.util.Comparator.comparingLong(x -> x[0]))
                .map(
                    x ->
                        String.format(
                            Locale.ROOT, "%.0f ms: %d, %.1f MB", x[0] / 1e6, x[1], x[2] / 1e6))
                .toList()));
    System.out.println();
    System.out.println(
        "| GetPage over pagestream, random block | requests | p50 ms | p99 ms | max ms |");
    System.out.println("|---|---:|---:|---:|---:|");
    latencyRow("its layer(s) remote only: downloads first", dl);
    latencyRow(
        "after an attach, layers already fetched by an earlier request",
        noDownload.stream().mapToLong(Long::longValue).sorted().toArray());
    latencyRow(
        "the same blocks again, layers local",
        local.stream().mapToLong(Long::longValue).sorted().toArray());
  }

  private static long getPage(PagestreamClient p, int id, Lsn lsn, RelTag rel, int block)
      throws Exception {
    long s = System.nanoTime();
    PagestreamResponse r =
        p.call(
            new PagestreamRequest.GetPage(
                id, PagestreamRequest.LATEST, lsn, rel, ForkNumber.MAIN, block));
    long ns = System.nanoTime() - s;
    if (r instanceof PagestreamResponse.Error e) {
      throw new IllegalStateException("GetPage of block " + block + " failed: " + e);
    }
    return ns;
  }

  private static void latencyRow(String what, long[] sorted) {
    if (sorted.length == 0) {
      System.out.printf("| %s | 0 | | | |%n", what);
      return;
    }
    System.out.printf(
        Locale.ROOT,
        "| %s | %d | %.2f | %.2f | %.2f |%n",
        what,
        sorted.length,
        LifecycleSpeedBench.pct(sorted, 0.50) / 1e6,
        LifecycleSpeedBench.pct(sorted, 0.99) / 1e6,
        sorted[sorted.length - 1] / 1e6);
  }

  private void layerSizes(ApiModel.LayerList list) {
    Map<String, List<Long>> byKind = new java.util.TreeMap<>();
    for (ApiModel.LayerFileEntry e : list.layers()) {
      byKind.computeIfAbsent(e.kind() + " L" + e.level(), k -> new ArrayList<>()).add(e.size());
    }
    byKind.forEach(
        (kind, sizes) -> {
          long[] s = sizes.stream().mapToLong(Long::longValue).sorted().toArray();
          note(
              "layers %s: %d files, %.1f–%.1f MB (median %.1f), %.0f MB in all",
              kind,
              s.length,
              s[0] / 1e6,
              s[s.length - 1] / 1e6,
              s[s.length / 2] / 1e6,
              java.util.Arrays.stream(s).sum() / 1e6);
        });
  }

  /** Waits (20 min at most) until the index names everything: nothing queued, LSNs equal. */
  private static void awaitUploaded(ZenithProcesses z, TenantId tenant, TimelineId timeline)
      throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofMinutes(20).toNanos();
    while (true) {
      ApiModel.TimelineInfo t = z.pageserver().timeline(tenant, timeline);
      if (t.remoteUpload() != null
          && t.remoteUpload().queueLength() == 0
          && t.remoteConsistentLsn().equals(t.lastRecordLsn())
          && t.diskConsistentLsn().equals(t.lastRecordLsn())) {
        return;
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("uploads not done within 20 min: " + t);
      }
      Thread.sleep(500);
    }
  }

  /** The unlabelled {@code zenith_layer_*} samples of the pageserver's {@code /metrics}. */
  private static Map<String, Double> meters(ZenithProcesses z) throws Exception {
    try (HttpClient http = HttpClient.newHttpClient()) {
      HttpResponse<String> r =
          http.send(
              HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + z.httpPort + "/metrics"))
                  .header("Authorization", "Bearer " + RepoTokens.admin(z.repo))
                  .timeout(Duration.ofSeconds(30))
                  .build(),
              HttpResponse.BodyHandlers.ofString());
      if (r.statusCode() != 200) {
        throw new IllegalStateException("/metrics answered " + r.statusCode());
      }
      Map<String, Double> m = new java.util.HashMap<>();
      Matcher x = Pattern.compile("(?m)^(zenith_layer_\\w+) (\\S+)$").matcher(r.body());
      while (x.find()) {
        m.put(x.group(1), Double.parseDouble(x.group(2)));
      }
      return m;
    }
  }

  private static String attachMs(String cliOut) {
    Matcher m = ATTACH_MS.matcher(cliOut);
    return m.find() ? m.group(1) : "?";
  }

  private static long count(Path dir, String suffix) throws IOException {
    if (!Files.isDirectory(dir)) {
      return 0;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(p -> p.getFileName().toString().endsWith(suffix)).count();
    }
  }

  private static double secondsSince(long t0) {
    return (System.nanoTime() - t0) / 1e9;
  }

  private static String load() {
    try {
      String s = Files.readString(Path.of("/proc/loadavg")).strip();
      return s.substring(0, s.indexOf(' ', s.indexOf(' ', s.indexOf(' ') + 1) + 1)).strip();
    } catch (IOException e) {
      return "?";
    }
  }
}
