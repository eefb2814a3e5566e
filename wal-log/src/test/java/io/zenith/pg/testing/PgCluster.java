package io.zenith.pg.testing;

import io.zenith.pg.PgDistribution;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A throw-away stock PostgreSQL 15 cluster for tests: initdb in a fresh directory under the system
 * temp directory, start on a free loopback port, SQL through {@code psql}, stop, delete.
 *
 * <p>Runs PostgreSQL as an unprivileged user when the tests run as root (see {@link
 * PgDistribution}). The superuser is always {@code postgres}, authentication is {@code trust}, and
 * no Unix socket is created. Not thread-safe.
 */
public final class PgCluster implements AutoCloseable {
  private static final Duration TIMEOUT = Duration.ofMinutes(5);

  private final PgDistribution pg;
  private final Path base;
  private final Path dataDir;
  private final Path logFile;
  private int port;
  private boolean running;

  private PgCluster(PgDistribution pg, Path base) {
    this.pg = pg;
    this.base = base;
    this.dataDir = base.resolve("data");
    this.logFile = base.resolve("postgres.log");
  }

  /** Runs initdb with the given extra arguments (e.g. {@code --data-checksums}). */
  public static PgCluster initdb(String... initdbArgs) {
    PgDistribution pg = PgDistribution.detect();
    try {
      Path base = Files.createTempDirectory("zenith-pg-");
      pg.createOwnedDirectory(base);
      PgCluster c = new PgCluster(pg, base);
      List<String> args =
          new ArrayList<>(
              List.of(
                  "-D",
                  c.dataDir.toString(),
                  "-U",
                  "postgres",
                  "-A",
                  "trust",
                  "-E",
                  "UTF8",
                  "--locale=C"));
      args.addAll(List.of(initdbArgs));
      c.run("initdb", args);
      return c;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * A cluster whose data directory the caller fills ({@code fill} gets the path; the directory does
   * not exist yet), e.g. from a basebackup. The files are then handed to PostgreSQL's user with the
   * modes PostgreSQL requires (0700 directories, 0600 files).
   */
  public static PgCluster fromDataDirectory(java.util.function.Consumer<Path> fill) {
    PgDistribution pg = PgDistribution.detect();
    try {
      Path base = Files.createTempDirectory("zenith-pg-");
      pg.createOwnedDirectory(base);
      PgCluster c = new PgCluster(pg, base);
      fill.accept(c.dataDir);
      try (Stream<Path> walk = Files.walk(c.dataDir)) {
        for (Path p : walk.toList()) {
          Files.setPosixFilePermissions(
              p,
              java.nio.file.attribute.PosixFilePermissions.fromString(
                  Files.isDirectory(p) ? "rwx------" : "rw-------"));
          pg.giveToPgUser(p);
        }
      }
      return c;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Writes the configuration files a data directory from a basebackup lacks (trust auth). */
  public PgCluster writeMinimalConfig() {
    try {
      Files.writeString(dataDir.resolve("postgresql.conf"), "# written by PgCluster\n");
      Files.writeString(
          dataDir.resolve("pg_hba.conf"),
          "local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n");
      Files.writeString(dataDir.resolve("pg_ident.conf"), "");
      for (String f : List.of("postgresql.conf", "pg_hba.conf", "pg_ident.conf")) {
        pg.giveToPgUser(dataDir.resolve(f));
      }
      return this;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public PgDistribution distribution() {
    return pg;
  }

  public Path dataDir() {
    return dataDir;
  }

  public Path walDir() {
    return dataDir.resolve("pg_wal");
  }

  public Path logFile() {
    return logFile;
  }

  public int port() {
    return port;
  }

  /** Appends settings to postgresql.conf (they take effect at the next start). */
  public PgCluster configure(Map<String, String> settings) {
    StringBuilder sb = new StringBuilder("\n# set by PgCluster\n");
    settings.forEach(
        (k, v) -> sb.append(k).append(" = '").append(v.replace("'", "''")).append("'\n"));
    try {
      Files.writeString(dataDir.resolve("postgresql.conf"), sb, StandardOpenOption.APPEND);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return this;
  }

  /**
   * Starts the server and waits until it accepts connections: on a free port the first time, and on
   * the same port when started again after {@link #stop()}, so that its clients (a pageserver's WAL
   * receiver) can reconnect.
   */
  public PgCluster start() {
    if (port == 0) {
      port = freePort();
    }
    Map<String, String> s = new LinkedHashMap<>();
    s.put("port", Integer.toString(port));
    s.put("listen_addresses", "127.0.0.1");
    s.put("unix_socket_directories", "");
    configure(s);
    run(
        "pg_ctl",
        List.of("-D", dataDir.toString(), "-l", logFile.toString(), "-w", "-t", "120", "start"));
    running = true;
    return this;
  }

  /** Stops the server cleanly (mode fast: a shutdown checkpoint is written). */
  public void stop() {
    if (running) {
      run("pg_ctl", List.of("-D", dataDir.toString(), "-m", "fast", "-w", "-t", "120", "stop"));
      running = false;
    }
  }

  /** Runs SQL in {@code postgres}; returns psql's unaligned, tuples-only output. */
  public String sql(String sql) {
    return sql("postgres", sql);
  }

  public String sql(String database, String sql) {
    List<String> cmd =
        List.of(
            pg.bin("psql").toString(),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            Integer.toString(port),
            "-U",
            "postgres",
            "-d",
            database,
            "-f",
            "-");
    return exec(cmd, sql);
  }

  /** Runs a PostgreSQL program as the right OS user; returns its standard output. */
  public String run(String program, List<String> args) {
    return exec(pg.command(program, args), null);
  }

  private String exec(List<String> cmd, String stdin) {
    try {
      Path out = Files.createTempFile("zenith-pg-out-", ".txt");
      try {
        ProcessBuilder pb =
            new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile());
        if (stdin == null) {
          pb.redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        }
        Process p = pb.start();
        if (stdin != null) {
          try (var w = p.getOutputStream()) {
            w.write(stdin.getBytes(StandardCharsets.UTF_8));
          }
        }
        if (!p.waitFor(TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
          p.destroyForcibly();
          throw new IllegalStateException("timed out: " + String.join(" ", cmd));
        }
        String output = Files.readString(out, StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
          throw new IllegalStateException(
              "exit "
                  + p.exitValue()
                  + ": "
                  + String.join(" ", cmd)
                  + "\n"
                  + output
                  + serverLogTail());
        }
        return output;
      } finally {
        Files.deleteIfExists(out);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
  }

  private String serverLogTail() {
    try {
      if (!Files.exists(logFile)) {
        return "";
      }
      List<String> lines = Files.readAllLines(logFile);
      return "\n--- server log (tail) ---\n"
          + String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
    } catch (IOException e) {
      return "";
    }
  }

  private static int freePort() {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Stops the server (immediate mode) if running and deletes every file. */
  @Override
  public void close() {
    if (running) {
      try {
        run("pg_ctl", List.of("-D", dataDir.toString(), "-m", "immediate", "-w", "stop"));
      } catch (RuntimeException e) {
        // already gone
      }
      running = false;
    }
    deleteTree(base);
  }

  /** Deletes a directory tree; a missing one is fine. */
  public static void deleteTree(Path root) {
    if (!Files.exists(root)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(root)) {
      for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
