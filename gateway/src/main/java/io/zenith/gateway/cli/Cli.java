package io.zenith.gateway.cli;

import io.zenith.gateway.control.ComputeNode;
import io.zenith.gateway.control.Computes;
import io.zenith.gateway.control.ControlPlaneException;
import io.zenith.gateway.control.PointInTime;
import io.zenith.gateway.control.Repository;
import io.zenith.gateway.control.ServiceProcess;
import io.zenith.gateway.http.ApiException;
import io.zenith.gateway.http.Json;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.PgConnection;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import java.io.PrintWriter;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import picocli.CommandLine;

/** Helpers the control-plane commands share. Stateless, so thread-safe. */
final class Cli {
  private Cli() {}

  /** What a command does with the repository while it holds its lock. */
  @FunctionalInterface
  interface LockedAction {
    void run(Repository repo) throws Exception;
  }

  /**
   * Opens the repository and runs {@code action} holding its lock, as every command that changes
   * the repository does (its arguments are checked before, so that a usage error comes first);
   * returns the exit code 0.
   */
  @SuppressWarnings("try") // the lock is held, not used
  static int underLock(LockedAction action) throws Exception {
    Repository repo = Repository.open();
    try (Repository.Lock lock = repo.lock()) {
      action.run(repo);
    }
    return 0;
  }

  /** The repository's computes, with the command's stdout and stderr. */
  static Computes computes(Repository repo, CommandLine cmd) {
    return new Computes(repo, cmd.getOut(), cmd.getErr());
  }

  /** Stops a server that must be running: "stopped X", or an error saying it was not running. */
  static void stopRunning(ServiceProcess p, PrintWriter out) {
    if (!p.stop()) {
      throw new ControlPlaneException(p.name() + " is not running");
    }
    out.println("stopped " + p.name());
  }

  /** Stops a server if it runs ("stopped X"). */
  static void stopIfRunning(ServiceProcess p, PrintWriter out) {
    if (p.stop()) {
      out.println("stopped " + p.name());
    }
  }

  /** {@code <branch>[@<lsn>|@<time>]}: at most one of {@code lsn} and {@code time}. */
  record BranchAt(String branch, Optional<Lsn> lsn, Optional<Instant> time) {
    BranchAt(String branch) {
      this(branch, Optional.empty(), Optional.empty());
    }

    /** The LSN: as given, or the one the pageserver finds for the time (under the lock). */
    Optional<Lsn> resolve(Repository repo, String what) {
      return resolve(repo, repo.config().tenant(), what);
    }

    /** The LSN on {@code branch} of {@code tenant}. */
    Optional<Lsn> resolve(Repository repo, TenantId tenant, String what) {
      return time.isPresent()
          ? Optional.of(PointInTime.resolve(repo, tenant, branch, time.get(), what))
          : lsn;
    }
  }

  /**
   * Parses {@code <branch>[@<lsn>]} or {@code <branch>@<time>} (ISO-8601 with a zone: it starts
   * with four digits and a dash, which no LSN does); a malformed LSN or time is a usage error (exit
   * 2).
   */
  static BranchAt branchAt(CommandLine cmd, String text, String what) {
    int at = text.indexOf('@');
    if (at < 0) {
      return new BranchAt(text);
    }
    String branch = text.substring(0, at);
    String point = text.substring(at + 1);
    if (branch.isEmpty()) {
      throw new CommandLine.ParameterException(cmd, what + " '" + text + "' has no branch name");
    }
    if (point.matches("\\d{4}-.*")) {
      return new BranchAt(branch, Optional.empty(), Optional.of(time(cmd, point)));
    }
    return new BranchAt(branch, Optional.of(lsn(cmd, point)), Optional.empty());
  }

  /** A time (ISO-8601 with a zone); a malformed one is a usage error (exit 2). */
  static Instant time(CommandLine cmd, String text) {
    try {
      return Json.timestamp(text);
    } catch (ApiException e) {
      throw new CommandLine.ParameterException(cmd, e.getMessage());
    }
  }

  /** A size as pg_size_pretty prints it: bytes, kB, MB, GB (binary units). */
  static String bytes(long n) {
    String[] units = {"bytes", "kB", "MB", "GB", "TB"};
    double v = n;
    int u = 0;
    // pg_size_pretty switches unit at 10240 of the smaller one: "9216 kB", then "10 MB".
    while (u < units.length - 1 && Math.abs(v) >= 10 * 1024) {
      v /= 1024;
      u++;
    }
    return Math.round(v) + " " + units[u];
  }

  static Lsn lsn(CommandLine cmd, String text) {
    try {
      return Lsn.parse(text);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(
          cmd, "invalid LSN '" + text + "' (expected e.g. 0/16B3748)");
    }
  }

  /**
   * The LSN column of a compute: the pinned LSN of a read-only one, the current WAL flush LSN of a
   * running primary (asked of the compute), else {@code latest}.
   */
  static String lsnOf(ComputeNode node, boolean running) {
    if (!node.spec().primary()) {
      return node.spec().lsn();
    }
    if (!running) {
      return "latest";
    }
    try {
      PgConnection c =
          PgConnection.connect(
                  PgConnectOptions.builder()
                      .host("127.0.0.1")
                      .port(node.spec().port())
                      .user("postgres")
                      .database("postgres")
                      .applicationName("zenith")
                      .connectTimeout(Duration.ofSeconds(3))
                      .build())
              .block(Duration.ofSeconds(5));
      try {
        return c.simpleQuery("SELECT pg_current_wal_flush_lsn()")
            .block(Duration.ofSeconds(5))
            .rows()
            .get(0)
            .get(0);
      } finally {
        c.close().block(Duration.ofSeconds(5));
      }
    } catch (RuntimeException e) {
      return "?";
    }
  }

  /**
   * " on the pageserver and safekeepers 1, 2" (or only the pageserver): where a branch or a tenant
   * was deleted.
   */
  static String deletedOn(java.util.List<Integer> safekeepers) {
    return " on the pageserver"
        + (safekeepers.isEmpty()
            ? ""
            : " and safekeepers "
                + safekeepers.stream()
                    .map(String::valueOf)
                    .collect(java.util.stream.Collectors.joining(", ")));
  }
}
