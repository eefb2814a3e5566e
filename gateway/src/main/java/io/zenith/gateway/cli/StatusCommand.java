package io.zenith.gateway.cli;

import io.zenith.gateway.control.ComputeNode;
import io.zenith.gateway.control.Repository;
import java.io.PrintWriter;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code zenith status}: the repository, its pageserver and its computes. */
@Command(
    name = "status",
    mixinStandardHelpOptions = true,
    description = "Show the repository, whether the pageserver runs, and the computes.")
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
    if (!nodes.isEmpty()) {
      out.println();
      PgCommand.listTable(nodes).print(out);
    }
    return 0;
  }
}
