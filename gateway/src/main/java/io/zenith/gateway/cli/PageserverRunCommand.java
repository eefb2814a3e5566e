package io.zenith.gateway.cli;

import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code zenith pageserver run -D <dir>}: the pageserver process in the foreground (the control
 * plane starts it in the background). Stops cleanly on SIGTERM/SIGINT: WAL receivers stop,
 * everything ingested is flushed, files are closed. A failed fsync stops it at once (exit 74,
 * {@link Foreground#stopOnFailedFsync}).
 */
@Command(
    name = "run",
    mixinStandardHelpOptions = true,
    description = "Run the pageserver in the foreground on a data directory.")
final class PageserverRunCommand implements Callable<Integer> {

  @Option(
      names = {"-D", "--data-dir"},
      required = true,
      paramLabel = "DIR",
      description = "Pageserver data directory (pageserver.toml, layer files, index).")
  Path dataDir;

  @Override
  public Integer call() throws Exception {
    return Foreground.run(
        "pageserver",
        dataDir,
        PageserverConfig::load,
        Pageserver::start,
        (config, ps) ->
            String.format(
                "pageserver %s: HTTP on port %d, libpq on port %d, data in %s",
                config.id(), ps.httpPort(), ps.pgPort(), dataDir.toAbsolutePath()));
  }
}
