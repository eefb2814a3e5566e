package io.zenith.gateway.cli;

import io.zenith.gateway.control.ControlPlaneException;
import io.zenith.gateway.control.RepoConfig;
import io.zenith.gateway.control.Repository;
import io.zenith.gateway.pageserver.PageserverConfig;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code zenith pageserver}: the pageserver process. */
@Command(
    name = "pageserver",
    mixinStandardHelpOptions = true,
    description = "Manage the pageserver.",
    subcommands = {
      PageserverCommand.Start.class,
      PageserverCommand.Stop.class,
      PageserverCommand.Restart.class,
      PageserverRunCommand.class
    })
final class PageserverCommand extends CommandGroup {
  /** Starts the repository's pageserver in the background and reports where it listens. */
  static void start(Repository repo, PrintWriter out) {
    PageserverConfig server = repo.pageserverConfig();
    RepoConfig.PageserverAddresses client = repo.config().pageserver();
    if (!server.listenHttp().equals(client.listenHttp())
        || !server.listenPg().equals(client.listenPg())) {
      throw new ControlPlaneException(
          "config.toml says the pageserver listens on "
              + client.listenHttp()
              + " / "
              + client.listenPg()
              + " but pageserver/pageserver.toml says "
              + server.listenHttp()
              + " / "
              + server.listenPg()
              + "; make them agree");
    }
    repo.pageserverProcess().start(out, server.listenHttp(), server.listenPg());
  }

  @Command(
      name = "start",
      mixinStandardHelpOptions = true,
      description = "Start the repository's pageserver in the background.")
  static final class Start implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      return Cli.underLock(repo -> start(repo, spec.commandLine().getOut()));
    }
  }

  @Command(
      name = "stop",
      mixinStandardHelpOptions = true,
      description =
          "Stop the pageserver: SIGTERM (it makes what it ingested durable), SIGKILL after 60 s.")
  static final class Stop implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      return Cli.underLock(
          repo -> Cli.stopRunning(repo.pageserverProcess(), spec.commandLine().getOut()));
    }
  }

  @Command(
      name = "restart",
      mixinStandardHelpOptions = true,
      description = "Stop the pageserver if it runs, then start it.")
  static final class Restart implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      PrintWriter out = spec.commandLine().getOut();
      return Cli.underLock(
          repo -> {
            Cli.stopIfRunning(repo.pageserverProcess(), out);
            start(repo, out);
          });
    }
  }
}
