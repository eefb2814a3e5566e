package io.zenith.gateway.cli;

import io.zenith.gateway.control.Branches;
import io.zenith.gateway.control.ComputeNode;
import io.zenith.gateway.control.RepoConfig;
import io.zenith.gateway.control.Repository;
import io.zenith.gateway.control.Safekeepers;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.wal.TimelineId;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code zenith status}: the repository, its pageserver, computes and safekeepers. */
@Command(
    name = "status",
    mixinStandardHelpOptions = true,
    description = {
      "Show the repository, whether the pageserver runs, the computes (with the term a primary"
          + " was elected for) and the safekeepers (per timeline: term, flush LSN, commit LSN).",
      "Exit status 0 if the pageserver and every safekeeper of config.toml run (and answer), 3"
          + " otherwise (as pg_ctl status); stopped computes do not count."
    })
final class StatusCommand implements Callable<Integer> {
  /** Exit status when a configured server is down, as {@code pg_ctl status}'s "not running". */
  static final int DOWN = 3;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Option(names = "--json", description = "Print one JSON object (fields: docs/cli.md).")
  boolean json;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    Repository repo = Repository.open();
    Optional<ProcessHandle> ps = repo.pageserverProcess().running();
    List<ComputeNode> nodes = repo.computes();
    Safekeepers sks = repo.safekeepers();
    List<JsonOutput.Safekeeper> safekeepers = safekeepers(repo, sks);
    boolean allRunning =
        ps.isPresent() && safekeepers.stream().allMatch(s -> s.status().equals("running"));
    if (json) {
      RepoConfig c = repo.config();
      JsonOutput.print(
          out,
          new JsonOutput.Status(
              repo.dir().toString(),
              c.defaultTenantId(),
              allRunning,
              new JsonOutput.Pageserver(
                  ps.isPresent() ? "running" : "stopped",
                  ps.map(ProcessHandle::pid).orElse(null),
                  c.pageserver().listenHttp(),
                  c.pageserver().listenPg()),
              sks.none() ? null : c.quorum(),
              safekeepers,
              JsonOutput.computes(nodes)));
      return allRunning ? 0 : DOWN;
    }
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
    long running = nodes.stream().filter(ComputeNode::running).count();
    // a lazy compute whose agent died (ADR 0021), whether its PostgreSQL still runs or not
    long failed = nodes.stream().filter(n -> n.status().equals("failed")).count();
    out.println(
        "computes:    "
            + running
            + " running, "
            + (nodes.size() - running)
            + " stopped"
            + (failed == 0 ? "" : ", " + failed + " failed (`zenith pg start` them again)"));
    if (sks.none()) {
      out.println("safekeepers: none (the pageserver is each primary's synchronous standby)");
    } else {
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
    if (!sks.none()) {
      out.println();
      safekeeperTable(safekeepers).print(out);
    }
    return allRunning ? 0 : DOWN;
  }

  /** Each safekeeper, with the timelines of the default tenant it holds if it runs and answers. */
  private static List<JsonOutput.Safekeeper> safekeepers(Repository repo, Safekeepers sks) {
    Branches branches = repo.branches();
    List<JsonOutput.Safekeeper> out = new ArrayList<>();
    for (RepoConfig.SafekeeperAddresses a : sks.all()) {
      Optional<ProcessHandle> p = sks.process(a.id()).running();
      Optional<List<SafekeeperApiModel.TimelineInfo>> timelines =
          p.isPresent() ? sks.timelines(a.id()) : Optional.empty();
      String status = p.isEmpty() ? "stopped" : timelines.isEmpty() ? "no answer" : "running";
      List<JsonOutput.SafekeeperTimeline> tls = new ArrayList<>();
      for (SafekeeperApiModel.TimelineInfo tl : timelines.orElse(List.of())) {
        tls.add(
            new JsonOutput.SafekeeperTimeline(
                branches.nameOf(TimelineId.parse(tl.timelineId())).orElse(tl.timelineId()),
                tl.timelineId(),
                tl.term(),
                tl.flushLsn(),
                tl.commitLsn()));
      }
      out.add(
          new JsonOutput.Safekeeper(
              a.id(),
              a.listenHttp(),
              a.listenPg(),
              status,
              p.map(ProcessHandle::pid).orElse(null),
              tls));
    }
    return out;
  }

  /** One row per safekeeper and timeline of the default tenant (one row for a stopped one). */
  private static Table safekeeperTable(List<JsonOutput.Safekeeper> sks) {
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
    for (JsonOutput.Safekeeper a : sks) {
      String id = Integer.toString(a.id());
      if (a.timelines().isEmpty()) {
        t.row(id, a.listenHttp(), a.listenPg(), a.status(), "", "", "", "");
      }
      for (JsonOutput.SafekeeperTimeline tl : a.timelines()) {
        t.row(
            id,
            a.listenHttp(),
            a.listenPg(),
            a.status(),
            tl.branch(),
            Long.toString(tl.term()),
            tl.flushLsn(),
            tl.commitLsn());
      }
    }
    return t;
  }
}
