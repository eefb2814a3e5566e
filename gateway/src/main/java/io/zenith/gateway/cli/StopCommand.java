package io.zenith.gateway.cli;

import io.zenith.gateway.control.ComputeNode;
import io.zenith.gateway.control.Computes;
import io.zenith.gateway.control.Repository;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code zenith stop}: every running compute, then the pageserver. */
@Command(
    name = "stop",
    mixinStandardHelpOptions = true,
    description = "Stop every running compute, then the pageserver.")
final class StopCommand implements Callable<Integer> {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @SuppressWarnings("try") // the lock is held, not used
  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    Repository repo = Repository.open();
    try (Repository.Lock lock = repo.lock()) {
      Computes computes = new Computes(repo, out);
      for (ComputeNode n : repo.computes()) {
        if (computes.stop(n)) {
          out.println("stopped compute " + n.spec().name());
        }
      }
      if (repo.pageserverProcess().stop()) {
        out.println("stopped the pageserver");
      } else {
        out.println("the pageserver was not running");
      }
    }
    return 0;
  }
}
