package io.zenith.gateway.control;

import io.zenith.gateway.cli.Main;
import io.zenith.wal.DurableFiles;
import java.io.File;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.jspecify.annotations.Nullable;

/**
 * One of the repository's servers as a background OS process: {@code zenith <kind> run -D <dir>}
 * (the pageserver, a safekeeper), started through {@code setsid} (its own session: a terminal's
 * Ctrl-C does not reach it) with the same {@code java} and jar as the running CLI. It logs to
 * {@code <kind>.log} in its directory itself ({@code --log-file}: rotated by size, {@code
 * LogOutput}); its stdout and stderr (the banner, a startup error, whatever the JVM prints) are
 * appended to {@code <kind>.out}; its pid is in {@code <kind>.pid}. Start waits until the server's
 * API answers; stop is SIGTERM, then SIGKILL after a bound. Not thread-safe (one CLI command at a
 * time per repository: the repository lock).
 */
public final class ServiceProcess {
  private static final Duration START_TIMEOUT = Duration.ofSeconds(90);

  private final String name;
  private final String kind;
  private final Path dir;
  private final String url;
  private final BooleanSupplier answers;
  private final String conflictHint;
  private final Duration stopTimeout;
  private final String javaOptsVariable;
  private final @Nullable String pgOsUser;
  private final Runnable beforeStart;

  /**
   * @param name how messages name it: "the pageserver", "safekeeper 2"
   * @param kind the subcommand that runs it, and the stem of its pid and log files
   * @param dir its data directory
   * @param url where its API answers, for messages
   * @param answers whether something answers at its API address (never throws)
   * @param conflictHint what to do when another server answers there
   * @param stopTimeout how long SIGTERM gets before SIGKILL
   * @param javaOptsVariable the environment variable with extra JVM options for it
   * @param beforeStart what is renewed in its data directory at each start (its token)
   */
  ServiceProcess(
      String name,
      String kind,
      Path dir,
      String url,
      BooleanSupplier answers,
      String conflictHint,
      Duration stopTimeout,
      String javaOptsVariable,
      @Nullable String pgOsUser,
      Runnable beforeStart) {
    this.beforeStart = beforeStart;
    this.name = name;
    this.kind = kind;
    this.dir = dir;
    this.url = url;
    this.answers = answers;
    this.conflictHint = conflictHint;
    this.stopTimeout = stopTimeout;
    this.javaOptsVariable = javaOptsVariable;
    this.pgOsUser = pgOsUser;
  }

  /** "the pageserver", "safekeeper 2". */
  public String name() {
    return name;
  }

  public Path dataDir() {
    return dir;
  }

  public Path logFile() {
    return dir.resolve(kind + ".log");
  }

  /** Where the process's stdout and stderr go: what it prints before (or instead of) logging. */
  public Path outFile() {
    return dir.resolve(kind + ".out");
  }

  public Path pidFile() {
    return dir.resolve(kind + ".pid");
  }

  public Duration stopTimeout() {
    return stopTimeout;
  }

  /** The running process, if any (a stale pid file is ignored). */
  public Optional<ProcessHandle> running() {
    Path f = pidFile();
    if (!Files.exists(f)) {
      return Optional.empty();
    }
    long pid;
    try {
      pid = Long.parseLong(Files.readString(f).strip());
    } catch (IOException | NumberFormatException e) {
      return Optional.empty();
    }
    return ProcessHandle.of(pid).filter(ProcessHandle::isAlive).filter(this::isOurs);
  }

  /** The pid runs this server on this directory (pids are reused after a crash). */
  private boolean isOurs(ProcessHandle p) {
    Optional<String> cmd = p.info().commandLine();
    if (cmd.isEmpty()) {
      // not readable: trust the pid file
      return true;
    }
    return cmd.get().contains(kind + " run -D " + dir.toAbsolutePath());
  }

  /** Starts the server and waits until its API answers. Returns its pid. */
  public long start() {
    Optional<ProcessHandle> already = running();
    if (already.isPresent()) {
      throw new ControlPlaneException(
          name + " is already running (pid " + already.get().pid() + ")");
    }
    if (answers.getAsBoolean()) {
      throw new ControlPlaneException(
          "another server already answers at " + url + " (" + conflictHint + ")");
    }
    beforeStart.run();
    List<String> cmd = new ArrayList<>(List.of("setsid"));
    cmd.addAll(javaCommand(javaOptsVariable));
    cmd.addAll(List.of(kind, "run", "-D", dir.toAbsolutePath().toString()));
    cmd.addAll(List.of("--log-file", logFile().toAbsolutePath().toString()));
    ProcessBuilder pb =
        new ProcessBuilder(cmd)
            .directory(dir.toFile())
            .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
            .redirectOutput(ProcessBuilder.Redirect.appendTo(outFile().toFile()))
            .redirectErrorStream(true);
    if (pgOsUser != null) {
      pb.environment().put("ZENITH_PG_OS_USER", pgOsUser);
    }
    long outStart = size(outFile());
    long logStart = size(logFile());
    Process p;
    try {
      p = pb.start();
      DurableFiles.write(pidFile(), (p.pid() + "\n").getBytes(StandardCharsets.US_ASCII));
    } catch (IOException e) {
      throw new ControlPlaneException("cannot start " + name + ": " + e.getMessage(), e);
    }
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    while (System.nanoTime() < deadline) {
      if (!p.isAlive()) {
        deletePidFile();
        throw new ControlPlaneException(
            name
                + " exited during startup (exit "
                + p.exitValue()
                + "): "
                + lastProblem(outStart, logStart)
                + " (see "
                + outFile()
                + " and "
                + logFile()
                + ")");
      }
      if (answers.getAsBoolean()) {
        return p.pid();
      }
      sleep(200);
    }
    p.destroyForcibly();
    deletePidFile();
    throw new ControlPlaneException(
        name
            + " did not answer at "
            + url
            + " within "
            + START_TIMEOUT.toSeconds()
            + " s (see "
            + logFile()
            + ")");
  }

