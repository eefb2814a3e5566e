package io.zenith.gateway.control;

import io.zenith.page.fuse.LazyMount;
import io.zenith.pg.PgDistribution;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.stream.Collectors;
import org.jspecify.annotations.Nullable;

/**
 * The compute agent of a lazy compute as a background OS process (ADR 0021): {@code zenith compute
 * agent} mounts the compute's {@code base/} and {@code global/} and writes {@code <agent>/ready}
 * (its pid) once both answer. It runs under a watchdog, {@code setsid sh -c '<agent>; …'}: when the
 * agent exits while its ready file still exists (it was killed, or crashed: a clean stop deletes
 * the file after unmounting), the shell stops the compute's PostgreSQL immediately, detaches the
 * dead mounts, deletes the overlay and writes {@code <agent>/failed}, which {@link #failed} reports
 * until the next start or stop. Files: {@code <dataRoot>/agent/} (seed, overlay, ready, failed,
 * token; rebuilt at every start) and {@code <dataRoot>/agent.log}, {@code agent.out}. Not
 * thread-safe (one CLI command at a time, under the repository lock).
 */
public final class ComputeAgent {
  /** Bounds the agent's start: a JVM start, two mounts and their first listings. */
  static final Duration START_TIMEOUT = Duration.ofSeconds(60);

  /** How long SIGTERM gets (unmounting both) before SIGKILL. */
  static final Duration STOP_TIMEOUT = Duration.ofSeconds(30);

  /** The environment variable with extra JVM options for agents (tests: an AOT cache). */
  public static final String JAVA_OPTS = "ZENITH_AGENT_JAVA_OPTS";

  private final ComputeNode node;

  public ComputeAgent(ComputeNode node) {
    this.node = node;
  }

  ComputeNode node() {
    return node;
  }

  /** {@code <dataRoot>/agent}: seed, overlay, ready and failed files, token. */
  public Path dir() {
    return node.dataRoot().resolve("agent");
  }

  public Path readyFile() {
    return dir().resolve("ready");
  }

  public Path failedFile() {
    return dir().resolve("failed");
  }

  private Path watchdogPidFile() {
    return dir().resolve("watchdog.pid");
  }

  public Path logFile() {
    return node.dataRoot().resolve("agent.log");
  }

  public Path outFile() {
    return node.dataRoot().resolve("agent.out");
  }

  /** The running agent, if its ready file names a live agent of this data directory. */
  public Optional<ProcessHandle> running() {
    return pidIn(readyFile()).flatMap(ProcessHandle::of).filter(this::isAgent);
  }

  private boolean isAgent(ProcessHandle p) {
    return p.isAlive()
        && p.info()
            .commandLine()
            .map(c -> c.contains("compute agent") && c.contains(node.pgdata().toString()))
            .orElse(true);
  }

  /**
   * Why the agent is not serving a compute it should serve, if so: the watchdog's note after the
   * agent died, or a ready file whose agent is gone (the watchdog died with it).
   */
  public Optional<String> failed() {
    if (Files.exists(failedFile())) {
      try {
        return Optional.of(Files.readString(failedFile()).strip());
      } catch (IOException e) {
        return Optional.of("the compute agent died");
      }
    }
    if (Files.exists(readyFile()) && running().isEmpty()) {
      return Optional.of("the compute agent is gone and nothing stopped its compute");
    }
    return Optional.empty();
  }

  /**
   * Starts the agent on the slim basebackup in the compute's data directory and waits (bounded)
   * until both mounts answer; returns its pid.
   *
   * @param token the password for the pageserver (a token of the compute's tenant), or null
   */
  public long start(
      Lsn lsn, InetSocketAddress pageserverPg, @Nullable String token, PgDistribution pg) {
    ComputeSpec spec = node.spec();
    List<String> agent = new ArrayList<>(ServiceProcess.javaCommand(JAVA_OPTS));
    agent.addAll(
        List.of(
            "compute",
            "agent",
            "-D",
            node.pgdata().toString(),
            "--work",
            dir().toString(),
            "--pageserver",
            pageserverPg.getHostString() + ":" + pageserverPg.getPort(),
            "--tenant",
            spec.tenantId(),
            "--timeline",
            spec.timelineId(),
            "--lsn",
            lsn.toString(),
            "--log-file",
            logFile().toString()));
    if (spec.primary()) {
      agent.add("--primary"); // reads at the latest LSN: GC never removes them (ADR 0021)
    }
    long outStart = ServiceProcess.size(outFile());
    Process p;
    try {
      Files.createDirectories(dir());
      Files.setPosixFilePermissions(dir(), PosixFilePermissions.fromString("rwx------"));
      if (token != null) {
        Path tokenFile = dir().resolve("token");
        DurableFiles.writeOwnerOnly(tokenFile, token.getBytes(StandardCharsets.US_ASCII));
        agent.addAll(List.of("--password-file", tokenFile.toString()));
      }
      p =
          new ProcessBuilder("setsid", "sh", "-c", watchdog(agent, pg))
              .directory(new File("/"))
              .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
              .redirectOutput(ProcessBuilder.Redirect.appendTo(outFile().toFile()))
              .redirectErrorStream(true)
              .start();
      DurableFiles.write(watchdogPidFile(), (p.pid() + "\n").getBytes(StandardCharsets.US_ASCII));
    } catch (IOException e) {
      throw new ControlPlaneException(
          "cannot start the compute agent of '" + spec.name() + "': " + e.getMessage(), e);
    }
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    while (System.nanoTime() < deadline) {
      Optional<ProcessHandle> up = running();
      if (up.isPresent()) {
        return up.get().pid();
      }
      if (!p.isAlive()) {
        clear();
        throw new ControlPlaneException(
            "the compute agent of '"
                + spec.name()
                + "' exited during startup: "
                + ServiceProcess.lastLine(outFile(), outStart)
                    .transform(l -> l.isEmpty() ? "no output" : l)
                + " (see "
                + logFile()
                + ")");
      }
      ServiceProcess.sleep(100);
    }
    // the agent, then its watchdog (which finds no ready file: nothing was served yet)
    p.descendants().forEach(ProcessHandle::destroyForcibly);
    ServiceProcess.waitForExit(p.toHandle(), Duration.ofSeconds(10));
    p.destroyForcibly();
    // an agent killed while mounting may leave a mount behind
    clear();
    throw new ControlPlaneException(
        "the compute agent of '"
            + spec.name()
            + "' did not mount within "
            + START_TIMEOUT.toSeconds()
            + " s (see "
            + logFile()
            + ")");
  }

