package io.zenith.gateway.cli;

import com.fasterxml.jackson.annotation.JsonProperty;
import io.zenith.gateway.control.Repository;
import io.zenith.gateway.control.TenantOps;
import java.io.PrintWriter;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code zenith tenant create|list|delete|attach|detach}. */
@Command(
    name = "tenant",
    mixinStandardHelpOptions = true,
    description = {
      "Tenants: independent databases on one pageserver and its safekeepers, each with its own"
          + " branches and computes.",
      "Branch and pg commands act on the repository's first tenant unless given --tenant NAME|ID."
    },
    subcommands = {
      TenantCommand.Create.class,
      TenantCommand.ListTenants.class,
      TenantCommand.Delete.class,
      TenantCommand.Attach.class,
      TenantCommand.Detach.class
    })
final class TenantCommand extends CommandGroup {
  @Command(
      name = "create",
      mixinStandardHelpOptions = true,
      description =
          "Create a tenant: the pageserver runs a fresh initdb and imports it as the tenant's"
              + " branch main (as `zenith init` does for the first tenant). The pageserver must"
              + " be running.")
  static final class Create implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Option(
        names = "--name",
        paramLabel = "NAME",
        description =
            "Name of the tenant, unique in the repository (default: tenant- and the first 8"
                + " characters of its id).")
    String name;

