package io.zenith.it.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.Map;

/**
 * JDK AOT caches (JEP 483, created in one step as of JEP 514) for the JVMs the CLI tests start: one
 * for CLI commands, one for the pageserver, one for safekeepers. The CLI tests start hundreds of
 * short JVMs (every command) and restart servers dozens of times, on two cores the servers under
 * test share; with a cache a JVM finds the classes it needs already parsed, verified and linked.
 * Measured on the two-core machine under load: {@code zenith start} (pageserver and one safekeeper)
 * 19-28 s → 10-11 s, {@code pg start} 16 → 8-12 s, {@code status} 1.7-2.5 → 1.3 s of CPU.
 *
 * <p>A cache changes no behaviour: the same classes from the same jar, loaded earlier. Each is made
 * once per test JVM (the jar is rebuilt by every {@code verify}, and a cache names the jar's size
 * and modification time) by a training run in a throw-away repository: {@code zenith start} with
 * the servers recording, {@code pg start} and some SQL through the WAL path, {@code zenith stop},
 * at whose end the servers' JVMs write their caches. A cache that is missing (training failed, a
 * server was SIGKILLed before it wrote its cache) is simply not used; a cache the JVM cannot use
 * (another JDK) is ignored silently ({@code -Xlog:aot=off}), so neither makes a test fail.
 *
 * <p>Thread-safe: training runs once, under the class's lock.
 */
public final class AotCaches {
  /** JVM options every run with a cache gets: a cache the JVM refuses must not print a line. */
  private static final String QUIET = "-Xlog:aot=off -Xlog:cds=off";

  /** The caches' options by environment variable; empty until trained, or if training failed. */
  private static Map<String, String> options;

  private AotCaches() {}

  /**
   * Options by launcher variable: {@code ZENITH_JAVA_OPTS} additions for a CLI command ({@code
   * cli}), and {@code ZENITH_PAGESERVER_JAVA_OPTS} / {@code ZENITH_SAFEKEEPER_JAVA_OPTS} for the
   * servers commands start (also used for {@code pageserver run} / {@code safekeeper run} in the
   * foreground). Trains the caches on first use.
   */
  static synchronized Map<String, String> options() {
    if (options == null) {
      options = train();
    }
    return options;
  }

  /**
   * The JVM options that give {@code zenith safekeeper run} its cache ({@code SafekeeperSet}'s OS
   * processes); empty without one.
   */
  public static String safekeeperRun() {
    return options().getOrDefault("ZENITH_SAFEKEEPER_JAVA_OPTS", "");
  }

  private static Map<String, String> train() {
    if (Boolean.getBoolean("zenith.test.noAotCache")) {
      return Map.of();
    }
    Path dir = Path.of("target", "aot").toAbsolutePath();
    long t0 = System.nanoTime();
    try {
      Files.createDirectories(dir);
      Map<String, Path> caches =
          Map.of(
              "cli", dir.resolve("cli.aot"),
              "ZENITH_PAGESERVER_JAVA_OPTS", dir.resolve("pageserver.aot"),
              "ZENITH_SAFEKEEPER_JAVA_OPTS", dir.resolve("safekeeper.aot"),
              "ZENITH_AGENT_JAVA_OPTS", dir.resolve("agent.aot"));
      for (Path p : caches.values()) {
        Files.deleteIfExists(p);
        Files.deleteIfExists(recording(p));
      }
      try (ZenithRepo z = new ZenithRepo(false, false)) {
        z.init();
        Map<String, String> servers = new HashMap<>();
        servers.put("ZENITH_PAGESERVER_JAVA_OPTS", output(caches, "ZENITH_PAGESERVER_JAVA_OPTS"));
        servers.put("ZENITH_SAFEKEEPER_JAVA_OPTS", output(caches, "ZENITH_SAFEKEEPER_JAVA_OPTS"));
        // the compute agent of the lazy compute below (where FUSE works), written at its stop
        servers.put("ZENITH_AGENT_JAVA_OPTS", output(caches, "ZENITH_AGENT_JAVA_OPTS"));
        z.runWith(servers, "start");
        z.ok("pg", "create", "main");
        // The command with the widest reach: election over libpq, basebackup, pg_ctl, HTTP.
        ZenithRepo.Result started =
            z.runWith(
                Map.of(
                    "ZENITH_JAVA_OPTS",
                    output(caches, "cli").strip(),
                    "ZENITH_AGENT_JAVA_OPTS",
                    servers.get("ZENITH_AGENT_JAVA_OPTS")),
                "pg",
                "start",
                "main");
        int port = ZenithRepo.portIn(started, "main");
        // WAL through safekeepers into the pageserver: decoding, ingest, a layer flush.
        z.sql(
            port,
            "CREATE TABLE t AS SELECT g AS id, repeat('x', 200) AS pad FROM"
                + " generate_series(1, 20000) g; CHECKPOINT;");
        z.ok("status");
        z.ok("branch", "list");
        z.runWith(servers, "stop");
      }
      Map<String, String> made = new HashMap<>();
      StringBuilder report = new StringBuilder();
      for (var e : caches.entrySet()) {
        Path cache = recording(e.getValue());
        if (Files.isRegularFile(cache) && Files.size(cache) > 0) {
          Files.move(cache, e.getValue(), StandardCopyOption.ATOMIC_MOVE);
          made.put(e.getKey(), "-XX:AOTCache=" + e.getValue() + " " + QUIET);
          report.append(' ').append(e.getValue().getFileName());
        }
      }
      System.out.printf(
          "AOT caches made in %d s:%s%n", (System.nanoTime() - t0) / 1_000_000_000, report);
      return Map.copyOf(made);
    } catch (IOException | RuntimeException | AssertionError e) {
      // Without caches the tests run as they would anyway, only slower.
      System.out.println("AOT caches not made (the tests run without them): " + e);
      return Map.of();
    }
  }

  /** Where a training JVM writes the cache that becomes {@code cache} once it is complete. */
  private static Path recording(Path cache) {
    return cache.resolveSibling(cache.getFileName() + ".new");
  }

  private static String output(Map<String, Path> caches, String key) {
    return "-XX:AOTCacheOutput=" + recording(caches.get(key)) + " " + QUIET;
  }
}