  /**
   * Starts the server like {@link #start()}, telling {@code out} as PostgreSQL's tools do:
   * "starting safekeeper 1 ... running (pid 123) after 1.5 s: http …, libpq …, log …" (or "...
   * failed" before the error).
   */
  public long start(PrintWriter out, String listenHttp, String listenPg) {
    out.print("starting " + name + " ...");
    out.flush();
    long t0 = System.nanoTime();
    long pid;
    try {
      pid = start();
    } catch (ControlPlaneException e) {
      out.println(" failed");
      throw e;
    }
    out.printf(
        Locale.ROOT,
        " running (pid %d) after %.1f s: http %s, libpq %s, log %s%n",
        pid,
        (System.nanoTime() - t0) / 1e9,
        listenHttp,
        listenPg,
        logFile());
    return pid;
  }

  /**
   * Stops the server: SIGTERM (it makes what it holds durable and closes its files), SIGKILL if it
   * has not exited within its stop timeout. Returns false if it was not running.
   */
  public boolean stop() {
    Optional<ProcessHandle> p = running();
    if (p.isEmpty()) {
      deletePidFile();
      return false;
    }
    ProcessHandle h = p.get();
    h.destroy();
    if (!waitForExit(h, stopTimeout)) {
      h.destroyForcibly();
      waitForExit(h, Duration.ofSeconds(10));
    }
    deletePidFile();
    return true;
  }

  /** Whether {@code h} exited within {@code timeout}. */
  static boolean waitForExit(ProcessHandle h, Duration timeout) {
    try {
      h.onExit().get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      return true;
    } catch (java.util.concurrent.TimeoutException e) {
      return false;
    } catch (java.util.concurrent.ExecutionException e) {
      return !h.isAlive();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return !h.isAlive();
    }
  }

  private void deletePidFile() {
    try {
      Files.deleteIfExists(pidFile());
    } catch (IOException e) {
      // a stale pid file is ignored anyway
    }
  }

  /**
   * {@code java [options] -jar zenith.jar}, or {@code -cp} when running from classes (tests); extra
   * options from the environment variable {@code optsVariable}.
   */
  static List<String> javaCommand(String optsVariable) {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("--enable-native-access=ALL-UNNAMED");
    cmd.add("-Dzenith.log.level=INFO");
    cmd.add("-XX:+ExitOnOutOfMemoryError");
    String opts = System.getenv(optsVariable);
    if (opts != null && !opts.isBlank()) {
      cmd.addAll(Arrays.asList(opts.strip().split("\\s+")));
    }
    Path code;
    try {
      code = Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    } catch (URISyntaxException | SecurityException | NullPointerException e) {
      throw new ControlPlaneException("cannot tell where the zenith jar is: " + e);
    }
    if (Files.isRegularFile(code)) {
      cmd.add("-jar");
      cmd.add(code.toString());
    } else {
      cmd.add("-cp");
      cmd.add(System.getProperty("java.class.path"));
      cmd.add(Main.class.getName());
    }
    return cmd;
  }

  /** The size of {@code file}, 0 if it is missing or unreadable: where new output starts. */
  static long size(Path file) {
    try {
      return Files.exists(file) ? Files.size(file) : 0;
    } catch (IOException e) {
      return 0;
    }
  }

  /**
   * What a process that exited during startup said: its last error line on stderr (the one-line
   * {@code error:} of its command), else in its log.
   */
  private String lastProblem(long outFrom, long logFrom) {
    String out = lastLine(outFile(), outFrom);
    String said = out.isEmpty() ? lastLine(logFile(), logFrom) : out;
    return said.isEmpty() ? "no output" : said;
  }

  /**
   * The last error line {@code file} got since {@code from}, else its last non-empty line; empty
   * when it got none.
   */
  static String lastLine(Path file, long from) {
    try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
      long len = f.length();
      long start = Math.max(from, len - 64 * 1024);
      byte[] b = new byte[(int) (len - start)];
      f.seek(start);
      f.readFully(b);
      List<String> lines =
          new String(b, StandardCharsets.UTF_8).lines().filter(l -> !l.isBlank()).toList();
      for (int i = lines.size() - 1; i >= 0; i--) {
        String l = lines.get(i);
        if (l.contains("error:") || l.contains("ERROR") || l.contains("Exception")) {
          return l.strip();
        }
      }
      return lines.isEmpty() ? "" : lines.get(lines.size() - 1).strip();
    } catch (IOException e) {
      return "";
    }
  }

  static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ControlPlaneException("interrupted");
    }
  }
}
