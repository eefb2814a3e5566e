package io.zenith.gateway.cli;

import io.zenith.gateway.control.Safekeepers;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code zenith safekeeper}: the repository's safekeeper processes. */
@Command(
    name = "safekeeper",
    mixinStandardHelpOptions = true,
    description = "Manage safekeepers.",
    subcommands = {
      SafekeeperCommand.Start.class,
      SafekeeperCommand.Stop.class,
      SafekeeperCommand.Restart.class,
      SafekeeperRunCommand.class
    })
final class SafekeeperCommand extends CommandGroup {
  /** What the three subcommands share: the safekeeper's id, the repository and its lock. */
  abstract static class OnOne implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<id>", description = "The safekeeper's id (1, 2, ...).")
    int id;

    @Override
    public Integer call() throws Exception {
      return Cli.underLock(
          repo -> {
            Safekeepers sks = repo.safekeepers();
            sks.get(id); // unknown ids fail before anything happens
            apply(sks, spec.commandLine().getOut());
          });
    }

    abstract void apply(Safekeepers sks, PrintWriter out);
  }

  @Command(
      name = "start",
      mixinStandardHelpOptions = true,
      description = {
        "Start a safekeeper in the background (zenith safekeeper run -D"
            + " .zenith/safekeepers/sk<id>) and wait until its API answers.",
        "Log: safekeeper.log, pid: safekeeper.pid in its data directory."
      })
  static final class Start extends OnOne {
    @Override
    void apply(Safekeepers sks, PrintWriter out) {
      sks.start(id, out);
    }
  }

  @Command(
      name = "stop",
      mixinStandardHelpOptions = true,
      description =
          "Stop a safekeeper: SIGTERM (it flushes its WAL and writes its positions), SIGKILL after"
              + " 30 s.")
  static final class Stop extends OnOne {
    @Override
    void apply(Safekeepers sks, PrintWriter out) {
      Cli.stopRunning(sks.process(id), out);
    }
  }

  @Command(
      name = "restart",
      mixinStandardHelpOptions = true,
      description = "Stop a safekeeper if it runs, then start it.")
  static final class Restart extends OnOne {
    @Override
    void apply(Safekeepers sks, PrintWriter out) {
      Cli.stopIfRunning(sks.process(id), out);
      sks.start(id, out);
    }
  }
}
