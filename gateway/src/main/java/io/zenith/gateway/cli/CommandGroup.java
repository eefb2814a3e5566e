package io.zenith.gateway.cli;

import picocli.CommandLine;

/**
 * A command that only groups subcommands ({@code zenith pg}, {@code zenith wal}, …): run without
 * one, it prints its usage to stdout (exit 0). Not thread-safe (picocli injects the spec; one
 * instance runs once).
 */
abstract class CommandGroup implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }
}
