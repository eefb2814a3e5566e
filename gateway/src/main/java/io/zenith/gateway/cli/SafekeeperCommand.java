package io.zenith.gateway.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code zenith safekeeper}: safekeeper processes. */
@Command(
    name = "safekeeper",
    mixinStandardHelpOptions = true,
    description = "Manage safekeepers.",
    subcommands = {SafekeeperRunCommand.class})
final class SafekeeperCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }
}
