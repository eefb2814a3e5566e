package io.zenith.gateway.cli;

import io.zenith.gateway.safekeeper.SafekeeperProcess;
import io.zenith.gateway.safekeeper.SafekeeperSettings;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code zenith safekeeper run -D <dir>}: one safekeeper in the foreground (the control plane
 * starts it in the background). Stops cleanly on SIGTERM/SIGINT: intakes stop, every timeline's WAL
 * is flushed and its positions written. A failed fsync stops it at once (exit 74, {@link
 * Foreground#stopOnFailedFsync}).
 */
@Command(
    name = "run",
    mixinStandardHelpOptions = true,
    description = "Run a safekeeper in the foreground on a data directory.")
final class SafekeeperRunCommand implements Callable<Integer> {

  @Option(
      names = {"-D", "--data-dir"},
      required = true,
      paramLabel = "DIR",
      description = "Safekeeper data directory (safekeeper.toml, one directory per timeline).")
  Path dataDir;

  @Mixin LogOptions logging = new LogOptions();

  @Override
  public Integer call() throws Exception {
    return Foreground.run(
        "safekeeper",
        dataDir,
        SafekeeperSettings::load,
        logging,
        SafekeeperSettings::logFormat,
        SafekeeperProcess::start,
        (settings, sk) ->
            String.format(
                "safekeeper %d: HTTP on port %d, %d peers, data in %s",
                settings.id(), sk.httpPort(), settings.peers().size(), dataDir.toAbsolutePath()));
  }
}