    @Override
    public Integer call() throws Exception {
      PrintWriter out = spec.commandLine().getOut();
      return Cli.underLock(
          repo -> {
            TenantOps.Created c = new TenantOps(repo).create(Optional.ofNullable(name));
            out.println(
                "created tenant "
                    + c.name()
                    + " ("
                    + c.tenant()
                    + ") with branch main (timeline "
                    + c.main()
                    + "); use it with --tenant "
                    + c.name());
          });
    }
  }

  /** A tenant in {@code tenant list --json}. */
  record JsonTenant(
      @JsonProperty("name") String name,
      @JsonProperty("tenant_id") String tenantId,
      @JsonProperty("default") boolean first,
      @JsonProperty("branches") List<String> branches,
      @JsonProperty("computes") List<String> computes,
      @JsonProperty("running_computes") int running) {}

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description = {
        "List the tenants: NAME TENANT BRANCHES COMPUTES (running/all) DEFAULT (* marks the one"
            + " commands use without --tenant).",
        "A tenant the pageserver has without a name (a creation cut short) is listed as"
            + " (unnamed)."
      })
  static final class ListTenants implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Option(
        names = "--json",
        description = "One JSON object per tenant and line instead of a table.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      Repository repo = Repository.open();
      List<TenantOps.Listed> all = new TenantOps(repo).list();
      PrintWriter out = spec.commandLine().getOut();
      if (json) {
        JsonOutput.printLines(
            out,
            all.stream()
                .map(
                    l ->
                        new JsonTenant(
                            l.name(),
                            l.id().toString(),
                            l.first(),
                            l.branches(),
                            l.computes(),
                            l.running()))
                .toList());
        return 0;
      }
      Table t = new Table("NAME", "TENANT", "BRANCHES", "COMPUTES", "DEFAULT");
      for (TenantOps.Listed l : all) {
        t.row(
            l.name() == null ? "(unnamed)" : l.name(),
            l.id().toString(),
            Integer.toString(l.branches().size()),
            l.running() + "/" + l.computes().size(),
            l.first() ? "*" : "");
      }
      t.print(out);
      return 0;
    }
  }

  @Command(
      name = "delete",
      mixinStandardHelpOptions = true,
      description = {
        "Delete a tenant everywhere: its computes (data directories and node.toml), its data on"
            + " the pageserver (crash-safe: a durable mark first) and its timelines on every"
            + " safekeeper (each keeps a tombstone), then its branch names and its name.",
        "Refused while a compute of it runs, unless --stop-computes; the repository's first"
            + " tenant cannot be deleted. Every safekeeper must be running. A deletion that"
            + " stopped midway is finished by running it again."
      })
  static final class Delete implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "NAME|ID", description = "The tenant to delete.")
    String tenant;

    @Option(names = "--stop-computes", description = "Stop its running computes first.")
    boolean stopComputes;

    @Override
    public Integer call() throws Exception {
      PrintWriter out = spec.commandLine().getOut();
      PrintWriter err = spec.commandLine().getErr();
      return Cli.underLock(
          repo -> {
            TenantOps.Deleted d = new TenantOps(repo).delete(tenant, stopComputes, out, err);
            for (String c : d.stoppedComputes()) {
              out.println("stopped compute " + c);
            }
            for (String c : d.destroyedComputes()) {
              out.println("destroyed compute " + c);
            }
            out.println(
                "deleted tenant "
                    + d.name()
                    + " ("
                    + d.tenant()
                    + ")"
                    + Cli.deletedOn(d.safekeepers()));
          });
    }
  }

  /** {@code tenant attach --json}. */
  record JsonAttached(
      @JsonProperty("name") String name,
      @JsonProperty("tenant_id") String tenantId,
      @JsonProperty("generation") int generation,
      @JsonProperty("millis") long millis,
      @JsonProperty("timelines") List<String> timelines,
      @JsonProperty("wal_sources") List<String> walSources) {}

  @Command(
      name = "attach",
      mixinStandardHelpOptions = true,
      description = {
        "Attach a tenant from the pageserver's remote storage (ADR 0027) in the next generation"
            + " the control plane issues (ADR 0026): its timelines as their uploaded indexes give"
            + " them, layer files fetched on first read. The pageserver must be running with"
            + " [remote_storage]; if it has the tenant already, it only takes the new generation.",
        "NAME|ID: a tenant of the repository, or the id of one it does not know (named with"
            + " --name). The timelines of its running computes take their WAL from the safekeepers"
            + " again at once, the others when a compute starts on them."
      })
  static final class Attach implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "NAME|ID", description = "The tenant to attach.")
    String tenant;

    @Option(
        names = "--name",
        paramLabel = "NAME",
        description = "Name for a tenant the repository does not know.")
    String name;

    @Option(names = "--json", description = "One JSON object instead of a line of text.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      PrintWriter out = spec.commandLine().getOut();
      return Cli.underLock(
          repo -> {
            TenantOps.Attached a = new TenantOps(repo).attach(tenant, Optional.ofNullable(name));
            // No attach detail: the pageserver had the tenant and only took the new generation.
            var attach = a.detail().attach();
            List<String> tls =
                attach == null
                    ? List.of()
                    : attach.timelines().stream()
                        .map(io.zenith.gateway.pageserver.ApiModel.AttachedTimeline::timelineId)
                        .toList();
            long millis = attach == null ? 0 : attach.millis();
            if (json) {
              JsonOutput.printLines(
                  out,
                  List.of(
                      new JsonAttached(
                          a.name(),
                          a.tenant().toString(),
                          a.detail().generation(),
                          millis,
                          tls,
                          a.walSources())));
              return;
            }
            out.println(
                "attached tenant "
                    + a.name()
                    + " ("
                    + a.tenant()
                    + ") at generation "
                    + a.detail().generation()
                    + ": "
                    + a.detail().timelines()
                    + " timelines"
                    + (attach == null ? " (it was here already)" : " in " + millis + " ms"));
          });
    }
  }

  /** {@code tenant detach --json}. */
  record JsonDetached(
      @JsonProperty("name") String name,
      @JsonProperty("tenant_id") String tenantId,
      @JsonProperty("timelines") List<String> timelines,
      @JsonProperty("millis") long millis) {}

  @Command(
      name = "detach",
      mixinStandardHelpOptions = true,
      description = {
        "Detach a tenant from the pageserver (ADR 0027): its ingest stops, its uploads catch up"
            + " (up to 60 s), then the pageserver removes it locally, crash-safely. Remote"
            + " storage, the safekeepers and the repository keep it; `zenith tenant attach`"
            + " brings it back."
      })
  static final class Detach implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "NAME|ID", description = "The tenant to detach.")
    String tenant;

    @Option(names = "--json", description = "One JSON object instead of a line of text.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      PrintWriter out = spec.commandLine().getOut();
      return Cli.underLock(
          repo -> {
            TenantOps.Detached d = new TenantOps(repo).detach(tenant);
            if (json) {
              JsonOutput.printLines(
                  out,
                  List.of(
                      new JsonDetached(
                          d.name(),
                          d.tenant().toString(),
                          d.detail().timelines(),
                          d.detail().millis())));
              return;
            }
            out.println(
                "detached tenant "
                    + d.name()
                    + " ("
                    + d.tenant()
                    + "): "
                    + d.detail().timelines().size()
                    + " timelines in "
                    + d.detail().millis()
                    + " ms; its remote objects stay");
          });
    }
  }
}
