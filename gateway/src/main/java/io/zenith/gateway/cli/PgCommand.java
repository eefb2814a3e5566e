package io.zenith.gateway.cli;

import io.zenith.gateway.control.ComputeAgent;
import io.zenith.gateway.control.ComputeNode;
import io.zenith.gateway.control.ComputeSettings;
import io.zenith.gateway.control.ComputeSpec;
import io.zenith.gateway.control.Computes;
import io.zenith.gateway.control.ControlPlaneException;
import io.zenith.gateway.control.PointInTime;
import io.zenith.gateway.control.Repository;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import java.io.PrintWriter;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code zenith pg}: compute nodes (stock PostgreSQL 15 on a branch). */
@Command(
    name = "pg",
    mixinStandardHelpOptions = true,
    description = "Manage compute nodes: PostgreSQL 15 servers on a branch.",
    subcommands = {
      PgCommand.Create.class,
      PgCommand.Start.class,
      PgCommand.Stop.class,
      PgCommand.ListNodes.class,
      PgCommand.Show.class,
      PgConfigCommand.class
    })
final class PgCommand extends CommandGroup {
  /**
   * NODE ADDRESS BRANCH LSN STORAGE STATUS, and TERM ({@link #term}) when {@code withTerm}. STATUS
   * is running, stopped, or failed (a lazy compute whose agent died, ADR 0021).
   */
  static Table listTable(List<ComputeNode> nodes, boolean withTerm) {
    Table t =
        withTerm
            ? new Table("NODE", "ADDRESS", "BRANCH", "LSN", "STORAGE", "STATUS", "TERM")
            : new Table("NODE", "ADDRESS", "BRANCH", "LSN", "STORAGE", "STATUS");
    for (ComputeNode n : nodes) {
      boolean running = n.running();
      List<String> row =
          new java.util.ArrayList<>(
              List.of(
                  n.spec().name(),
                  n.address(),
                  n.spec().branch(),
                  Cli.lsnOf(n, running),
                  n.spec().storage(),
                  n.status(running)));
      if (withTerm) {
        row.add(term(n));
      }
      t.row(row.toArray(String[]::new));
    }
    return t;
  }

  /** The term a running primary was elected for by the safekeepers, else "-". */
  static String term(ComputeNode n) {
    OptionalLong term = n.term();
    return term.isPresent() ? Long.toString(term.getAsLong()) : "-";
  }

  /**
   * What the subcommands on one compute share: its name, and the command's spec. Not thread-safe
   * (picocli fills the fields; one instance runs once).
   */
  abstract static class Named implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<name>", description = "Name of the compute.")
    String name;

