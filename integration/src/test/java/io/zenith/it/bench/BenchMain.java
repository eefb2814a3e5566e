package io.zenith.it.bench;

import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentFiles;
import io.zenith.wal.WalSegmentName;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * {@code make bench}: records a WAL sample with stock PostgreSQL 15 (pgbench initialization and a
 * tpcb-like run), runs the JMH decoder benchmarks on it, times {@code pg_waldump} on the same
 * files, and prints the ratios as a Markdown table for {@code docs/benchmarks.md}; then the WAL
 * redo round trip ({@link WalRedoBenchmark}, its own workload).
 *
 * <p>Not a test: timings never fail anything.
 */
public final class BenchMain {
  private BenchMain() {}

  /**
   * Runs the sections named in {@code args} (all when none): {@code decode}, {@code redo}, {@code
   * pageserver}, {@code safekeeper}, {@code pgbench}, {@code durability}, {@code basebackup},
   * {@code history} (issue 11's parts, or one of them as {@code history-<part>}, see {@link
   * HistoryBench}); {@code basebackup-speed} ({@link BasebackupSpeedBench}), {@code remote-upload}
   * ({@link RemoteUploadBench}), {@code remote-attach} ({@link RemoteAttachBench}), {@code
   * lazy-start} and {@code lazy-speed} ({@link LazyComputeBench}), {@code lazy-scan} ({@link
   * LazyScanBench}) run only when named.
   */
  public static void main(String[] args) throws Exception {
    Path root = Path.of(System.getProperty("zenith.project.root", "."));
    java.util.Set<String> sections =
        args.length == 0
            ? java.util.Set.of(
                "decode",
                "redo",
                "pageserver",
                "safekeeper",
                "pgbench",
                "durability",
                "basebackup",
                "history")
            : java.util.Set.of(args);
    if (sections.contains("decode")) {
      decode(root);
    }
    if (sections.contains("redo")) {
      System.out.println();
      System.out.println("| WAL redo: records per request | µs per request | µs per record |");
      System.out.println("|---:|---:|---:|");
      for (RunResult r : runRedoJmh()) {
        int n = Integer.parseInt(r.getParams().getParam("records"));
        double us = r.getPrimaryResult().getScore();
        System.out.printf(Locale.ROOT, "| %d | %.0f | %.1f |%n", n, us, us / n);
      }
    }
    if (sections.contains("pageserver")) {
      pageserver(root);
    }
    if (sections.contains("safekeeper")) {
      safekeeperAppend(root);
    }
    Path scratch = Files.createDirectories(root.resolve("integration/target/bench-scratch"));
    if (sections.contains("pgbench")) {
      System.out.println();
      System.out.println("| workload | system | TPS | latency ms | TPS ratio to vanilla |");
      System.out.println("|---|---|---:|---:|---:|");
      for (String mode : List.of("tpcb-like", "select-only")) {
        PgbenchComparison.tpcb(scratch, 10, 8, java.time.Duration.ofSeconds(60), mode)
            .forEach(System.out::println);
      }
    }
    if (sections.contains("durability")) {
      System.out.println();
      System.out.println(
          "| tpcb-like, scale 10, 8 clients, 60 s | TPS | latency ms | TPS ratio to vanilla |"
              + " commit p50 ms | commit p99 ms |");
      System.out.println("|---|---:|---:|---:|---:|---:|");
      PgbenchComparison.safekeepers(scratch, 10, 8, java.time.Duration.ofSeconds(60))
          .forEach(System.out::println);
    }
    if (sections.contains("basebackup")) {
      System.out.println();
      System.out.println(
          "| pgbench scale | database | basebackup | fetch time | fetch speed | compute start (fetch + extract + start) |");
      System.out.println("|---:|---:|---:|---:|---:|---:|");
      for (int scale : new int[] {7, 70}) {
        System.out.println(PgbenchComparison.basebackupAndStart(scratch, scale));
      }
    }
    if (sections.contains("basebackup-speed")) {
      new BasebackupSpeedBench(root, scratch).run();
    }
    if (sections.contains("remote-upload")) {
      RemoteUploadBench.run(scratch);
    }
    if (sections.contains("remote-attach")) {
      new RemoteAttachBench(root, scratch).run();
    }
    if (sections.contains("lazy-start")) {
      new LazyComputeBench(root, scratch).start();
    }
    if (sections.contains("lazy-speed")) {
      new LazyComputeBench(root, scratch).speed();
    }
    if (sections.contains("lazy-scan")) {
      new LazyScanBench(root, scratch).run();
    }
    java.util.Set<String> history = new java.util.HashSet<>();
    for (String part : HistoryBench.PARTS) {
      if (sections.contains("history") || sections.contains("history-" + part)) {
        history.add(part);
      }
    }
    if (!history.isEmpty()) {
      HistoryBench.run(root, scratch, history);
    }
    deleteTree(scratch);
  }

