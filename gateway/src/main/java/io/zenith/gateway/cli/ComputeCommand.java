package io.zenith.gateway.cli;

import io.zenith.page.fuse.ComputeMounts;
import io.zenith.page.fuse.LazyFsConfig;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code zenith compute}: processes that serve one compute node. */
@Command(
    name = "compute",
    mixinStandardHelpOptions = true,
    description = "Processes that serve one compute node (started by `zenith pg start`).",
    subcommands = {ComputeCommand.Agent.class})
final class ComputeCommand extends CommandGroup {

  /**
   * {@code zenith compute agent}: the lazy filesystem of one compute in the foreground (ADR 0021).
   * Mounts {@code base/} and {@code global/} of the data directory, writes {@code <work>/ready}
   * (its pid) once both answer, and on SIGTERM/SIGINT unmounts, deletes its overlay and then the
   * ready file: a ready file without a live agent means the agent died without unmounting.
   */
  @Command(
      name = "agent",
      mixinStandardHelpOptions = true,
      description = {
        "Run the compute agent of a lazy compute in the foreground: base/ and global/ of its data"
            + " directory on FUSE, read from the pageserver at the compute's start LSN, with what"
            + " the compute writes in a local overlay.",
        "`zenith pg start` runs it; the data directory must hold a slim basebackup."
      })
  static final class Agent implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(Agent.class);

    @Option(
        names = {"-D", "--pgdata"},
        required = true,
        paramLabel = "DIR",
        description = "The compute's data directory (a slim basebackup).")
    Path pgdata;

    @Option(
        names = "--work",
        required = true,
        paramLabel = "DIR",
        description = "The agent's directory: seed, overlay, ready file.")
    Path work;

    @Option(
        names = "--pageserver",
        required = true,
        paramLabel = "HOST:PORT",
        description = "The pageserver's libpq address.")
    String pageserver;

    @Option(names = "--tenant", required = true, paramLabel = "ID")
    String tenant;

    @Option(names = "--timeline", required = true, paramLabel = "ID")
    String timeline;

    @Option(
        names = "--lsn",
        required = true,
        paramLabel = "LSN",
        description = "The compute's start LSN: pages it has not written are read at it.")
    Lsn lsn;

    @Option(
        names = "--primary",
        description =
            "The compute is its branch's primary (its only writer): read what it did not write at"
                + " the pageserver's latest LSN, not-modified-since --lsn, which GC never removes."
                + " Without it (a read-only compute), read at --lsn and hold it against GC.")
    boolean primary;

    @Option(
        names = "--password-file",
        paramLabel = "FILE",
        description = "A token for the pageserver (the tenant's), when it checks tokens.")
    @Nullable Path passwordFile;

    @Option(
        names = "--timeout",
        paramLabel = "SECONDS",
        defaultValue = "30",
        description = "Bound of every pagestream connection and read; then EIO (default: 30).")
    int timeoutSeconds;

    @Option(
        names = "--threads",
        paramLabel = "N",
        defaultValue = "4",
        description = "FUSE worker threads per mount (default: 4).")
    int threads;

    @Option(
        names = "--connections",
        paramLabel = "N",
        defaultValue = "4",
        description = "Most pagestream connections per mount (default: 4).")
    int connections;

    @Mixin LogOptions logging = new LogOptions();

    @Override
    @SuppressWarnings("try")
    public Integer call() throws Exception {
      TenantId t;
      TimelineId tl;
      try {
        t = TenantId.parse(tenant);
        tl = TimelineId.parse(timeline);
      } catch (IllegalArgumentException e) {
        throw new UserException(e.getMessage());
      }
      int colon = pageserver.lastIndexOf(':');
      if (colon <= 0 || timeoutSeconds < 1 || threads < 1 || connections < 1) {
        throw new UserException(
            "--pageserver must be HOST:PORT and --timeout, --threads, --connections positive");
      }
      logging.apply("text");
      // the agent's own main thread serves this one timeline for the life of the process
      try (LogContext.Scope s = LogContext.scope(t, tl)) {
        ComputeMounts mounts;
        Path ready = work.resolve("ready");
        try {
          Files.deleteIfExists(ready);
          ComputeMounts.Owner owner = ComputeMounts.owner(pgdata);
          String password = passwordFile == null ? null : Files.readString(passwordFile).strip();
          LazyFsConfig config =
              new LazyFsConfig(
                  pageserver.substring(0, colon),
                  Integer.parseInt(pageserver.substring(colon + 1)),
                  "postgres",
                  password,
                  t,
                  tl,
                  lsn,
                  primary,
                  Duration.ofSeconds(timeoutSeconds),
                  connections,
                  threads,
                  owner.uid(),
                  owner.gid());
          mounts = ComputeMounts.mount(config, pgdata, work, Duration.ofSeconds(30));
          DurableFiles.write(
              ready, (ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII));
        } catch (IOException | NumberFormatException e) {
          log.error("compute agent did not start: {}", e.toString());
          throw new UserException(e.getMessage() != null ? e.getMessage() : e.toString());
        }
        log.info("compute agent serving {} at {} from {}", mounts.mountPoints(), lsn, pageserver);
        AutoCloseable stop =
            () -> {
              try (LogContext.Scope hook = LogContext.scope(t, tl)) {
                mounts.close();
                // only after a clean unmount: the watchdog cleans up after an agent that left one
                Files.deleteIfExists(ready);
                log.info("compute agent stopped: unmounted, overlay deleted");
              }
            };
        return Foreground.untilStopped(
            stop,
            "compute agent: "
                + mounts.mountPoints()
                + " at "
                + lsn
                + " (pid "
                + ProcessHandle.current().pid()
                + ")");
      }
    }
  }
}
