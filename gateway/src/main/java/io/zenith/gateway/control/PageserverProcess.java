package io.zenith.gateway.control;

import io.zenith.gateway.cli.Main;
import io.zenith.wal.DurableFiles;
import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * The repository's pageserver as a background OS process: {@code zenith pageserver run -D
 * <repo>/pageserver}, started through {@code setsid} (its own session: a terminal's Ctrl-C does not
 * reach it) with the same {@code java} and jar as the running CLI, output appended to {@code
 * pageserver.log}, its pid in {@code pageserver.pid}. Not thread-safe (one CLI command at a time
 * per repository: the repository lock).
 */
public final class PageserverProcess {
  public static final String PID_FILE = "pageserver.pid";
  public static final String LOG_FILE = "pageserver.log";
  private static final Duration START_TIMEOUT = Duration.ofSeconds(90);
  private static final Duration STOP_TIMEOUT = Duration.ofSeconds(60);

  private final Path dir;
  private final PageserverClient client;
  private final String pgOsUser;

  PageserverProcess(Path dir, PageserverClient client, String pgOsUser) {
    this.dir = dir;
    this.client = client;
    this.pgOsUser = pgOsUser;
  }

  public Path dataDir() {
    return dir;
  }

  public Path logFile() {
    return dir.resolve(LOG_FILE);
  }

  public Path pidFile() {
    return dir.resolve(PID_FILE);
  }

  /** The running pageserver process of this repository, if any (a stale pid file is ignored). */
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
    return ProcessHandle.of(pid).filter(ProcessHandle::isAlive).filter(PageserverProcess::isOurs);
  }

  /** The pid belongs to a pageserver (pids are reused after a crash). */
  private static boolean isOurs(ProcessHandle p) {
    Optional<String> cmd = p.info().commandLine();
    if (cmd.isEmpty()) {
      // not readable: trust the pid file
      return true;
    }
    return cmd.get().contains("pageserver") && cmd.get().contains(" run ");
  }

  /** Starts the pageserver and waits until its API answers. Returns its pid. */
  public long start() {
    Optional<ProcessHandle> already = running();
    if (already.isPresent()) {
      throw new ControlPlaneException(
          "the pageserver is already running (pid " + already.get().pid() + ")");
    }
    if (client.isUp()) {
      throw new ControlPlaneException(
          "another server already answers at "
              + client.baseUrl()
              + " (a pageserver of another repository?); stop it or change [pageserver]"
              + " listen_http in config.toml and pageserver/pageserver.toml");
    }
    List<String> cmd = new ArrayList<>(List.of("setsid"));
    cmd.addAll(javaCommand());
    cmd.addAll(List.of("pageserver", "run", "-D", dir.toAbsolutePath().toString()));
    ProcessBuilder pb =
        new ProcessBuilder(cmd)
            .directory(dir.toFile())
            .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
            .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile().toFile()))
            .redirectErrorStream(true);
    if (pgOsUser != null) {
      pb.environment().put("ZENITH_PG_OS_USER", pgOsUser);
    }
    long logStart = logSize();
    Process p;
    try {
      p = pb.start();
      DurableFiles.write(pidFile(), (p.pid() + "\n").getBytes(StandardCharsets.US_ASCII));
    } catch (IOException e) {
      throw new ControlPlaneException("cannot start the pageserver: " + e.getMessage(), e);
    }
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    while (System.nanoTime() < deadline) {
      if (!p.isAlive()) {
        deletePidFile();
        throw new ControlPlaneException(
            "the pageserver exited during startup (exit "
                + p.exitValue()
                + "): "
                + lastLogLine(logStart)
                + " (see "
                + logFile()
                + ")");
      }
      if (client.isUp()) {
        return p.pid();
      }
      sleep(200);
    }
    p.destroyForcibly();
    deletePidFile();
    throw new ControlPlaneException(
        "the pageserver did not answer at "
            + client.baseUrl()
            + " within "
            + START_TIMEOUT.toSeconds()
            + " s (see "
            + logFile()
            + ")");
  }

  /**
   * Stops the pageserver: SIGTERM (it flushes what it ingested and closes its files), SIGKILL if it
   * has not exited within a minute. Returns false if it was not running.
   */
  public boolean stop() {
    Optional<ProcessHandle> p = running();
    if (p.isEmpty()) {
      deletePidFile();
      return false;
    }
    ProcessHandle h = p.get();
    h.destroy();
    if (!waitForExit(h, STOP_TIMEOUT)) {
      h.destroyForcibly();
      waitForExit(h, Duration.ofSeconds(10));
    }
    deletePidFile();
    return true;
  }

  private static boolean waitForExit(ProcessHandle h, Duration timeout) {
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

  /** {@code java [options] -jar zenith.jar}, or {@code -cp} when running from classes (tests). */
  static List<String> javaCommand() {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("--enable-native-access=ALL-UNNAMED");
    cmd.add("-Dzenith.log.level=INFO");
    cmd.add("-XX:+ExitOnOutOfMemoryError");
    String opts = System.getenv("ZENITH_PAGESERVER_JAVA_OPTS");
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

  private long logSize() {
    try {
      return Files.exists(logFile()) ? Files.size(logFile()) : 0;
    } catch (IOException e) {
      return 0;
    }
  }

  /** The last non-empty line the process wrote to the log since {@code from}. */
  private String lastLogLine(long from) {
    try (RandomAccessFile f = new RandomAccessFile(logFile().toFile(), "r")) {
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
      return lines.isEmpty() ? "no output" : lines.get(lines.size() - 1).strip();
    } catch (IOException e) {
      return "no log";
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
