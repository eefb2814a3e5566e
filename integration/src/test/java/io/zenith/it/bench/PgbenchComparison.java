package io.zenith.it.bench;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.it.safekeeper.ComputeQuorum;
import io.zenith.it.support.ZenithEnv;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.LagLimits;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * pgbench on a compute backed by Zenith (an in-process pageserver as its synchronous {@code
 * remote_write} standby) against vanilla PostgreSQL 15 (local {@code synchronous_commit=on}) with
 * the same settings, in the same run; and the time to fetch a basebackup and start a compute on it
 * for databases of about 100 MB and 1 GB.
 */
final class PgbenchComparison {
  private PgbenchComparison() {}

  /** The settings both sides run with. */
  static final Map<String, String> SETTINGS =
      Map.of(
          "fsync", "on",
          "wal_log_hints", "on",
          "max_wal_size", "4GB",
          "checkpoint_timeout", "30min",
          "shared_buffers", "256MB",
          "max_connections", "50");

  record Run(double tps, double latencyMs) {}

  private static final Pattern TPS =
      Pattern.compile("tps = ([0-9.]+) \\(without initial connection time\\)");
  private static final Pattern LATENCY = Pattern.compile("latency average = ([0-9.]+) ms");

  static Run parse(String out) {
    Matcher t = TPS.matcher(out);
    Matcher l = LATENCY.matcher(out);
    if (!t.find() || !l.find()) {
      throw new IllegalStateException("unexpected pgbench output:\n" + out);
    }
    return new Run(Double.parseDouble(t.group(1)), Double.parseDouble(l.group(1)));
  }

  /** A timed pgbench run: {@code clients} clients on two threads, no vacuum first. */
  private static List<String> runArgs(int clients, Duration duration) {
    return List.of(
        "-c",
        Integer.toString(clients),
        "-j",
        "2",
        "-T",
        Long.toString(duration.toSeconds()),
        "-n");
  }

  static List<String> tpcb(Path scratch, int scale, int clients, Duration duration, String mode)
      throws IOException {
    List<String> runArgs = new ArrayList<>(runArgs(clients, duration));
    if (mode.equals("select-only")) {
      runArgs.add("-S");
    }
    Run vanilla;
    try (PgCluster c = PgCluster.initdb("--data-checksums")) {
      c.configure(SETTINGS).configure(Map.of("synchronous_commit", "on")).start();
      BenchMain.pgbench(c, List.of("-i", "-s", Integer.toString(scale), "-q"));
      vanilla = parse(BenchMain.pgbench(c, runArgs));
    }
    Run zenith;
    try (ZenithEnv env = ZenithEnv.start(Files.createTempDirectory(scratch, "pgbench-zenith-"));
        PgCluster c = env.primary(env.main(), SETTINGS)) {
      BenchMain.pgbench(c, List.of("-i", "-s", Integer.toString(scale), "-q"));
      zenith = parse(BenchMain.pgbench(c, runArgs));
      env.stop(c, env.main());
    }
    List<String> rows = new ArrayList<>();
    rows.add(
        String.format(
            Locale.ROOT,
            "| %s, scale %d, %d clients, %d s | vanilla PostgreSQL 15 | %.0f | %.2f | 1.00 |",
            mode,
            scale,
            clients,
            duration.toSeconds(),
            vanilla.tps(),
            vanilla.latencyMs()));
    rows.add(
        String.format(
            Locale.ROOT,
            "| %s, scale %d, %d clients, %d s | Zenith (pageserver as sync standby) | %.0f | %.2f | %.2f |",
            mode,
            scale,
            clients,
            duration.toSeconds(),
            zenith.tps(),
            zenith.latencyMs(),
            zenith.tps() / vanilla.tps()));
    return rows;
  }

  /** TPS, average latency and the p50/p99 of single-client commits of one setup. */
  record Durability(String system, Run run, double p50Ms, double p99Ms) {}