  /**
   * The watchdog's script: run the agent; if it ends while its ready file exists, it did not stop
   * cleanly, so PostgreSQL must not go on reading a dead mount.
   */
  private String watchdog(List<String> agent, PgDistribution pg) {
    List<String> pgCtl =
        pg.command(
            "pg_ctl", List.of("-D", node.pgdata().toString(), "-m", "immediate", "-w", "stop"));
    String ready = quote(readyFile().toString());
    return quoted(agent)
        + "; rc=$?; if [ -e "
        + ready
        + " ]; then rm -f "
        + ready
        + "; "
        + quoted(pgCtl)
        + " >/dev/null 2>&1; fusermount3 -u -z "
        + quote(node.pgdata().resolve("base").toString())
        + " 2>/dev/null; fusermount3 -u -z "
        + quote(node.pgdata().resolve("global").toString())
        + " 2>/dev/null; rm -rf "
        + quote(dir().resolve("overlay").toString())
        + "; echo \"the compute agent exited with status $rc at $(date -u +%Y-%m-%dT%H:%M:%SZ);"
        + " its PostgreSQL was stopped\" > "
        + quote(failedFile().toString())
        + "; echo \"compute agent died (status $rc): PostgreSQL stopped, mounts detached\"; fi";
  }

  /**
   * Stops the agent (SIGTERM: it unmounts and deletes its overlay; SIGKILL after {@link
   * #STOP_TIMEOUT}), waits for its watchdog, then makes sure nothing stays mounted and deletes the
   * agent directory (which clears {@link #failed}). The compute's PostgreSQL must be stopped first.
   * Returns whether an agent was running.
   */
  public boolean stop() {
    Optional<ProcessHandle> agent = running();
    agent.ifPresent(
        h -> {
          h.destroy();
          if (!ServiceProcess.waitForExit(h, STOP_TIMEOUT)) {
            h.destroyForcibly();
            ServiceProcess.waitForExit(h, Duration.ofSeconds(10));
          }
        });
    pidIn(watchdogPidFile())
        .flatMap(ProcessHandle::of)
        .filter(ProcessHandle::isAlive)
        .filter(h -> h.info().commandLine().map(c -> c.contains(dir().toString())).orElse(true))
        .ifPresent(
            h -> {
              if (!ServiceProcess.waitForExit(h, Duration.ofSeconds(20))) {
                h.destroyForcibly();
              }
            });
    clear();
    return agent.isPresent();
  }

  /** Detaches whatever of ours is still mounted on the data directory; deletes the agent dir. */
  void clear() {
    for (String d : List.of("base", "global")) {
      try {
        LazyMount.unmountStale(node.pgdata().resolve(d));
      } catch (IOException e) {
        throw new ControlPlaneException(
            "cannot detach the dead mount at " + node.pgdata().resolve(d) + ": " + e.getMessage(),
            e);
      }
    }
    Basebackups.deleteTree(dir());
  }

  private static Optional<Long> pidIn(Path f) {
    try {
      return Files.exists(f)
          ? Optional.of(Long.parseLong(Files.readString(f).strip()))
          : Optional.empty();
    } catch (IOException | NumberFormatException e) {
      return Optional.empty();
    }
  }

  /** A word for sh: single-quoted, with single quotes inside closed and escaped. */
  static String quote(String s) {
    return "'" + s.replace("'", "'\\''") + "'";
  }

  private static String quoted(List<String> words) {
    return words.stream().map(ComputeAgent::quote).collect(Collectors.joining(" "));
  }
}
