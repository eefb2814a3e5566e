package io.zenith.gateway.cli;

import picocli.CommandLine.Command;

/** {@code zenith wal}: WAL inspection tools. */
@Command(
    name = "wal",
    mixinStandardHelpOptions = true,
    description = "Inspect PostgreSQL WAL.",
    subcommands = {WalDumpCommand.class})
final class WalCommand extends CommandGroup {}