    @CommandLine.Mixin TenantOption tenant;
  }

  @Command(
      name = "create",
      mixinStandardHelpOptions = true,
      description = {
        "Create a compute node on a branch: the branch's primary (read-write, one running per"
            + " branch), or with --lsn a read-only compute that sees the branch as of that LSN.",
        "--at TIME is --lsn of the last commit at or before TIME (ISO-8601 with a zone): the"
            + " compute sees exactly the transactions committed by then.",
        "Nothing runs until `zenith pg start`."
      })
  static final class Create extends Named {
    @Option(
        names = "--branch",
        paramLabel = "BRANCH",
        defaultValue = "main",
        description = "Branch to run on (default: ${DEFAULT-VALUE}).")
    String branch;

    @Option(
        names = "--lsn",
        paramLabel = "LSN",
        description = "Read-only at this LSN (e.g. 0/16B3748) instead of a primary.")
    String lsn;

    @Option(
        names = "--at",
        paramLabel = "TIME",
        description =
            "Read-only as of this time (e.g. 2026-12-06T10:00:00Z): at the LSN after the last"
                + " commit at or before it.")
    String time;

    @Option(
        names = "--port",
        paramLabel = "PORT",
        description = "TCP port (default: the first free one from compute_port_base).")
    Integer port;

    @Option(
        names = "--config",
        paramLabel = "NAME=VALUE",
        description =
            "A PostgreSQL setting of the compute (repeatable), written into its postgresql.conf"
                + " at every start, e.g. --config max_prepared_transactions=10. Settings the"
                + " control plane owns (ports, replication, fsync) are refused.")
    List<String> config = List.of();

    @Option(
        names = "--storage",
        paramLabel = "lazy|full",
        description =
            "lazy: start from a slim basebackup with base/ and global/ served by a compute agent"
                + " (FUSE) from the pageserver, in about constant time; full: copy every relation"
                + " file at start. Default: full (lazy becomes the default where FUSE works once"
                + " its speed targets hold; docs/benchmarks.md).")
    String storage;

    @Override
    public Integer call() throws Exception {
      PrintWriter out = spec.commandLine().getOut();
      Optional<ComputeSpec.Storage> kind;
      try {
        kind = Optional.ofNullable(storage).map(ComputeSpec.Storage::parse);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
      }
      if (lsn != null && time != null) {
        throw new CommandLine.ParameterException(
            spec.commandLine(), "--lsn and --at cannot be used together");
      }
      Optional<Lsn> at =
          lsn == null ? Optional.empty() : Optional.of(Cli.lsn(spec.commandLine(), lsn));
      Optional<Instant> when =
          time == null ? Optional.empty() : Optional.of(Cli.time(spec.commandLine(), time));
      List<ComputeSettings.Setting> settings = PgConfigCommand.parse(spec.commandLine(), config);
      return Cli.underLock(
          repo -> {
            TenantId t = tenant.resolve(repo).id();
            Optional<Lsn> pinned =
                when.isPresent()
                    ? Optional.of(
                        PointInTime.resolve(repo, t, branch, when.get(), "create a compute on"))
                    : at;
            ComputeNode n =
                Cli.computes(repo, spec.commandLine())
                    .create(name, t, branch, pinned, Optional.ofNullable(port), settings, kind);
            out.println(
                "created compute "
                    + n.spec().name()
                    + " on branch "
                    + n.spec().branch()
                    + (n.spec().primary() ? " (primary)" : " (read-only at " + n.spec().lsn() + ")")
                    + ", port "
                    + n.spec().port()
                    + ", storage "
                    + n.spec().storage()
                    + "; start it with: zenith pg start "
                    + n.spec().name());
          });
    }
  }

  @Command(
      name = "start",
      mixinStandardHelpOptions = true,
      description = {
        "Start a compute: fetch a fresh basebackup from the pageserver, write its configuration,"
            + " start it with pg_ctl.",
        "A primary first has the safekeepers elect a new term (a majority must answer); they then"
            + " pull its WAL as its synchronous standbys, and the pageserver reads from them."
            + " Without safekeepers, the pageserver streams the primary's WAL itself."
      })
  static final class Start extends Named {
    @Override
    public Integer call() throws Exception {
      PrintWriter out = spec.commandLine().getOut();
      return Cli.underLock(
          repo -> {
            ComputeNode n = tenant.compute(repo, name);
            Lsn lsn = Cli.computes(repo, spec.commandLine()).start(n);
            out.println(
                "compute "
                    + name
                    + " is running "
                    + (n.spec().primary()
                        ? "as the primary of branch "
                            + n.spec().branch()
                            + " (from "
                            + lsn
                            + (n.term().isPresent() ? ", term " + n.term().getAsLong() : "")
                            + ")"
                        : "read-only on branch " + n.spec().branch() + " at " + lsn)
                    + ": psql "
                    + n.connectionString());
          });
    }
  }

  @Command(
      name = "stop",
      mixinStandardHelpOptions = true,
      description = "Stop a compute (pg_ctl stop -m fast); --destroy also deletes it.")
  static final class Stop extends Named {
    @Option(
        names = "--destroy",
        description = "Delete the compute too (its data directory, log and node.toml).")
    boolean destroy;

    @Override
    public Integer call() throws Exception {
      PrintWriter out = spec.commandLine().getOut();
      return Cli.underLock(
          repo -> {
            ComputeNode n = tenant.compute(repo, name);
            Computes computes = Cli.computes(repo, spec.commandLine());
            boolean failed = n.status().equals("failed");
            boolean wasRunning = computes.stop(n);
            if (!wasRunning && failed) {
              // its agent died and the watchdog stopped it: this clears the failed state
              out.println("cleaned up failed compute " + name);
            } else if (!wasRunning && !destroy) {
              throw new ControlPlaneException("compute '" + name + "' is not running");
            }
            if (wasRunning) {
              out.println("stopped compute " + name);
            }
            if (destroy) {
              computes.destroy(n);
              out.println("destroyed compute " + name);
            }
          });
    }
  }

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description = "List the computes of a tenant: NODE ADDRESS BRANCH LSN STORAGE STATUS.")
  static final class ListNodes implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Option(
        names = "--json",
        description = "Print one JSON object per compute and line (fields: docs/cli.md).")
    boolean json;

    @CommandLine.Mixin TenantOption tenant;

    @Override
    public Integer call() throws Exception {
      Repository repo = Repository.open();
      TenantId t = tenant.resolve(repo).id();
      List<ComputeNode> nodes =
          repo.computes().stream().filter(n -> n.spec().tenant().equals(t)).toList();
      if (json) {
        JsonOutput.printLines(spec.commandLine().getOut(), JsonOutput.computes(nodes));
      } else {
        listTable(nodes, false).print(spec.commandLine().getOut());
      }
      return 0;
    }
  }

  @Command(
      name = "show",
      mixinStandardHelpOptions = true,
      description = "Show one compute, one `key: value` per line.")
  static final class Show extends Named {
    @Override
    public Integer call() throws Exception {
      PrintWriter out = spec.commandLine().getOut();
      Repository repo = Repository.open();
      ComputeNode n = tenant.compute(repo, name);
      boolean running = n.running();
      out.println("node: " + n.spec().name());
      out.println("tenant: " + n.spec().tenantId());
      out.println("timeline: " + n.spec().timelineId());
      out.println("branch: " + n.spec().branch());
      out.println("lsn: " + Cli.lsnOf(n, running));
      out.println("mode: " + (n.spec().primary() ? "primary" : "read-only"));
      out.println("term: " + term(n));
      out.println("address: " + n.address());
      out.println("storage: " + n.spec().storage());
      out.println("status: " + n.status(running));
      if (n.spec().lazy()) {
        ComputeAgent agent = new ComputeAgent(n);
        out.println(
            "agent: "
                + agent
                    .running()
                    .map(p -> "running (pid " + p.pid() + ")")
                    .orElse(agent.failed().map(f -> "failed: " + f).orElse("not running")));
        out.println("agent log: " + agent.logFile());
      }
      out.println("datadir: " + n.pgdata());
      out.println("log: " + n.logFile());
      out.println("settings: " + PgConfigCommand.inline(n.spec().settings()));
      out.println(
          "alter system: "
              + PgConfigCommand.inline(Cli.computes(repo, spec.commandLine()).alterSystem(n)));
      return 0;
    }
  }
}
