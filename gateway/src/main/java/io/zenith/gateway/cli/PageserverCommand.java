package io.zenith.gateway.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code zenith pageserver}: the pageserver process. */
@Command(
    name = "pageserver",
    mixinStandardHelpOptions = true,
    description = "Manage the pageserver.",
    subcommands = {PageserverRunCommand.class})
final class PageserverCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }
}