  /**
   * Where a commit waits: vanilla PostgreSQL 15 ({@code synchronous_commit=on}, local fsync) and
   * computes whose WAL goes to 1 and 3 safekeepers ({@code ANY majority}, compute fsync off), the
   * pageserver streaming from them. Each setup: {@code pgbench -i}, the tpcb-like run, then one
   * client committing single-row inserts for {@code probe} with every transaction's latency logged
   * ({@code pgbench -l}) for the percentiles.
   */
  static List<String> safekeepers(Path scratch, int scale, int clients, Duration duration)
      throws IOException {
    List<String> runArgs = runArgs(clients, duration);
    Duration probe = Duration.ofSeconds(15);
    List<Durability> all = new ArrayList<>();
    try (PgCluster c = PgCluster.initdb("--data-checksums")) {
      c.configure(SETTINGS).configure(Map.of("synchronous_commit", "on")).start();
      all.add(measure("vanilla PostgreSQL 15, synchronous_commit=on", c, scale, runArgs, probe));
    }
    for (int n : new int[] {1, 3}) {
      try (ZenithEnv env = ZenithEnv.start(Files.createTempDirectory(scratch, "pgbench-sk-"))) {
        Lsn start = env.pageserver().store().timeline(env.tenant(), env.main()).lastRecordLsn();
        Map<String, String> settings = new HashMap<>(SETTINGS);
        settings.putAll(ComputeQuorum.settings(n));
        settings.put("synchronous_commit", "on");
        try (PgCluster c = env.compute(env.main(), settings);
            ComputeQuorum q =
                new ComputeQuorum(
                    Files.createTempDirectory(scratch, "sk-"),
                    c,
                    env.tenant(),
                    env.main(),
                    start,
                    LagLimits.NONE,
                    n)) {
          env.pageserver()
              .startWalReceiver(
                  env.tenant(), env.main(), ApiModel.WalSource.fromSafekeepers(q.endpoints()));
          all.add(
              measure(
                  "Zenith, " + n + (n == 1 ? " safekeeper" : " safekeepers"),
                  c,
                  scale,
                  runArgs,
                  probe));
          c.stop();
          env.pageserver().stopWalReceiver(env.tenant(), env.main());
        }
      }
    }
    double base = all.getFirst().run().tps();
    List<String> rows = new ArrayList<>();
    for (Durability d : all) {
      rows.add(
          String.format(
              Locale.ROOT,
              "| %s | %.0f | %.2f | %.2f | %.2f | %.2f |",
              d.system(),
              d.run().tps(),
              d.run().latencyMs(),
              d.run().tps() / base,
              d.p50Ms(),
              d.p99Ms()));
    }
    return rows;
  }

  private static Durability measure(
      String system, PgCluster c, int scale, List<String> runArgs, Duration probe)
      throws IOException {
    BenchMain.pgbench(c, List.of("-i", "-s", Integer.toString(scale), "-q"));
    Run run = parse(BenchMain.pgbench(c, runArgs));
    c.sql("CREATE TABLE commit_probe (x int)");
    // pgbench runs as PostgreSQL's user: its log directory must be reachable from / (a temp
    // directory of ours is 0700).
    Path logs = Path.of("/tmp", "zenith-pgbench-log-" + java.util.UUID.randomUUID());
    c.distribution().createOwnedDirectory(logs);
    Path script = logs.resolve("commit.sql");
    Files.writeString(script, "INSERT INTO commit_probe VALUES (1);\n");
    c.distribution().giveToPgUser(script);
    BenchMain.pgbench(
        c,
        List.of(
            "-n",
            "-c",
            "1",
            "-T",
            Long.toString(probe.toSeconds()),
            "-f",
            script.toString(),
            "-l",
            "--log-prefix=" + logs.resolve("tx")));
    List<Long> micros = new ArrayList<>();
    try (var files = Files.list(logs)) {
      for (Path f : files.filter(f -> f.getFileName().toString().startsWith("tx")).toList()) {
        for (String line : Files.readAllLines(f)) {
          // client_id transaction_no time script_no time_epoch time_us: "time" is the latency.
          micros.add(Long.parseLong(line.split(" ")[2]));
        }
      }
    }
    BenchMain.deleteTree(logs);
    if (micros.isEmpty()) {
      throw new IllegalStateException("pgbench logged no transactions for " + system);
    }
    java.util.Collections.sort(micros);
    return new Durability(
        system, run, percentile(micros, 0.50) / 1000.0, percentile(micros, 0.99) / 1000.0);
  }

  private static long percentile(List<Long> sorted, double q) {
    return sorted.get(Math.min(sorted.size() - 1, (int) Math.floor(q * sorted.size())));
  }

  /** Database size after pgbench -i, basebackup bytes and MB/s, compute start time. */
  static String basebackupAndStart(Path scratch, int scale) throws IOException {
    try (ZenithEnv env = ZenithEnv.start(Files.createTempDirectory(scratch, "basebackup-"))) {
      long dbBytes;
      try (PgCluster c = env.primary(env.main(), SETTINGS)) {
        BenchMain.pgbench(c, List.of("-i", "-s", Integer.toString(scale), "-q"));
        dbBytes = Long.parseLong(c.sql("SELECT pg_database_size('postgres')").trim());
        env.stop(c, env.main());
      }
      env.pageserver().checkpoint(env.tenant(), env.main());
      long t0 = System.nanoTime();
      Path tar = env.basebackup(env.main(), null);
      double bbSeconds = (System.nanoTime() - t0) / 1e9;
      long tarBytes = Files.size(tar);
      Files.delete(tar);
      long t1 = System.nanoTime();
      try (PgCluster c = env.readOnly(env.main(), null)) {
        double startSeconds = (System.nanoTime() - t1) / 1e9;
        c.sql("SELECT count(*) FROM pgbench_branches");
        return String.format(
            Locale.ROOT,
            "| %d | %.0f MB | %.0f MB | %.1f s | %.0f MB/s | %.1f s |",
            scale,
            dbBytes / 1e6,
            tarBytes / 1e6,
            bbSeconds,
            tarBytes / 1e6 / bbSeconds,
            startSeconds);
      }
    }
  }
}
