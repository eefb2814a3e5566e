package io.zenith.gateway.cli;

import io.zenith.gateway.control.ControlPlaneException;
import io.zenith.gateway.control.RepoConfig;
import io.zenith.gateway.control.Repository;
import io.zenith.gateway.control.Safekeepers;
import io.zenith.gateway.control.ServiceProcess;
import java.io.PrintWriter;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code zenith start}: the repository's services, the pageserver and every safekeeper. */
@Command(
    name = "start",
    mixinStandardHelpOptions = true,
    description =
        "Start the repository's services (the pageserver, then every safekeeper) in the"
            + " background; those already running are left alone. Computes are started with `zenith"
            + " pg start`.")
final class StartCommand implements Callable<Integer> {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    return Cli.underLock(repo -> start(repo, spec.commandLine().getOut()));
  }

  private static void start(Repository repo, PrintWriter out) {
    ControlPlaneException failed = null;
    if (!alreadyRunning(repo.pageserverProcess(), out)) {
      PageserverCommand.start(repo, out);
    }
    // Each safekeeper is independent: one that cannot start does not keep the others down.
    Safekeepers sks = repo.safekeepers();
    for (RepoConfig.SafekeeperAddresses a : sks.all()) {
      if (alreadyRunning(sks.process(a.id()), out)) {
        continue;
      }
      try {
        sks.start(a.id(), out);
      } catch (ControlPlaneException e) {
        failed = failed == null ? e : failed;
      }
    }
    if (failed != null) {
      throw failed;
    }
  }

  private static boolean alreadyRunning(ServiceProcess p, PrintWriter out) {
    Optional<ProcessHandle> running = p.running();
    running.ifPresent(
        h ->
            out.println(
                p.name().replaceFirst("^the ", "") + " is already running (pid " + h.pid() + ")"));
    return running.isPresent();
  }
}
