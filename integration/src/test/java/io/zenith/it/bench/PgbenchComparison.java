package io.zenith.it.bench;

import io.zenith.it.support.ZenithEnv;
import io.zenith.pg.testing.PgCluster;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
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

  static List<String> tpcb(Path scratch, int scale, int clients, Duration duration, String mode)
      throws IOException {
    List<String> runArgs =
        new ArrayList<>(
            List.of(
                "-c",
                Integer.toString(clients),
                "-j",
                "2",
                "-T",
                Long.toString(duration.toSeconds()),
                "-n"));
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