  private static void decode(Path root) throws Exception {
    Path sample = root.resolve("integration/target/bench-wal");
    if (!Files.isDirectory(sample) || sampleFiles(sample).isEmpty()) {
      recordSample(sample);
    }
    List<Path> files = sampleFiles(sample);
    long bytes = usefulBytes(files);
    long records = countRecords(files);
    System.out.printf(
        Locale.ROOT,
        "sample: %d segments, %.1f MiB of WAL, %d records%n",
        files.size(),
        bytes / 1048576.0,
        records);

    double ours = runJmh(sample, "assemble");
    double oursDecode = runJmh(sample, "assembleAndDecode");
    double waldump = timePgWaldump(files, false);
    double waldumpStats = timePgWaldump(files, true);
    double mib = bytes / 1048576.0;
    System.out.println();
    System.out.println(
        "| what | ms per sample | MiB/s | records/s | speed relative to pg_waldump --stats |");
    System.out.println("|---|---:|---:|---:|---:|");
    row("Zenith assembler (pages, reassembly, CRC)", ours, mib, records, waldumpStats);
    row("Zenith assembler + record decoder", oursDecode, mib, records, waldumpStats);
    row("pg_waldump --stats=record (decode, no output)", waldumpStats, mib, records, waldumpStats);
    row("pg_waldump (decode + print every record)", waldump, mib, records, waldumpStats);
  }

  /** Ingest, flush and GetPage stage benchmarks on the pageserver sample. */
  private static void pageserver(Path root) throws Exception {
    PageserverSample sample = PageserverSample.get(root);
    double mib = sample.walBytes / 1048576.0;
    System.out.printf(Locale.ROOT, "%npageserver sample: %.1f MiB of WAL after the import%n", mib);
    RunResult ingest = jmh(IngestBenchmark.class, ".ingest$", root, 3, 5);
    double ingestMs = ingest.getPrimaryResult().getScore();
    RunResult flush = jmh(LayerFlushBenchmark.class, ".flush$", root, 2, 3);
    double flushMs = flush.getPrimaryResult().getScore();
    System.out.println();
    System.out.println("| stage | ms per sample | MiB/s |");
    System.out.println("|---|---:|---:|");
    System.out.printf(
        Locale.ROOT,
        "| ingest (decode + WalIngest into the in-memory layer) | %.0f | %.0f |%n",
        ingestMs,
        mib / (ingestMs / 1000));
    System.out.printf(
        Locale.ROOT,
        "| flush of the frozen layer (layer file + RocksDB commit) | %.0f | %.0f (of WAL) |%n",
        flushMs,
        mib / (flushMs / 1000));
    System.out.println();
    System.out.println("| GetPage@LSN, deltas after the base image | µs per page |");
    System.out.println("|---:|---:|");
    for (RunResult r : jmhAll(GetPageBenchmark.class, ".getPage$", root)) {
      System.out.printf(
          Locale.ROOT,
          "| %s | %.0f |%n",
          r.getParams().getParam("deltas"),
          r.getPrimaryResult().getScore());
    }
  }

  /** {@link SafekeeperAppendBenchmark}: the log's append + group fsync against raw writes. */
  private static void safekeeperAppend(Path root) throws Exception {
    SafekeeperAppendBenchmark probe = new SafekeeperAppendBenchmark();
    probe.root = root.toString();
    probe.sample();
    double mib = probe.bytes() / (1024.0 * 1024);
    java.util.Map<String, Double> ms = new java.util.TreeMap<>();
    for (RunResult r : jmhAll(SafekeeperAppendBenchmark.class, ".(log|raw)$", root)) {
      ms.put(
          r.getParams().getBenchmark().replaceAll(".*\\.", "")
              + " "
              + r.getParams().getParam("groupKiB"),
          r.getPrimaryResult().getScore());
    }
    System.out.println();
    System.out.printf(Locale.ROOT, "safekeeper append sample: %.1f MiB of WAL%n", mib);
    System.out.println("| fsync every | WalLog MiB/s | raw write + fsync MiB/s | ratio |");
    System.out.println("|---:|---:|---:|---:|");
    for (String group : List.of("128", "1024", "16384")) {
      double log = mib / (ms.get("log " + group) / 1000);
      double raw = mib / (ms.get("raw " + group) / 1000);
      System.out.printf(
          Locale.ROOT, "| %s KiB | %.0f | %.0f | %.2f× |%n", group, log, raw, log / raw);
    }
  }

