package io.zenith.gateway.cli;

import io.zenith.gateway.control.ComputeNode;
import io.zenith.gateway.control.Computes;
import io.zenith.gateway.control.RepoConfig;
import io.zenith.gateway.control.ServiceProcess;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code zenith stop}: every running compute, then the pageserver, then the safekeepers. In this
 * order nothing committed is lost and nothing waits for what is already gone: a compute's clean
 * shutdown hands its last WAL to its synchronous standbys (the safekeepers, which still run), the
 * pageserver stops reading from safekeepers before they go, and safekeepers flush what they hold.
 */
@Command(
    name = "stop",
    mixinStandardHelpOptions = true,
    description = "Stop every running compute, then the pageserver, then every safekeeper.")
final class StopCommand implements Callable<Integer> {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    return Cli.underLock(
        repo -> {
          Computes computes = Cli.computes(repo, spec.commandLine());
          for (ComputeNode n : repo.computes()) {
            if (computes.stop(n)) {
              out.println("stopped compute " + n.spec().name());
            }
          }
          stop(repo.pageserverProcess(), out);
          for (RepoConfig.SafekeeperAddresses a : repo.safekeepers().all()) {
            stop(repo.safekeepers().process(a.id()), out);
          }
        });
  }

  private static void stop(ServiceProcess p, PrintWriter out) {
    out.println(p.stop() ? "stopped " + p.name() : p.name() + " was not running");
  }
}
