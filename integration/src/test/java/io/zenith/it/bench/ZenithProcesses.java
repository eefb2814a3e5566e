package io.zenith.it.bench;

import io.zenith.gateway.control.PageserverClient;
import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.it.support.RepoTokens;
import io.zenith.it.support.TestPorts;
import io.zenith.pg.PgDistribution;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A throw-away repository run by the real {@code ./zenith} launcher (pageserver, safekeepers and
 * computes as separate OS processes, as {@code make run} starts them) for the benchmarks; the
 * benchmark twin of the CLI tests' {@code ZenithRepo}, which asserts through JUnit. {@link #close}
 * stops everything and deletes the files. Not thread-safe, except {@link #sizeOf} and the clients.
 */
final class ZenithProcesses implements AutoCloseable {
  private static final Duration COMMAND = Duration.ofMinutes(10);

  final Path root;
  final Path repo;
  final int httpPort;
  final int pgPort;
  final int computePortBase;
  final int safekeeperPortBase;
  final PgDistribution pg = PgDistribution.detect();
  private final Path launcher;
  private final int safekeepers;
  private final boolean keep;

  /** The jar commands run ({@code ZENITH_JAR}); null: the launcher's default. */
  private Path jar;

  /** Options for the JVMs of later commands ({@code ZENITH_JAVA_OPTS}); empty: none. */
  private String javaOpts = "";

  /** Environment of every command (and the servers they start), e.g. AWS credentials. */
  private final Map<String, String> env;

  /**
   * {@code zenith init --safekeepers n} in a new directory under {@code scratch}, then {@code
   * pageserver.toml}'s keys replaced by {@code pageserverOptions} (TOML values, quoted as needed).
   */
  ZenithProcesses(Path projectRoot, Path scratch, int safekeepers, Map<String, String> options)
      throws IOException {
    this(projectRoot, scratch, safekeepers, options, List.of(), Map.of());
  }

  /**
   * As {@link #ZenithProcesses(Path, Path, int, Map)}, with {@code initArgs} added to {@code zenith
   * init} (e.g. {@code --remote s3://…}) and {@code env} set for every command and the servers they
   * start (the AWS SDK's credentials).
   */
  ZenithProcesses(
      Path projectRoot,
      Path scratch,
      int safekeepers,
      Map<String, String> options,
      List<String> initArgs,
      Map<String, String> env)
      throws IOException {
    this.env = Map.copyOf(env);
    this.launcher = projectRoot.toAbsolutePath().resolve("zenith");
    this.safekeepers = safekeepers;
    this.root = Files.createTempDirectory(scratch, "zenith-");
    this.repo = root.resolve(".zenith");
    this.httpPort = TestPorts.free();
    this.pgPort = TestPorts.free();
    this.computePortBase = TestPorts.freeRange(8);
    this.safekeeperPortBase = TestPorts.freeRange(2 * 3);
    this.keep = false;
    List<String> init =
        new ArrayList<>(
            List.of(
                "init",
                "--pageserver-http",
                "127.0.0.1:" + httpPort,
                "--pageserver-pg",
                "127.0.0.1:" + pgPort,
                "--compute-port-base",
                Integer.toString(computePortBase),
                "--safekeeper-port-base",
                Integer.toString(safekeeperPortBase),
                "--safekeepers",
                Integer.toString(safekeepers)));
    init.addAll(initArgs);
    ok(init.toArray(String[]::new));
    Path toml = repo.resolve("pageserver/pageserver.toml");
    String text = Files.readString(toml);
    for (Map.Entry<String, String> e : options.entrySet()) {
      Pattern key = Pattern.compile("(?m)^" + Pattern.quote(e.getKey()) + " = .*$");
      String line = e.getKey() + " = " + e.getValue();
      text = key.matcher(text).find() ? key.matcher(text).replaceAll(line) : line + "\n" + text;
    }
    Files.writeString(toml, text);
  }

  /**
   * A repository an earlier run left in {@code root} (with {@code .zenith} in it), with the ports
   * it was made with; {@link #close} stops its processes and keeps its files.
   */
  ZenithProcesses(Path projectRoot, Path root, int safekeepers) throws IOException {
    this.launcher = projectRoot.toAbsolutePath().resolve("zenith");
    this.safekeepers = safekeepers;
    this.env = Map.of();
    this.root = root;
    this.repo = root.resolve(".zenith");
    this.keep = true;
    String cfg = Files.readString(repo.resolve("config.toml"));
    this.httpPort = port(cfg, "(?m)^listen_http = \"127.0.0.1:(\\d+)\"");
    this.pgPort = port(cfg, "(?m)^listen_pg = \"127.0.0.1:(\\d+)\"");
    this.computePortBase = port(cfg, "(?m)^compute_port_base = (\\d+)");
    this.safekeeperPortBase =
        port(cfg, "(?m)^\\[\\[safekeepers]]\\s+id = 1\\s+listen_http = \"127.0.0.1:(\\d+)\"");
  }

  private static int port(String config, String regex) {
    Matcher m = Pattern.compile(regex).matcher(config);
    if (!m.find()) {
      throw new IllegalStateException("config.toml has no match for " + regex);
    }
    return Integer.parseInt(m.group(1));
  }

  /**
   * Later commands run {@code jar} ({@code ZENITH_JAR}; null: the launcher's default) with {@code
   * javaOpts} ({@code ZENITH_JAVA_OPTS}; a server started by a command inherits them).
   */
  void useJar(Path jar, String javaOpts) {
    this.jar = jar;
    this.javaOpts = javaOpts;
  }

  /** Runs {@code ./zenith args...}; fails unless it exits 0. Returns its stdout. */
  String ok(String... args) {
    List<String> cmd = new ArrayList<>(List.of(launcher.toString()));
    cmd.addAll(List.of(args));
    try {
      Path out = Files.createTempFile("zenith-bench-out-", ".txt");
      try {
        ProcessBuilder pb =
            new ProcessBuilder(cmd)
                .directory(root.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectErrorStream(true)
                .redirectOutput(out.toFile());
        pb.environment().putAll(env);
        pb.environment().put("ZENITH_REPO_DIR", repo.toString());
        if (jar != null) {
          pb.environment().put("ZENITH_JAR", jar.toString());
        }
        if (!javaOpts.isEmpty()) {
          pb.environment().put("ZENITH_JAVA_OPTS", javaOpts);
        }
        Process p = pb.start();
        if (!p.waitFor(COMMAND.toSeconds(), TimeUnit.SECONDS)) {
          p.destroyForcibly();
          throw new IllegalStateException("timed out: zenith " + String.join(" ", args));
        }
        String text = Files.readString(out);
        if (p.exitValue() != 0) {
          throw new IllegalStateException(
              "zenith " + String.join(" ", args) + " exited " + p.exitValue() + ":\n" + text);
        }
        return text;
      } finally {
        Files.deleteIfExists(out);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** {@code zenith pg show NAME} as key → value. */
  Map<String, String> show(String compute) {
    Map<String, String> m = new LinkedHashMap<>();
    for (String l : ok("pg", "show", compute).lines().toList()) {
      int colon = l.indexOf(": ");
      if (colon > 0) {
        m.put(l.substring(0, colon), l.substring(colon + 2));
      }
    }
    return m;
  }

  /** Compute {@code main}'s port and its branch's ids. */
  record Main(int port, TenantId tenant, TimelineId timeline) {}

  /** {@code start}, {@code pg create main}, {@code pg start main}: what every part begins with. */
  Main startMain() {
    ok("start");
    ok("pg", "create", "main");
    ok("pg", "start", "main");
    return new Main(port("main"), tenant("main"), timeline("main"));
  }

  int port(String compute) {
    String address = show(compute).get("address");
    return Integer.parseInt(address.substring(address.lastIndexOf(':') + 1));
  }

  TenantId tenant(String compute) {
    return TenantId.parse(show(compute).get("tenant"));
  }

  TimelineId timeline(String compute) {
    return TimelineId.parse(show(compute).get("timeline"));
  }

  PageserverClient pageserver() {
    return new PageserverClient(
        new InetSocketAddress("127.0.0.1", httpPort), () -> RepoTokens.admin(repo));
  }

  SafekeeperClient safekeeper(int id) {
    return new SafekeeperClient(
        id,
        new InetSocketAddress("127.0.0.1", safekeeperPortBase + 2 * (id - 1)),
        Duration.ofSeconds(30),
        () -> RepoTokens.admin(repo));
  }

  Path pageserverDir() {
    return repo.resolve("pageserver");
  }

  Path safekeeperDir(int id) {
    return repo.resolve("safekeepers/sk" + id);
  }

  /** Runs SQL through psql on {@code port}; returns the unaligned, tuples-only output, trimmed. */
  String sql(int port, String sql) {
    return BenchProcess.run(
            List.of(
                pg.bin("psql").toString(),
                "-X",
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
                "postgres",
                "-c",
                sql),
            COMMAND)
        .strip();
  }

  /** pgbench against {@code port} with {@code args}; returns its output. */
  String pgbench(int port, Duration timeout, String... args) {
    List<String> cmd =
        new ArrayList<>(
            List.of(
                pg.bin("pgbench").toString(),
                "-h",
                "127.0.0.1",
                "-p",
                Integer.toString(port),
                "-U",
                "postgres"));
    cmd.addAll(List.of(args));
    cmd.add("postgres");
    return BenchProcess.run(cmd, timeout);
  }

  /** Bytes {@code du} counts for {@code dir} (blocks allocated), without {@code excluded}. */
  static long sizeOf(Path dir, String... excluded) {
    List<String> cmd = new ArrayList<>(List.of("du", "-s", "-B1"));
    for (String x : excluded) {
      cmd.add("--exclude=" + x);
    }
    cmd.add(dir.toString());
    String out = BenchProcess.run(cmd, Duration.ofMinutes(2));
    Matcher m = Pattern.compile("^(\\d+)").matcher(out.strip());
    if (!m.find()) {
      throw new IllegalStateException("unexpected du output: " + out);
    }
    return Long.parseLong(m.group(1));
  }

  @Override
  public void close() {
    try {
      ok("stop");
    } catch (RuntimeException e) {
      System.err.println("zenith stop failed: " + e.getMessage());
    }
    if (keep) {
      return;
    }
    Path computes = repo.resolve("computes");
    try {
      String cfg = Files.readString(repo.resolve("config.toml"));
      Matcher m = Pattern.compile("(?m)^compute_data_dir = \"([^\"]+)\"").matcher(cfg);
      if (m.find()) {
        computes = Path.of(m.group(1));
      }
      BenchMain.deleteTree(computes);
      BenchMain.deleteTree(root);
    } catch (IOException e) {
      System.err.println("could not delete " + root + ": " + e);
    }
  }

  /** Utility: a process run to completion with a bound. */
  static final class BenchProcess {
    private BenchProcess() {}

    /** Runs {@code cmd}; returns stdout+stderr; fails on a non-zero exit or after {@code max}. */
    static String run(List<String> cmd, Duration max) {
      try {
        Path out = Files.createTempFile("zenith-bench-", ".txt");
        try {
          ProcessBuilder pb =
              new ProcessBuilder(cmd)
                  .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                  .redirectErrorStream(true)
                  .redirectOutput(out.toFile());
          pb.environment().put("PGCONNECT_TIMEOUT", "10");
          Process p = pb.start();
          if (!p.waitFor(max.toSeconds(), TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("timed out: " + String.join(" ", cmd));
          }
          String text = Files.readString(out, StandardCharsets.UTF_8);
          if (p.exitValue() != 0) {
            throw new IllegalStateException(
                String.join(" ", cmd) + " exited " + p.exitValue() + ":\n" + text);
          }
          return text;
        } finally {
          Files.deleteIfExists(out);
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }
  }
}
