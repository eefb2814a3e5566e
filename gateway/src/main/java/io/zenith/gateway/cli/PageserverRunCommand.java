package io.zenith.gateway.cli;

import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code zenith pageserver run -D <dir>}: the pageserver process in the foreground (the control
 * plane starts it in the background). Stops cleanly on SIGTERM/SIGINT: WAL receivers stop,
 * everything ingested is flushed, files are closed.
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
    if (!Files.isDirectory(dataDir)) {
      throw new UserException("pageserver data directory " + dataDir + " does not exist");
    }
    PageserverConfig config;
    try {
      config = PageserverConfig.load(dataDir);
    } catch (IllegalArgumentException e) {
      throw new UserException(e.getMessage());
    }
    Pageserver ps = Pageserver.start(dataDir, config);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            Thread.ofPlatform()
                .unstarted(
                    () -> {
                      ps.close();
                      stopped.countDown();
                    }));
    System.err.printf(
        "pageserver %s: HTTP on port %d, libpq on port %d, data in %s%n",
        config.id(), ps.httpPort(), ps.pgPort(), dataDir.toAbsolutePath());
    stopped.await();
    return 0;
  }
}
