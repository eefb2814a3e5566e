package io.zenith.gateway.cli;

import io.zenith.gateway.control.BranchOps;
import io.zenith.gateway.control.Branches;
import io.zenith.gateway.control.Repository;
import io.zenith.wal.TenantId;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/**
 * {@code zenith branch <new> [<ancestor>[@<lsn>|@<time>]]}, {@code zenith branch list} and {@code
 * zenith branch delete <name>}.
 */
@Command(
    name = "branch",
    mixinStandardHelpOptions = true,
    description = {
      "Create branch <new> of <ancestor> (default main) at <lsn> (default: its latest LSN): a"
          + " copy-on-write timeline, created instantly whatever the database size.",
      "Instead of an LSN, a time (ISO-8601 with a zone, e.g. main@2026-12-06T10:00:00Z) branches"
          + " after the last commit at or before it: the branch sees exactly the transactions"
          + " committed by then.",
      "`zenith branch list` shows the branches as a tree; `zenith branch delete <name>` deletes"
          + " one."
    },
    subcommands = {BranchCommand.ListBranches.class, BranchCommand.DeleteBranch.class})
final class BranchCommand implements Callable<Integer> {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Parameters(
      index = "0",
      arity = "0..1",
      paramLabel = "<new>",
      description = "Name of the new branch.")
  String name;

  @CommandLine.Mixin TenantOption tenant;

  @Parameters(
      index = "1",
      arity = "0..1",
      paramLabel = "<ancestor>[@<lsn>|@<time>]",
      description =
          "Branch to branch from, and where: an LSN or a time (default: main at its latest LSN).")
  String from;

