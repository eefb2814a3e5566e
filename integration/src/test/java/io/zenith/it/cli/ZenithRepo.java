package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.zenith.it.support.RepoTokens;
import io.zenith.it.support.TestPorts;
import io.zenith.pg.PgDistribution;
import io.zenith.replication.auth.Claims;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A throw-away Zenith repository driven through the real {@code ./zenith} launcher, each command a
 * separate process (as a user runs them), with free ports for the pageserver and computes. {@link
 * #close()} stops everything it may have started (computes through pg_ctl or SIGKILL, the
 * pageserver through {@code zenith stop} or its pid file) and deletes the files. Not thread-safe.
 */
final class ZenithRepo implements AutoCloseable {
  private static final Duration COMMAND_TIMEOUT = Duration.ofMinutes(4);

  final Path root;
  final Path repo;
  final int httpPort;
  final int pgPort;
  final int computePortBase;
  final int safekeeperPortBase;
  final PgDistribution pg = PgDistribution.detect();
  private final Path launcher;

  /** Whether commands and the servers they start use the {@link AotCaches}. */
  private final boolean aot;

  /** Environment variables every command gets (and the servers it starts): {@link #environment}. */
  private Map<String, String> environment = Map.of();

  /** What one command printed and returned. */
  record Result(int exit, String out, String err, String services) {
    Result(int exit, String out, String err) {
      this(exit, out, err, "");
    }

    List<String> lines() {
      return out.lines().toList();
    }

    @Override
    public String toString() {
      return "exit " + exit + "\n--- stdout ---\n" + out + "--- stderr ---\n" + err + services;
    }
  }

  /**
   * A repository under a new temp directory; {@code traversable} makes that directory 0755 so
   * PostgreSQL's user can reach computes inside the repository (else they go under /tmp).
   */
  ZenithRepo(boolean traversable) throws IOException {
    this(traversable, true);
  }

  /** As {@link #ZenithRepo(boolean)}; {@code aot} false: without AOT caches (their training). */
  ZenithRepo(boolean traversable, boolean aot) throws IOException {
    this.aot = aot;
    Path projectRoot = Path.of(System.getProperty("zenith.project.root", ".")).toAbsolutePath();
    Path jar = projectRoot.resolve("gateway/target/zenith.jar");
    assumeTrue(
        Files.isRegularFile(jar),
        () -> jar + " has not been built (these tests run in `mvn verify`); skipping");
    launcher = projectRoot.resolve("zenith");
    root = Files.createTempDirectory("zenith-cli-");
    if (traversable) {
      Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxr-xr-x"));
    }
    repo = root.resolve(".zenith");
    httpPort = freePort();
    pgPort = freePort();
    computePortBase = TestPorts.freeRange(8);
    safekeeperPortBase = TestPorts.freeRange(2 * 7);
  }

  /**
   * Environment variables for every later command and the servers it starts, e.g. S3 credentials
   * for a repository whose remote storage is an S3 server (the AWS SDK's default chain reads them).
   */
  void environment(Map<String, String> env) {
    environment = Map.copyOf(env);
  }

  static int freePort() {
    return TestPorts.free();
  }

  /** {@code zenith init} with this repository's ports and the default number of safekeepers. */
  Result init() {
    return ok(initArgs().toArray(String[]::new));
  }

  /** {@code zenith init --safekeepers n} with this repository's ports. */
  Result init(int safekeepers) {
    List<String> args = initArgs();
    args.addAll(List.of("--safekeepers", Integer.toString(safekeepers)));
    return ok(args.toArray(String[]::new));
  }

  List<String> initArgs() {
    return new ArrayList<>(
        List.of(
            "init",
            "--pageserver-http",
            "127.0.0.1:" + httpPort,
            "--pageserver-pg",
            "127.0.0.1:" + pgPort,
            "--compute-port-base",
            Integer.toString(computePortBase),
            "--safekeeper-port-base",
            Integer.toString(safekeeperPortBase)));
  }

  /**
   * A token of the repository's key (made by {@code zenith init}, ADR 0016), as the CLI mints them:
   * what a test sends the services, which check tokens on every request.
   */
  String token(Claims claims) {
    return RepoTokens.issue(repo, claims);
  }