  private static RunResult jmh(Class<?> c, String method, Path root, int warmups, int iterations)
      throws RunnerException {
    Options opt =
        new OptionsBuilder()
            .include(c.getName() + method)
            .param("root", root.toString())
            .forks(1)
            .warmupIterations(warmups)
            .measurementIterations(iterations)
            .jvmArgs("-Xmx6g", "--enable-native-access=ALL-UNNAMED")
            .build();
    return new Runner(opt).runSingle();
  }

  private static java.util.Collection<RunResult> jmhAll(Class<?> c, String method, Path root)
      throws RunnerException {
    Options opt =
        new OptionsBuilder()
            .include(c.getName() + method)
            .param("root", root.toString())
            .forks(1)
            .warmupIterations(3)
            .warmupTime(org.openjdk.jmh.runner.options.TimeValue.seconds(2))
            .measurementIterations(5)
            .measurementTime(org.openjdk.jmh.runner.options.TimeValue.seconds(2))
            .jvmArgs("-Xmx4g", "--enable-native-access=ALL-UNNAMED")
            .build();
    return new Runner(opt).run();
  }

  /** Runs pgbench against a cluster (as PostgreSQL's user); returns its output. */
  static String pgbench(PgCluster c, List<String> args) {
    List<String> all = new ArrayList<>(args);
    all.addAll(
        List.of("-h", "127.0.0.1", "-p", Integer.toString(c.port()), "-U", "postgres", "postgres"));
    return c.run("pgbench", all);
  }

  static void deleteTree(Path p) throws IOException {
    if (!Files.exists(p)) {
      return;
    }
    try (java.util.stream.Stream<Path> walk = Files.walk(p)) {
      for (Path f : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.delete(f);
      }
    }
  }

  /** {@link WalRedoBenchmark}: one redo process, requests of 1, 10 and 100 records. */
  private static java.util.Collection<RunResult> runRedoJmh() throws RunnerException {
    Options opt =
        new OptionsBuilder()
            .include(WalRedoBenchmark.class.getName() + ".roundTrip$")
            .forks(1)
            .warmupIterations(3)
            .warmupTime(org.openjdk.jmh.runner.options.TimeValue.seconds(3))
            .measurementIterations(5)
            .measurementTime(org.openjdk.jmh.runner.options.TimeValue.seconds(3))
            .jvmArgs("-Xmx1g", "--enable-native-access=ALL-UNNAMED")
            .build();
    return new Runner(opt).run();
  }

  private static void row(String what, double ms, double mib, long records, double reference) {
    System.out.printf(
        Locale.ROOT,
        "| %s | %.0f | %.0f | %.0f | %.2f× |%n",
        what,
        ms,
        mib / (ms / 1000),
        records / (ms / 1000),
        reference / ms);
  }

  private static double runJmh(Path sample, String method) throws RunnerException {
    Options opt =
        new OptionsBuilder()
            .include(WalDecodeBenchmark.class.getName() + "." + method + "$")
            .param("walDir", sample.toString())
            .forks(1)
            .warmupIterations(3)
            .warmupTime(org.openjdk.jmh.runner.options.TimeValue.seconds(3))
            .measurementIterations(5)
            .measurementTime(org.openjdk.jmh.runner.options.TimeValue.seconds(3))
            .jvmArgs("-Xmx4g", "--enable-native-access=ALL-UNNAMED")
            .build();
    RunResult r = new Runner(opt).runSingle();
    return r.getPrimaryResult().getScore();
  }