  @Override
  public Integer call() throws Exception {
    if (name == null) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "missing <new>: the name of the branch to create");
    }
    PrintWriter out = spec.commandLine().getOut();
    Cli.BranchAt at =
        from == null
            ? new Cli.BranchAt(Branches.DEFAULT_BRANCH)
            : Cli.branchAt(spec.commandLine(), from, "ancestor");
    return Cli.underLock(
        repo -> {
          TenantId t = tenant.resolve(repo).id();
          BranchOps.Created c =
              new BranchOps(repo, t).create(name, at.branch(), at.resolve(repo, t, "branch"));
          out.println(
              "created branch "
                  + c.name()
                  + " from "
                  + c.ancestor()
                  + " at "
                  + c.at()
                  + " (timeline "
                  + c.timeline()
                  + ")");
        });
  }

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description =
          "Show the branches as a tree: each with the LSN it was branched at, its latest LSN, its"
              + " GC cutoff (no read below it), the start of its point-in-time window (the"
              + " earliest time it can be branched or read at), the size of its own layer files"
              + " and their counts (L0 deltas / L1 deltas / images). With --remote: how much of"
              + " each branch is in remote storage.")
  static final class ListBranches implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @CommandLine.Option(
        names = "--remote",
        description =
            "Show each branch's remote storage state instead: the LSN its layer files reach on"
                + " disk and in remote storage, their bytes in each, the upload queue and why"
                + " uploads fail, if they do.")
    boolean remote;

    @CommandLine.Option(
        names = "--json",
        description = "Print one JSON object per branch and line (fields: docs/cli.md).")
    boolean json;

    @CommandLine.Mixin TenantOption tenant;

    @Override
    public Integer call() throws Exception {
      Repository repo = Repository.open();
      TenantId tenantId = tenant.resolve(repo).id();
      if (json) {
        JsonOutput.printLines(
            spec.commandLine().getOut(),
            JsonOutput.branches(new BranchOps(repo, tenantId).tree(), repo.branches(tenantId)));
        return 0;
      }
      if (remote) {
        remoteTable(new BranchOps(repo, tenantId).tree()).print(spec.commandLine().getOut());
        return 0;
      }
      Table t =
          new Table(
              "BRANCH",
              "BRANCHED AT",
              "LATEST LSN",
              "GC CUTOFF",
              "PITR START",
              "ON DISK",
              "L0/L1/IMAGE",
              "TIMELINE");
      for (BranchOps.Node n : new BranchOps(repo, tenantId).tree()) {
        t.row(
            treeName(n),
            n.info().ancestorLsn() == null ? "" : n.info().ancestorLsn(),
            n.info().lastRecordLsn(),
            n.info().gcCutoff() == null ? "" : n.info().gcCutoff(),
            pitrStart(n.info().pitrStart()),
            n.info().layers() == null ? "" : Cli.bytes(n.info().layers().bytes()),
            n.info().layers() == null
                ? ""
                : n.info().layers().l0()
                    + "/"
                    + n.info().layers().l1()
                    + "/"
                    + n.info().layers().image(),
            n.info().timelineId());
      }
      t.print(spec.commandLine().getOut());
      return 0;
    }

    /** The branch's name behind the tree's lines. */
    private static String treeName(BranchOps.Node n) {
      StringBuilder prefix = new StringBuilder();
      for (int i = 1; i < n.ancestorsLast().size(); i++) {
        prefix.append(n.ancestorsLast().get(i) ? "   " : "│  ");
      }
      if (n.depth() > 0) {
        prefix.append(n.lastChild() ? "└─ " : "├─ ");
      }
      return prefix + n.name();
    }

    /** {@code branch list --remote}: each branch's upload state (ADR 0023, 0026). */
    private static Table remoteTable(java.util.List<BranchOps.Node> tree) {
      Table t =
          new Table(
              "BRANCH",
              "DISK CONSISTENT",
              "REMOTE CONSISTENT",
              "LOCAL",
              "REMOTE",
              "QUEUE",
              "UPLOADS",
              "TIMELINE");
      for (BranchOps.Node n : tree) {
        var i = n.info();
        var u = i.remoteUpload();
        t.row(
            treeName(n),
            i.diskConsistentLsn(),
            u == null ? "" : i.remoteConsistentLsn(),
            i.layers() == null ? "" : Cli.bytes(i.layers().bytes()),
            u == null ? "" : Cli.bytes(u.remoteBytes()),
            u == null ? "" : Integer.toString(u.queueLength()),
            u == null ? "no remote storage" : u.failure() == null ? "ok" : u.failure(),
            i.timelineId());
      }
      return t;
    }

    /** To the second, as people read it: {@code 2026-12-06 10:00:00Z}. */
    private static String pitrStart(String iso) {
      if (iso == null) {
        return "";
      }
      return java.time.Instant.parse(iso)
          .truncatedTo(java.time.temporal.ChronoUnit.SECONDS)
          .toString()
          .replace('T', ' ');
    }
  }

  @Command(
      name = "delete",
      mixinStandardHelpOptions = true,
      description = {
        "Delete branch <name>: its timeline on the pageserver (returning its space) and on every"
            + " safekeeper (each keeps a tombstone, so the timeline never comes back), then its"
            + " name.",
        "Refused while other branches branch from it or a compute runs on it. Every safekeeper"
            + " must be running. A deletion that stopped midway is finished by running it again."
      })
  static final class DeleteBranch implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<name>", description = "The branch to delete.")
    String name;

    @CommandLine.Mixin TenantOption tenant;

    @Override
    @SuppressWarnings("try")
    public Integer call() throws Exception {
      PrintWriter out = spec.commandLine().getOut();
      PrintWriter err = spec.commandLine().getErr();
      return Cli.underLock(
          repo -> {
            BranchOps.Deleted d = new BranchOps(repo, tenant.resolve(repo).id()).delete(name);
            for (String c : d.strandedComputes()) {
              err.println(
                  "warning: compute '"
                      + c
                      + "' (stopped) was on branch '"
                      + d.name()
                      + "' and cannot start again");
            }
            out.println(
                "deleted branch "
                    + d.name()
                    + " (timeline "
                    + d.timeline()
                    + ")"
                    + Cli.deletedOn(d.safekeepers()));
          });
    }
  }
}
