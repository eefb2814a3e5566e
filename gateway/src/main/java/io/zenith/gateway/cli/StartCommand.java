package io.zenith.gateway.cli;

import io.zenith.gateway.control.PageserverProcess;
import io.zenith.gateway.control.Repository;
import java.io.PrintWriter;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code zenith start}: the repository's services (today: the pageserver). */
@Command(
    name = "start",
    mixinStandardHelpOptions = true,
    description =
        "Start the repository's services (the pageserver) in the background. Computes are started"
            + " with `zenith pg start`.")
final class StartCommand implements Callable<Integer> {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @SuppressWarnings("try") // the lock is held, not used
  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    Repository repo = Repository.open();
    try (Repository.Lock lock = repo.lock()) {
      PageserverProcess ps = repo.pageserverProcess();
      Optional<ProcessHandle> running = ps.running();
      if (running.isPresent()) {
        out.println("pageserver is already running (pid " + running.get().pid() + ")");
        return 0;
      }
      PageserverCommand.start(repo, out);
    }
    return 0;
  }
}
