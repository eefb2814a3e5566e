package io.zenith.gateway.control;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * One compute node of the repository: its spec, where its files are, and whether it runs (its
 * {@code postmaster.pid} names a live process). Immutable snapshot; {@link #runningPid()} looks at
 * the system each time.
 *
 * @param spec what {@code node.toml} says
 * @param nodeDir {@code <repo>/computes/<name>}, holding {@code node.toml}
 * @param dataRoot {@code <compute_data_dir>/<name>}, holding {@code pgdata/} and {@code
 *     postgres.log} (the same directory as nodeDir when PostgreSQL's user can reach the repository)
 */
public record ComputeNode(ComputeSpec spec, Path nodeDir, Path dataRoot) {

  public Path pgdata() {
    return dataRoot.resolve("pgdata");
  }

  public Path logFile() {
    return dataRoot.resolve("postgres.log");
  }

  public String address() {
    return "127.0.0.1:" + spec.port();
  }

  /** {@code postgresql://postgres@127.0.0.1:55432/postgres}. */
  public String connectionString() {
    return "postgresql://postgres@127.0.0.1:" + spec.port() + "/postgres";
  }

  /** The postmaster's pid if it runs. */
  public Optional<Long> runningPid() {
    Path pidFile = pgdata().resolve("postmaster.pid");
    try {
      if (!Files.exists(pidFile)) {
        return Optional.empty();
      }
      List<String> lines = Files.readAllLines(pidFile);
      if (lines.isEmpty()) {
        return Optional.empty();
      }
      long pid = Long.parseLong(lines.get(0).strip());
      return ProcessHandle.of(pid)
          .filter(ProcessHandle::isAlive)
          // a stale pid file of a crashed compute may name a reused pid
          .filter(p -> p.info().command().map(c -> c.endsWith("postgres")).orElse(true))
          .map(ProcessHandle::pid);
    } catch (IOException | NumberFormatException e) {
      return Optional.empty();
    }
  }

  /**
   * {@code <nodeDir>/term}: the term a running primary was started for (the safekeepers elected
   * it).
   */
  public Path termFile() {
    return nodeDir.resolve("term");
  }

  /**
   * The term this compute was started for, if it is a primary that runs with safekeepers (the file
   * of a compute that was not stopped through zenith is ignored once it no longer runs).
   */
  public OptionalLong term() {
    try {
      if (!Files.exists(termFile()) || !running()) {
        return OptionalLong.empty();
      }
      return OptionalLong.of(Long.parseLong(Files.readString(termFile()).strip()));
    } catch (IOException | NumberFormatException e) {
      return OptionalLong.empty();
    }
  }

  public boolean running() {
    return runningPid().isPresent();
  }

  /** "running", "stopped" or "failed" ({@link #status(boolean)}). */
  public String status() {
    return status(running());
  }

  /**
   * "running" or "stopped" as PostgreSQL {@code running} is, but "failed" for a lazy compute whose
   * compute agent died (ADR 0021): its watchdog stopped PostgreSQL and left a note, or PostgreSQL
   * still runs on mounts that no agent serves. {@code zenith pg start} (or {@code pg stop}) clears
   * it.
   */
  public String status(boolean running) {
    if (spec.lazy()) {
      ComputeAgent agent = new ComputeAgent(this);
      if (agent.failed().isPresent() || (running && agent.running().isEmpty())) {
        return "failed";
      }
    }
    return running ? "running" : "stopped";
  }
}