  /** Best of five wall-clock runs of pg_waldump over the sample, in milliseconds. */
  private static double timePgWaldump(List<Path> files, boolean statsOnly)
      throws IOException, InterruptedException {
    Path bin = io.zenith.pg.PgDistribution.detect().bin("pg_waldump");
    List<String> cmd = new ArrayList<>(List.of(bin.toString()));
    if (statsOnly) {
      cmd.add("--stats=record");
    }
    cmd.add("-p");
    cmd.add(files.getFirst().getParent().toString());
    cmd.add(files.getFirst().getFileName().toString());
    cmd.add(files.getLast().getFileName().toString());
    double best = Double.MAX_VALUE;
    for (int i = 0; i < 5; i++) {
      long t0 = System.nanoTime();
      Process p =
          new ProcessBuilder(cmd)
              .redirectOutput(ProcessBuilder.Redirect.DISCARD)
              .redirectError(ProcessBuilder.Redirect.DISCARD)
              .start();
      p.waitFor();
      best = Math.min(best, (System.nanoTime() - t0) / 1e6);
    }
    return best;
  }

  /** The sample's segment files: consecutive, in name order. */
  static List<Path> sampleFiles(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    return WalSegmentFiles.listSegments(dir);
  }

  static Lsn startOf(Path segment, int segmentSize) {
    return WalSegmentName.parse(segment.getFileName().toString(), segmentSize)
        .orElseThrow()
        .startLsn(segmentSize);
  }

  /** Bytes from the start of the sample to the end of its last record. */
  static long usefulBytes(List<Path> files) throws IOException {
    return readAll(files)
        .lastRecordEnd()
        .minus(startOf(files.getFirst(), (int) Files.size(files.getFirst())));
  }

  static long countRecords(List<Path> files) throws IOException {
    long[] n = {0};
    readAll(files, r -> n[0]++);
    return n[0];
  }

  private static WalRecordAssembler readAll(List<Path> files) throws IOException {
    return readAll(files, r -> {});
  }

  private static WalRecordAssembler readAll(
      List<Path> files, java.util.function.Consumer<WalRecord> each) throws IOException {
    int segmentSize = (int) Files.size(files.getFirst());
    WalRecordAssembler a =
        new WalRecordAssembler(
            startOf(files.getFirst(), segmentSize),
            WalRecordAssembler.Options.DEFAULT.withSegmentSize(segmentSize));
    for (Path f : files) {
      Iterator<WalRecord> it = a.feed(ByteBuffer.wrap(Files.readAllBytes(f)));
      it.forEachRemaining(each);
    }
    return a;
  }

  /**
   * Runs pgbench against a fresh cluster and copies the WAL it wrote (from the first segment to the
   * one holding the end of WAL) into {@code dir}.
   */
  static void recordSample(Path dir) throws IOException {
    System.out.println("recording a WAL sample with PostgreSQL 15 and pgbench (about a minute)...");
    try (PgCluster c = PgCluster.initdb()) {
      c.configure(
          Map.of("max_wal_size", "4GB", "checkpoint_timeout", "1h", "wal_keep_size", "4GB"));
      c.start();
      pgbench(c, List.of("-i", "-s", "10", "-q"));
      pgbench(c, List.of("-T", "20", "-c", "4", "-j", "2", "-n"));
      c.stop();
      List<Path> all = WalSegmentFiles.listSegments(c.walDir());
      Files.createDirectories(dir);
      WalRecordAssembler a = readAll(consecutive(all));
      long lastSeg = a.lastRecordEnd().segmentNumber(a.segmentSize());
      for (Path f : consecutive(all)) {
        long seg =
            WalSegmentName.parse(f.getFileName().toString(), a.segmentSize())
                .orElseThrow()
                .segmentNumber();
        if (seg <= lastSeg) {
          Files.copy(f, dir.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        }
      }
    }
  }

  private static List<Path> consecutive(List<Path> all) throws IOException {
    int segSize = WalSegmentFiles.readSegmentSize(all.getFirst());
    List<Path> run = new ArrayList<>(List.of(all.getFirst()));
    for (int i = 1; i < all.size(); i++) {
      long prev =
          WalSegmentName.parse(all.get(i - 1).getFileName().toString(), segSize)
              .orElseThrow()
              .segmentNumber();
      long cur =
          WalSegmentName.parse(all.get(i).getFileName().toString(), segSize)
              .orElseThrow()
              .segmentNumber();
      if (cur != prev + 1) {
        break;
      }
      run.add(all.get(i));
    }
    return run;
  }
}
