package io.zenith.gateway.cli;

import io.zenith.gateway.control.Branches;
import io.zenith.gateway.control.ComputeNode;
import io.zenith.gateway.control.RepoConfig;
import io.zenith.gateway.control.Repository;
import io.zenith.gateway.control.Safekeepers;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.wal.TimelineId;
import java.io.PrintWriter;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code zenith status}: the repository, its pageserver, computes and safekeepers. */
@Command(
    name = "status",
    mixinStandardHelpOptions = true,
    description =
        "Show the repository, whether the pageserver runs, the computes (with the term a primary"
            + " was elected for) and the safekeepers (per timeline: term, flush LSN, commit LSN).")
final class StatusCommand implements Callable<Integer> {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    Repository repo = Repository.open();
    Optional<ProcessHandle> ps = repo.pageserverProcess().running();
    out.println("repository:  " + repo.dir());
    out.println("tenant:      " + repo.config().defaultTenantId());
    out.println(
        "pageserver:  "
            + ps.map(
                    p ->
                        "running (pid "
                            + p.pid()
                            + "), http "
                            + repo.config().pageserver().listenHttp()
                            + ", libpq "
                            + repo.config().pageserver().listenPg())
                .orElse("stopped (start it with `zenith start`)"));
    List<ComputeNode> nodes = repo.computes();
    long running = nodes.stream().filter(ComputeNode::running).count();
    out.println("computes:    " + running + " running, " + (nodes.size() - running) + " stopped");
    Safekeepers sks = repo.safekeepers();
    Table skTable = null;
    if (sks.none()) {
      out.println("safekeepers: none (the pageserver is each primary's synchronous standby)");
    } else {
      skTable = safekeeperTable(repo, sks);
      long up = sks.all().stream().filter(a -> sks.process(a.id()).running().isPresent()).count();
      out.println(
          "safekeepers: "
              + up
              + " of "
              + sks.all().size()
              + " running (commits need "
              + repo.config().quorum()
              + ")");
    }
    if (!nodes.isEmpty()) {
      out.println();
      PgCommand.listTable(nodes, true).print(out);
    }
    if (skTable != null) {
      out.println();
      skTable.print(out);
    }
    return 0;
  }

  /** One row per safekeeper and timeline of the default tenant (one row for a stopped one). */
  private static Table safekeeperTable(Repository repo, Safekeepers sks) {
    Branches branches = repo.branches();
    Table t =
        new Table(
            "SAFEKEEPER",
            "ADDRESS",
            "LIBPQ",
            "STATUS",
            "BRANCH",
            "TERM",
            "FLUSH LSN",
            "COMMIT LSN");
    for (RepoConfig.SafekeeperAddresses a : sks.all()) {
      String id = a.id().toString();
      if (sks.process(a.id()).running().isEmpty()) {
        t.row(id, a.listenHttp(), a.listenPg(), "stopped", "", "", "", "");
        continue;
      }
      Optional<List<SafekeeperApiModel.TimelineInfo>> timelines = sks.timelines(a.id());
      if (timelines.isEmpty()) {
        t.row(id, a.listenHttp(), a.listenPg(), "no answer", "", "", "", "");
      } else if (timelines.get().isEmpty()) {
        t.row(id, a.listenHttp(), a.listenPg(), "running", "", "", "", "");
      }
      for (SafekeeperApiModel.TimelineInfo tl : timelines.orElse(List.of())) {
        t.row(
            id,
            a.listenHttp(),
            a.listenPg(),
            "running",
            branches.nameOf(TimelineId.parse(tl.timelineId())).orElse(tl.timelineId()),
            Long.toString(tl.term()),
            tl.flushLsn(),
            tl.commitLsn());
      }
    }
    return t;
  }
}
