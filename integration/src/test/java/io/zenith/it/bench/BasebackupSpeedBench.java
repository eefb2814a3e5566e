package io.zenith.it.bench;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.gateway.control.Basebackups;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.it.support.RepoTokens;
import io.zenith.layer.LayerStore;
import io.zenith.layer.Timeline;
import io.zenith.page.Basebackup;
import io.zenith.page.PageChecksum;
import io.zenith.page.PageReconstructor;
import io.zenith.page.redo.WalRedoConfig;
import io.zenith.page.redo.WalRedoManager;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.PgConnection;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code make bench BENCH=basebackup-speed}: the basebackup of a compacted database, split into its
 * parts so that a change to one shows. A pgbench database ({@code pgbench -i}, scale {@code
 * -Dzenith.bench.bb.scale}, 20 by default: about 320 MB) is written with compaction off, then
 * compacted with thresholds that turn every page into an image ({@code compaction_threshold} 2,
 * {@code image_creation_threshold} 1), as a long-lived database is after compaction. Then, for each
 * jar ({@code -Dzenith.bench.bb.before.jar} if given, alternating with the build's jar, {@code
 * -Dzenith.bench.bb.rounds} rounds):
 *
 * <ul>
 *   <li><b>libpq, discarded</b>: {@code basebackup} over libpq read by {@link PgConnection#copyOut}
 *       and dropped (the pageserver's generation plus the transfer), first from the just started
 *       pageserver, then again from the same, now warm, one;
 *   <li><b>CLI fetch</b>: {@link Basebackups#fetch}, the CLI's client, extracting into a directory
 *       as {@code zenith pg start} does;
 *   <li><b>compute start</b>: {@code zenith pg start main}, timed, then stopped;
 * </ul>
 *
 * and at the end, the pageserver stopped, {@link Basebackup#stream} in this process to a discarding
 * sink (page cache off, checksums set as the pageserver does): generation alone.
 *
 * <p>{@code -Dzenith.bench.bb.repo=<dir>} keeps the prepared repository there and reuses it on the
 * next run (setup takes minutes); {@code -Dzenith.bench.bb.pageserver.opts} is passed to the
 * pageserver's JVM ({@code ZENITH_JAVA_OPTS}, e.g. a JFR recording). Not a test; not thread-safe.
 */
final class BasebackupSpeedBench {
  private final Path projectRoot;
  private final Path scratch;

  BasebackupSpeedBench(Path projectRoot, Path scratch) {
    this.projectRoot = projectRoot.toAbsolutePath();
    this.scratch = scratch;
  }

  /** One timed run. */
  record Sample(String jar, String what, long bytes, double seconds) {
    double mbPerSecond() {
      return bytes / 1e6 / seconds;
    }
  }

  void run() throws Exception {
    int scale = Integer.getInteger("zenith.bench.bb.scale", 20);
    int rounds = Integer.getInteger("zenith.bench.bb.rounds", 2);
    String keep = System.getProperty("zenith.bench.bb.repo");
    String before = System.getProperty("zenith.bench.bb.before.jar");
    Map<String, Path> jars = new LinkedHashMap<>();
    if (before != null) {
      jars.put("before", Path.of(before).toAbsolutePath());
    }
    jars.put("after", projectRoot.resolve("gateway/target/zenith.jar"));
    System.out.println("basebackup-speed: starts; " + HistoryBench.uptime());
    List<Sample> samples = new ArrayList<>();
    Path repoRoot = keep == null ? null : Path.of(keep).toAbsolutePath();
    try (ZenithProcesses z = open(repoRoot, scale)) {
      TenantId tenant = z.tenant("main");
      TimelineId timeline = z.timeline("main");
      z.ok("start");
      ApiModel.LayerCounts layers = z.pageserver().timeline(tenant, timeline).layers();
      System.out.printf(
          Locale.ROOT,
          "basebackup-speed: layers L0 / L1 / image %d / %d / %d%n",
          layers.l0(),
          layers.l1(),
          layers.image());
      z.ok("pageserver", "stop");
      String opts = System.getProperty("zenith.bench.bb.pageserver.opts", "");
      for (int round = 0; round < rounds; round++) {
        for (Map.Entry<String, Path> jar : jars.entrySet()) {
          z.useJar(jar.getValue(), opts);
          z.ok("pageserver", "start");
          z.useJar(null, "");
          System.out.println(
              "basebackup-speed: round "
                  + round
                  + ", "
                  + jar.getKey()
                  + "; "
                  + HistoryBench.uptime());
          samples.add(discarded(jar.getKey(), "libpq, discarded", z, tenant, timeline));
          // the same again from the now warm pageserver: a pageserver in service has its hot
          // paths compiled, while the first fetch after a start pays the JIT on both sides' cores
          samples.add(discarded(jar.getKey(), "libpq, discarded, warm", z, tenant, timeline));
          samples.add(cliFetch(jar.getKey(), z, tenant, timeline));
          long t0 = System.nanoTime();
          z.ok("pg", "start", "main");
          samples.add(new Sample(jar.getKey(), "compute start", 0, secondsSince(t0)));
          z.sql(z.port("main"), "SELECT count(*) FROM pgbench_branches");
          z.ok("pg", "stop", "main");
          z.ok("pageserver", "stop");
        }
      }
      samples.addAll(inProcess(z.pageserverDir(), tenant, timeline));
    }
    print(scale, samples);
  }

  /**
   * The prepared repository: reused from {@code keep} if an earlier run made it there, else made
   * (there, or in scratch).
   */
  private ZenithProcesses open(Path keep, int scale) throws Exception {
    if (keep != null && Files.isDirectory(keep)) {
      try (var children = Files.list(keep)) {
        for (Path c : children.toList()) {
          if (Files.isRegularFile(c.resolve(".zenith/config.toml"))) {
            System.out.println("basebackup-speed: reusing the repository in " + c);
            return new ZenithProcesses(projectRoot, c, 1);
          }
        }
      }
    }
    if (keep != null) {
      Files.createDirectories(keep);
    }
    ZenithProcesses z =
        new ZenithProcesses(
            projectRoot, keep == null ? scratch : keep, 1, LifecycleSpeedBench.NO_COMPACTION);
    try {
      ZenithProcesses.Main main = z.startMain();
      int port = main.port();
      TenantId tenant = main.tenant();
      TimelineId timeline = main.timeline();
      long t0 = System.nanoTime();
      z.pgbench(port, Duration.ofMinutes(30), "-i", "-q", "-s", Integer.toString(scale));
      System.out.printf(
          Locale.ROOT, "basebackup-speed: pgbench -i -s %d took %.0f s%n", scale, secondsSince(t0));
      Lsn end = Lsn.parse(z.sql(port, "SELECT pg_current_wal_insert_lsn()"));
      z.ok("pg", "stop", "main");
      LifecycleSpeedBench.awaitIngested(z, tenant, timeline, end);
      z.pageserver().checkpoint(tenant, timeline);
      z.ok("pageserver", "stop");
      setOptions(z, Map.of("compaction_threshold", "2", "image_creation_threshold", "1"));
      z.ok("pageserver", "start");
      long c0 = System.nanoTime();
      ApiModel.CompactionInfo c = z.pageserver().compact(tenant, timeline);
      System.out.printf(
          Locale.ROOT,
          "basebackup-speed: POST compact took %.1f s: %d L0 merged, %d L1 written, %d image"
              + " layers (%d pages)%n",
          secondsSince(c0),
          c.l0Merged(),
          c.l1Written(),
          c.imageLayers(),
          c.imagePages());
      z.pageserver().checkpoint(tenant, timeline);
      z.ok("stop");
    } catch (RuntimeException | Error e) {
      z.close();
      throw e;
    }
    // a kept repository outlives this run: the same directory, opened as one that is kept
    return keep == null ? z : new ZenithProcesses(projectRoot, z.root, 1);
  }

  private static void setOptions(ZenithProcesses z, Map<String, String> options)
      throws IOException {
    Path toml = z.pageserverDir().resolve("pageserver.toml");
    String text = Files.readString(toml);
    for (Map.Entry<String, String> e : options.entrySet()) {
      text = text.replaceAll("(?m)^" + e.getKey() + " = .*$", e.getKey() + " = " + e.getValue());
    }
    Files.writeString(toml, text);
  }

  private Sample discarded(
      String jar, String what, ZenithProcesses z, TenantId tenant, TimelineId timeline) {
    PgConnectOptions options =
        PgConnectOptions.builder()
            .host("127.0.0.1")
            .port(z.pgPort)
            .user("postgres")
            .password(RepoTokens.admin(z.repo))
            .database("postgres")
            .applicationName("bench")
            .connectTimeout(Duration.ofSeconds(10))
            .build();
    PgConnection conn = PgConnection.connect(options).block(Duration.ofSeconds(30));
    try {
      long t0 = System.nanoTime();
      Long bytes =
          conn.copyOut("basebackup " + tenant + " " + timeline)
              .map(ByteBuffer::remaining)
              .reduce(0L, Long::sum)
              .block(Duration.ofMinutes(30));
      return new Sample(jar, what, bytes, secondsSince(t0));
    } finally {
      conn.close().block(Duration.ofSeconds(10));
    }
  }

  private Sample cliFetch(String jar, ZenithProcesses z, TenantId tenant, TimelineId timeline)
      throws IOException {
    Lsn lsn = Lsn.parse(z.pageserver().timeline(tenant, timeline).lastRecordLsn());
    Path target = scratch.resolve("bb-" + System.nanoTime());
    long t0 = System.nanoTime();
    Basebackups.Result r =
        Basebackups.fetch(
            new InetSocketAddress("127.0.0.1", z.pgPort),
            RepoTokens.admin(z.repo),
            tenant,
            timeline,
            lsn,
            target,
            z.pg,
            false,
            b -> {});
    double s = secondsSince(t0);
    BenchMain.deleteTree(target);
    return new Sample(jar, "CLI fetch (extracted)", r.bytes(), s);
  }

  /** {@link Basebackup#stream} in this process, the pageserver stopped (one owner at a time). */
  private static List<Sample> inProcess(Path pageserverDir, TenantId tenant, TimelineId timeline) {
    PageserverConfig config = PageserverConfig.load(pageserverDir);
    List<Sample> out = new ArrayList<>();
    try (LayerStore store = LayerStore.open(pageserverDir, config.layerStoreConfig());
        WalRedoManager redo =
            WalRedoManager.start(
                io.zenith.pg.PgDistribution.detect(),
                WalRedoConfig.defaults().withMaxProcessesPerTenant(2),
                new SimpleMeterRegistry())) {
      Timeline t = store.timeline(tenant, timeline);
      Lsn lsn = t.lastRecordLsn();
      PageReconstructor pages = new PageReconstructor(PageReconstructor.using(redo), 0);
      int readers = Runtime.getRuntime().availableProcessors();
      reactor.core.scheduler.Scheduler sched =
          reactor.core.scheduler.Schedulers.newBoundedElastic(readers, 10_000, "bench-read");
      try {
        Map<String, Basebackup.Reading> readings = new LinkedHashMap<>();
        readings.put("sequential", Basebackup.Reading.sequential());
        readings.put(
            readers + " readers, window " + 4 * readers,
            new Basebackup.Reading(sched, 4 * readers));
        for (int i = 0; i < 2; i++) {
          for (Map.Entry<String, Basebackup.Reading> r : readings.entrySet()) {
            System.out.println(
                "basebackup-speed: in-process, "
                    + r.getKey()
                    + ", pass "
                    + i
                    + "; "
                    + HistoryBench.uptime());
            long t0 = System.nanoTime();
            long bytes =
                Basebackup.stream(t, lsn, pages, PageChecksum::set, r.getValue())
                    .map(ByteBuffer::remaining)
                    .reduce(0L, Long::sum)
                    .block(Duration.ofMinutes(30));
            out.add(
                new Sample(
                    "build",
                    "in-process `Basebackup.stream`, " + r.getKey() + (i == 0 ? " (cold)" : ""),
                    bytes,
                    secondsSince(t0)));
          }
        }
      } finally {
        sched.dispose();
      }
    }
    return out;
  }

  private static void print(int scale, List<Sample> samples) {
    System.out.println();
    System.out.println(
        "basebackup of pgbench scale " + scale + ", compacted; " + HistoryBench.uptime());
    System.out.println();
    System.out.println("| jar | what | MB | seconds | MB/s |");
    System.out.println("|---|---|---:|---:|---:|");
    for (Sample s : samples) {
      System.out.printf(
          Locale.ROOT,
          "| %s | %s | %s | %.1f | %s |%n",
          s.jar(),
          s.what(),
          s.bytes() == 0 ? "" : String.format(Locale.ROOT, "%.0f", s.bytes() / 1e6),
          s.seconds(),
          s.bytes() == 0 ? "" : String.format(Locale.ROOT, "%.0f", s.mbPerSecond()));
    }
  }

  static double secondsSince(long t0) {
    return (System.nanoTime() - t0) / 1e9;
  }
}
