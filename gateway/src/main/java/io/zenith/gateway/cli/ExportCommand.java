package io.zenith.gateway.cli;

import io.zenith.gateway.control.Repository;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code zenith export <branch>[@<lsn>] <dir>}: the way out of Zenith. */
@Command(
    name = "export",
    mixinStandardHelpOptions = true,
    description = {
      "Write a standalone PostgreSQL 15 data directory of a branch (at its latest LSN, or at"
          + " <lsn>) that plain `pg_ctl start` runs, without Zenith.",
      "<dir> must not exist or be empty. When zenith runs as root the files are given to"
          + " PostgreSQL's OS user."
    })
final class ExportCommand implements Callable<Integer> {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Parameters(
      index = "0",
      paramLabel = "<branch>[@<lsn>|@<time>]",
      description = "What to export: a branch, at an LSN or a time (default: its latest LSN).")
  String what;

  @Parameters(index = "1", paramLabel = "<dir>", description = "The new data directory.")
  Path dir;

  @CommandLine.Mixin TenantOption tenant;

  @Override
  public Integer call() throws Exception {
    Foreground.injectFailedFsyncForTests();
    PrintWriter out = spec.commandLine().getOut();
    Cli.BranchAt at = Cli.branchAt(spec.commandLine(), what, "branch");
    Repository repo = Repository.open();
    TenantId t = tenant.resolve(repo).id();
    Lsn lsn =
        Cli.computes(repo, spec.commandLine())
            .export(t, at.branch(), at.resolve(repo, t, "export"), dir);
    Path abs = dir.toAbsolutePath().normalize();
    out.println(
        "exported branch "
            + at.branch()
            + " at "
            + lsn
            + " to "
            + abs
            + repo.pg().osUser().map(u -> " (owned by " + u + ")").orElse("")
            + "; run it with: pg_ctl -D "
            + abs
            + " -l "
            + abs
            + "/postgres.log start");
    return 0;
  }
}
