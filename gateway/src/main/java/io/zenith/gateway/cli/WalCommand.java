package io.zenith.gateway.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code zenith wal}: WAL inspection tools. */
@Command(
    name = "wal",
    mixinStandardHelpOptions = true,
    description = "Inspect PostgreSQL WAL.",
    subcommands = {WalDumpCommand.class})
final class WalCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }
}
