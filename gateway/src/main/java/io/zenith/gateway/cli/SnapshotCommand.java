package io.zenith.gateway.cli;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.control.Repository;
import io.zenith.gateway.control.SnapshotOps;
import io.zenith.layer.SnapshotManifest;
import io.zenith.wal.TenantId;
import java.io.PrintWriter;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code zenith snapshot push|pull|list}: snapshots to share between repositories (ADR 0028). */
@Command(
    name = "snapshot",
    mixinStandardHelpOptions = true,
    description = {
      "Snapshots to share: a branch's content at one LSN as image layer files with a manifest"
          + " (sizes, CRC32Cs, PostgreSQL system id and version), in a directory or an S3 prefix,"
          + " which another repository imports as a new branch.",
      "<url> is a directory, file:///PATH or s3://BUCKET[/PREFIX] (--endpoint for an"
          + " S3-compatible server; credentials: the AWS SDK's default chain, for the pageserver"
          + " as for this command)."
    },
    subcommands = {
      SnapshotCommand.Push.class,
      SnapshotCommand.Pull.class,
      SnapshotCommand.ListSnapshots.class
    })
final class SnapshotCommand extends CommandGroup {

  /** Where the snapshot is: the URL and its S3 options. */
  static final class Location {
    @CommandLine.Option(
        names = "--endpoint",
        paramLabel = "<url>",
        description = "The S3 endpoint (an S3-compatible server), for s3:// URLs.")
    String endpoint;

    @CommandLine.Option(
        names = "--region",
        paramLabel = "<region>",
        description = "The S3 signing region (default us-east-1), for s3:// URLs.")
    String region;

    RemoteStorageConfig of(String url) {
      return SnapshotOps.location(url, endpoint, region);
    }
  }

  @Command(
      name = "push",
      mixinStandardHelpOptions = true,
      description =
          "Write a snapshot of <branch> at <lsn> or <time> (default: its latest LSN) to <url>,"
              + " which must be empty: the pageserver writes image layers at that LSN, then the"
              + " manifest.")
  static final class Push implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(
        index = "0",
        paramLabel = "<branch>[@<lsn>|@<time>]",
        description = "What to snapshot: a branch, at an LSN or a time.")
    String what;

    @Parameters(index = "1", paramLabel = "<url>", description = "Where to write it.")
    String url;

    @CommandLine.Mixin TenantOption tenant;

    @CommandLine.ArgGroup(exclusive = false)
    Location location = new Location();

    @Override
    public Integer call() throws Exception {
      Cli.BranchAt at = Cli.branchAt(spec.commandLine(), what, "branch");
      RemoteStorageConfig to = location.of(url);
      Repository repo = Repository.open();
      TenantId t = tenant.resolve(repo).id();
      SnapshotOps.Pushed p =
          new SnapshotOps(repo, t)
              .push(at.branch(), at.resolve(repo, t, "take a snapshot of"), url, to);
      PrintWriter out = spec.commandLine().getOut();
      out.println(
          "pushed a snapshot of branch "
              + p.branch()
              + " at "
              + p.lsn()
              + " to "
              + url
              + ": "
              + p.files()
              + " layer file"
              + (p.files() == 1 ? "" : "s")
              + ", "
              + Cli.bytes(p.bytes()));
      return 0;
    }
  }

  @Command(
      name = "pull",
      mixinStandardHelpOptions = true,
      description =
          "Import the snapshot at <url> as the new branch <new> (a root timeline starting at the"
              + " snapshot's LSN, with the source's PostgreSQL system id). Every file is checked"
              + " against the manifest first; a bad or incomplete snapshot leaves nothing behind.")
  static final class Pull implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<url>", description = "Where the snapshot is.")
    String url;

    @Parameters(index = "1", paramLabel = "<new>", description = "Name of the new branch.")
    String name;

    @CommandLine.Mixin TenantOption tenant;

    @CommandLine.ArgGroup(exclusive = false)
    Location location = new Location();

    @Override
    public Integer call() throws Exception {
      RemoteStorageConfig from = location.of(url);
      return Cli.underLock(
          repo -> {
            TenantId t = tenant.resolve(repo).id();
            SnapshotOps.Pulled p = new SnapshotOps(repo, t).pull(url, from, name);
            spec.commandLine()
                .getOut()
                .println(
                    "pulled the snapshot at "
                        + url
                        + " as branch "
                        + p.branch()
                        + " at "
                        + p.lsn()
                        + " (timeline "
                        + p.timeline()
                        + ")");
          });
    }
  }

  /** One snapshot in {@code snapshot list --json}. */
  record Listed(
      String path,
      String lsn,
      String sourceBranch,
      String sourceTenantId,
      String sourceTimelineId,
      Integer files,
      Long bytes,
      String created,
      Integer pgVersion,
      String systemId,
      String problem) {}

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description =
          "List the snapshots under <url> (each directory or prefix with a manifest): path, LSN,"
              + " source branch and timeline, size, creation time and PostgreSQL version.")
  static final class ListSnapshots implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<url>", description = "Where to look.")
    String url;

    @CommandLine.Option(
        names = "--json",
        description = "Print one JSON object per snapshot and line (fields: docs/cli.md).")
    boolean json;

    @CommandLine.ArgGroup(exclusive = false)
    Location location = new Location();

    @Override
    public Integer call() throws Exception {
      List<SnapshotOps.Listed> found = SnapshotOps.list(url, location.of(url));
      PrintWriter out = spec.commandLine().getOut();
      PrintWriter err = spec.commandLine().getErr();
      List<Listed> rows = new ArrayList<>();
      for (SnapshotOps.Listed l : found) {
        SnapshotManifest m = l.manifest();
        if (m == null) {
          err.println("warning: " + l.problem());
          rows.add(
              new Listed(
                  l.path(), null, null, null, null, null, null, null, null, null, l.problem()));
          continue;
        }
        rows.add(
            new Listed(
                l.path(),
                m.lsn().toString(),
                m.sourceBranch(),
                m.sourceTenant().toString(),
                m.sourceTimeline().toString(),
                m.files().size(),
                m.bytes(),
                m.created().truncatedTo(ChronoUnit.SECONDS).toString(),
                m.pgVersion(),
                Long.toUnsignedString(m.systemId()),
                null));
      }
      err.flush();
      if (json) {
        JsonOutput.printLines(out, rows);
        return 0;
      }
      Table t = new Table("SNAPSHOT", "LSN", "SOURCE", "SIZE", "CREATED", "PG", "TIMELINE");
      for (Listed r : rows) {
        if (r.problem() != null) {
          continue;
        }
        t.row(
            r.path().isEmpty() ? "." : r.path(),
            r.lsn(),
            r.sourceBranch().isEmpty() ? "(unnamed)" : r.sourceBranch(),
            Cli.bytes(r.bytes()),
            r.created().replace('T', ' '),
            Integer.toString(r.pgVersion()),
            r.sourceTimelineId());
      }
      t.print(out);
      return 0;
    }
  }
}