  /** An admin token of the repository ({@link #token}). */
  String adminToken() {
    return token(Claims.admin());
  }

  /** The HTTP port of safekeeper {@code id} (as init lays them out). */
  int safekeeperHttpPort(int id) {
    return safekeeperPortBase + 2 * (id - 1);
  }

  /** Runs {@code ./zenith args...} with this repository; returns what it did. */
  Result run(String... args) {
    return runIn(repo, args);
  }

  /** Runs {@code ./zenith args...} with this repository and extra environment variables. */
  Result runWith(Map<String, String> env, String... args) {
    return runIn(repo, env, args);
  }

  /** Runs {@code ./zenith args...} with {@code ZENITH_REPO_DIR=repoDir}. */
  Result runIn(Path repoDir, String... args) {
    return runIn(repoDir, Map.of(), args);
  }

  private Result runIn(Path repoDir, Map<String, String> env, String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add(launcher.toString());
    cmd.addAll(List.of(args));
    try {
      Path out = Files.createTempFile("zenith-out-", ".txt");
      Path err = Files.createTempFile("zenith-err-", ".txt");
      try {
        ProcessBuilder pb =
            new ProcessBuilder(cmd)
                .directory(root.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectOutput(out.toFile())
                .redirectError(err.toFile());
        pb.environment().put("ZENITH_REPO_DIR", repoDir.toString());
        pb.environment().remove("ZENITH_DEBUG");
        Map<String, String> caches = aot ? AotCaches.options() : Map.of();
        // A command runs on C1 alone: the launcher's own choice (ADR 0020).
        if (!(args.length >= 2 && args[1].equals("run"))) {
          pb.environment().put("ZENITH_JAVA_OPTS", caches.getOrDefault("cli", ""));
        } else if (args[0].equals("pageserver") || args[0].equals("safekeeper")) {
          // a server in the foreground: the cache its background runs use
          String server = "ZENITH_" + args[0].toUpperCase(java.util.Locale.ROOT) + "_JAVA_OPTS";
          if (caches.containsKey(server)) {
            pb.environment().put("ZENITH_JAVA_OPTS", caches.get(server));
          }
        }
        // servers that `start`, `pageserver start`, `safekeeper start` … launch
        for (String server :
            List.of(
                "ZENITH_PAGESERVER_JAVA_OPTS",
                "ZENITH_SAFEKEEPER_JAVA_OPTS",
                "ZENITH_AGENT_JAVA_OPTS")) {
          if (caches.containsKey(server)) {
            pb.environment().put(server, caches.get(server));
          }
        }
        pb.environment().putAll(environment);
        pb.environment().putAll(env);
        Process p = pb.start();
        if (!p.waitFor(COMMAND_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
          p.destroyForcibly();
          throw new AssertionError("timed out: zenith " + String.join(" ", args));
        }
        int exit = p.exitValue();
        return new Result(
            exit,
            Files.readString(out),
            Files.readString(err),
            exit == 0 ? "" : ServiceReport.of(repoDir));
      } finally {
        Files.deleteIfExists(out);
        Files.deleteIfExists(err);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /** Runs a command that must succeed, with nothing on stderr. */
  Result ok(String... args) {
    Result r = run(args);
    assertThat(r.exit()).as("zenith %s\n%s", String.join(" ", args), r).isZero();
    return r;
  }

  /**
   * {@code zenith status}, which must exit with {@code exit}: 0 when the pageserver and every
   * safekeeper run, 3 when one is down.
   */
  Result status(int exit) {
    Result r = run("status");
    assertThat(r.exit()).as("zenith status\n%s", r).isEqualTo(exit);
    return r;
  }

  /** Runs a command that must fail with exit {@code exit} and one line on stderr; returns it. */
  String fails(int exit, String... args) {
    Result r = run(args);
    assertThat(r.exit()).as("zenith %s\n%s", String.join(" ", args), r).isEqualTo(exit);
    List<String> err = r.err().lines().toList();
    assertThat(err).as("stderr of zenith %s", String.join(" ", args)).isNotEmpty();
    assertThat(err.get(0)).startsWith("zenith ");
    assertThat(r.err()).doesNotContain("\tat ").doesNotContain("Exception");
    if (exit == 1) {
      assertThat(err).as("one line: %s", r.err()).hasSize(1);
    }
    return err.get(0);
  }

  /**
   * {@code zenith pg start compute}, which must succeed; returns the port its last line names
   * ("compute … is running …: psql postgresql://postgres@127.0.0.1:PORT/postgres"). Spares the
   * {@code pg show} of {@link #port}: every command is a JVM start, about a second of CPU.
   */
  int start(String compute) {
    return portIn(ok("pg", "start", compute), compute);
  }

  /** The port that the output {@code started} of {@code zenith pg start compute} names. */
  static int portIn(Result started, String compute) {
    Matcher m =
        Pattern.compile(
                "(?m)^compute "
                    + Pattern.quote(compute)
                    + " is running .*: psql postgresql://postgres@127\\.0\\.0\\.1:(\\d+)/postgres$")
            .matcher(started.out());
    assertThat(m.find())
        .as("pg start %s printed its connection string\n%s", compute, started)
        .isTrue();
    return Integer.parseInt(m.group(1));
  }

  /** The port of a compute, from {@code zenith pg show}. */
  int port(String compute) {
    String address = show(compute).get("address");
    return Integer.parseInt(address.substring(address.lastIndexOf(':') + 1));
  }

  /** {@code zenith pg show} as a map. */
  Map<String, String> show(String compute) {
    Map<String, String> m = new java.util.LinkedHashMap<>();
    for (String l : ok("pg", "show", compute).lines()) {
      int colon = l.indexOf(": ");
      assertThat(colon).as("key: value line %s", l).isPositive();
      m.put(l.substring(0, colon), l.substring(colon + 2));
    }
    return m;
  }

  /** Runs SQL on a compute through psql; returns unaligned tuples-only output, trimmed. */
  String sql(int port, String sql) {
    PsqlResult r = psql(port, sql);
    assertThat(r.exit()).as("psql: %s\n%s", sql, r.output()).isZero();
    return r.output().strip();
  }

  record PsqlResult(int exit, String output) {}

  PsqlResult psql(int port, String sql) {
    try {
      Path out = Files.createTempFile("zenith-psql-", ".txt");
      try {
        Process p =
            psqlCommand(port, "-f", "-")
                .redirectErrorStream(true)
                .redirectOutput(out.toFile())
                .start();
        try (var w = p.getOutputStream()) {
          w.write(sql.getBytes(StandardCharsets.UTF_8));
        }
        if (!p.waitFor(COMMAND_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
          p.destroyForcibly();
          throw new AssertionError("psql timed out: " + sql);
        }
        return new PsqlResult(p.exitValue(), Files.readString(out));
      } finally {
        Files.deleteIfExists(out);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  ProcessBuilder psqlCommand(int port, String... args) {
    List<String> cmd =
        new ArrayList<>(
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
                "postgres"));
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd);
    pb.environment().put("PGCONNECT_TIMEOUT", "10");
    return pb;
  }

  /** Runs a shell command (signals go through the shell's kill: procps is not everywhere). */
  static int sh(String command) {
    try {
      Process p = new ProcessBuilder("sh", "-c", command).redirectErrorStream(true).start();
      p.getInputStream().readAllBytes();
      return p.waitFor();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /** The pageserver's pid from its pid file, if there is one. */
  Optional<Long> pageserverPid() {
    return pid(repo.resolve("pageserver/pageserver.pid"));
  }

  private static Optional<Long> pid(Path f) {
    try {
      return Files.exists(f)
          ? Optional.of(Long.parseLong(Files.readString(f).strip()))
          : Optional.empty();
    } catch (IOException | NumberFormatException e) {
      return Optional.empty();
    }
  }

  /** Safekeeper {@code id}'s pid from its pid file, if there is one. */
  Optional<Long> safekeeperPid(int id) {
    return pid(repo.resolve("safekeepers/sk" + id + "/safekeeper.pid"));
  }

  /**
   * Copies every log of the repository (pageserver, safekeepers, computes) to {@code target}, for a
   * failure to be diagnosed after {@link #close()} deleted them; returns where.
   */
  Path keepLogs(Path target) {
    for (Path dir : List.of(repo, computeDataDir())) {
      if (!Files.isDirectory(dir)) {
        continue;
      }
      try (Stream<Path> walk = Files.walk(dir)) {
        for (Path log : walk.filter(f -> f.toString().matches(".*\\.(log|out)")).toList()) {
          Path to = target.resolve(dir.relativize(log).toString().replace('/', '_'));
          Files.createDirectories(target);
          Files.copy(log, to, StandardCopyOption.REPLACE_EXISTING);
        }
      } catch (IOException e) {
        System.err.println("could not keep the logs of " + dir + ": " + e);
      }
    }
    return target;
  }

  /** A test's body on a repository (see {@link #keepingLogsOnFailure}). */
  @FunctionalInterface
  interface Body {
    void run(ZenithRepo z) throws Exception;
  }

  /**
   * Runs {@code body}; when it fails, keeps the repository's logs under {@code
   * target/chaos-logs/<name>-<time>} (for a failure seen only in CI) and says where on stderr.
   */
  void keepingLogsOnFailure(String name, Body body) throws Exception {
    try {
      body.run(this);
    } catch (Throwable t) {
      Path kept = keepLogs(Path.of("target", "chaos-logs", name + "-" + java.time.Instant.now()));
      System.err.println(name + " failed; logs kept in " + kept);
      throw t;
    }
  }

  String pageserverLog() {
    try {
      return Files.readString(repo.resolve("pageserver/pageserver.log"));
    } catch (IOException e) {
      return "";
    }
  }

  /** Where compute data directories live (compute_data_dir of config.toml). */
  Path computeDataDir() {
    try {
      Matcher m =
          Pattern.compile("(?m)^compute_data_dir = \"([^\"]+)\"")
              .matcher(Files.readString(repo.resolve("config.toml")));
      return m.find() ? Path.of(m.group(1)) : repo.resolve("computes");
    } catch (IOException e) {
      return repo.resolve("computes");
    }
  }

  /** Replaces a setting of pageserver/pageserver.toml (the pageserver must be stopped). */
  void setPageserverOption(String key, String value) throws IOException {
    Path f = repo.resolve("pageserver/pageserver.toml");
    String text = Files.readString(f);
    Pattern setting = Pattern.compile("(?m)^" + Pattern.quote(key) + " = .*$");
    if (!setting.matcher(text).find()) {
      throw new IllegalArgumentException(f + " has no line for " + key + ":\n" + text);
    }
    text = setting.matcher(text).replaceAll(Matcher.quoteReplacement(key + " = " + value));
    Files.writeString(f, text);
  }

  @Override
  public void close() {
    if (Files.exists(repo.resolve("config.toml"))) {
      Result r = run("stop");
      if (r.exit() != 0) {
        System.err.println("zenith stop failed during cleanup: " + r);
      }
    }
    // whatever survived: computes by their postmaster.pid, the pageserver by its pid file
    Path data = computeDataDir();
    if (Files.isDirectory(data)) {
      try (Stream<Path> s = Files.list(data)) {
        for (Path node : s.toList()) {
          Path pid = node.resolve("pgdata/postmaster.pid");
          if (Files.exists(pid)) {
            String first = Files.readAllLines(pid).get(0).strip();
            sh("kill -9 " + first + " 2>/dev/null");
          }
          // a lazy compute's agent (ADR 0021), and whatever it left mounted
          pid(node.resolve("agent/ready")).ifPresent(a -> sh("kill -9 " + a + " 2>/dev/null"));
          for (String d : List.of("base", "global")) {
            sh("fusermount3 -u -z '" + node.resolve("pgdata/" + d) + "' 2>/dev/null");
          }
        }
      } catch (IOException e) {
        // best effort
      }
    }
    pageserverPid().ifPresent(pid -> sh("kill -9 " + pid + " 2>/dev/null"));
    for (int id = 1; id <= 7; id++) {
      safekeeperPid(id).ifPresent(pid -> sh("kill -9 " + pid + " 2>/dev/null"));
    }
    deleteTree(data);
    deleteTree(root);
  }

  static void deleteTree(Path root) {
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
