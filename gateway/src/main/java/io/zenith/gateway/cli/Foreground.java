package io.zenith.gateway.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

/** What the {@code run} commands of the servers share: their data directory, and the wait. */
final class Foreground {
  private Foreground() {}

  /** Reads a server's configuration file; {@code IllegalArgumentException} means a bad file. */
  @FunctionalInterface
  interface Loader<C> {
    C load(Path dataDir) throws IOException;
  }

  /**
   * The configuration in {@code dataDir}, which must exist: a missing directory or a bad file is a
   * {@link UserException} (one line).
   */
  static <C> C load(String server, Path dataDir, Loader<C> loader) throws IOException {
    if (!Files.isDirectory(dataDir)) {
      throw new UserException(server + " data directory " + dataDir + " does not exist");
    }
    try {
      return loader.load(dataDir);
    } catch (IllegalArgumentException e) {
      throw new UserException(e.getMessage());
    }
  }

  /**
   * Prints {@code banner} to stderr and blocks until SIGTERM/SIGINT, whose shutdown hook closes
   * {@code server} (the JVM exits once the hook returns).
   */
  static int untilStopped(AutoCloseable server, String banner) throws InterruptedException {
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            Thread.ofPlatform()
                .unstarted(
                    () -> {
                      try {
                        server.close();
                      } catch (Exception e) {
                        System.err.println("error while stopping: " + e.getMessage());
                      }
                      stopped.countDown();
                    }));
    System.err.println(banner);
    stopped.await();
    return 0;
  }
}
