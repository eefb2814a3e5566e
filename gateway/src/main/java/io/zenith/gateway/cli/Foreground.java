package io.zenith.gateway.cli;

import io.zenith.wal.Fsync;
import io.zenith.wal.FsyncFailedException;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the {@code run} commands of the servers share: their data directory, the policy on a failed
 * fsync, and the wait.
 */
final class Foreground {
  private Foreground() {}

  private static final Logger log = LoggerFactory.getLogger(Foreground.class);

  /** Exit code of a server stopped by a failed fsync ({@code EX_IOERR} of sysexits.h). */
  static final int FSYNC_FAILED_EXIT = 74;

  /**
   * Test only: {@code <n>[:<suffix>]} makes the {@code n}-th fsync (1-based, counted from process
   * start) of a path ending in {@code suffix} (of any path without one) fail with an I/O error.
   * Read once at the start of a server's {@code run} and of {@code export}; process tests use it.
   */
  static final String FAIL_FSYNC_ENV = "ZENITH_TEST_FSYNC_FAIL";

  /**
   * A failed fsync stops this process, as PostgreSQL PANICs: one ERROR line, then {@link
   * Runtime#halt} with {@link #FSYNC_FAILED_EXIT} (no shutdown hooks: an orderly shutdown would
   * write and fsync more). Restarting recovers from what is on disk. Called once by a server's
   * {@code run} command before it opens its data directory.
   */
  static void stopOnFailedFsync() {
    Fsync.onFailure(Foreground::halt);
    injectFailedFsyncForTests();
  }

  /** Installs the failing device {@link #FAIL_FSYNC_ENV} asks for, if set (test only). */
  static void injectFailedFsyncForTests() {
    String inject = System.getenv(FAIL_FSYNC_ENV);
    if (inject != null && !inject.isBlank()) {
      Fsync.use(failing(inject.strip()));
      log.info("{}={}: an fsync will fail (test only)", FAIL_FSYNC_ENV, inject.strip());
    }
  }

  private static void halt(FsyncFailedException e) {
    try {
      log.error(
          "{}; stopping: data written since the last successful fsync may be lost; restart to"
              + " recover from what is on disk",
          e.getMessage());
      System.err.flush();
    } finally {
      Runtime.getRuntime().halt(FSYNC_FAILED_EXIT);
    }
  }

  /** The device {@link #FAIL_FSYNC_ENV} asks for. */
  static Fsync.Device failing(String spec) {
    int colon = spec.indexOf(':');
    long n;
    try {
      n = Long.parseLong(colon < 0 ? spec : spec.substring(0, colon));
    } catch (NumberFormatException e) {
      throw new UserException(FAIL_FSYNC_ENV + "=" + spec + " is not <n>[:<path suffix>]");
    }
    String suffix = colon < 0 ? "" : spec.substring(colon + 1);
    AtomicLong seen = new AtomicLong();
    return new Fsync.Device() {
      @Override
      public void force(FileChannel channel, Path path, boolean metadata) throws IOException {
        if (path.toString().endsWith(suffix) && seen.incrementAndGet() == n) {
          throw new IOException("Input/output error (injected by " + FAIL_FSYNC_ENV + ")");
        }
        Fsync.OS.force(channel, path, metadata);
      }

      @Override
      public void beforeSyncedWrite(Path path) throws IOException {
        if (path.toString().endsWith(suffix) && seen.incrementAndGet() == n) {
          throw new IOException("Input/output error (injected by " + FAIL_FSYNC_ENV + ")");
        }
      }
    };
  }

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

  /** Starts a server on its data directory and configuration. */
  @FunctionalInterface
  interface Starter<C, S extends AutoCloseable> {
    S start(Path dataDir, C config) throws Exception;
  }

  /** The banner a started server prints: what it is, where it listens. */
  @FunctionalInterface
  interface Banner<C, S> {
    String of(C config, S server);
  }

  /**
   * A server's {@code run} command: a failed fsync stops the process ({@link #stopOnFailedFsync}),
   * the configuration in {@code dataDir} is loaded ({@link #load}), logging configured by {@code
   * logging} and the configuration's {@code log_format}, the server started, its banner printed,
   * and then it runs until SIGTERM/SIGINT ({@link #untilStopped}).
   */
  static <C, S extends AutoCloseable> int run(
      String server,
      Path dataDir,
      Loader<C> loader,
      LogOptions logging,
      Function<C, String> logFormat,
      Starter<C, S> starter,
      Banner<C, S> banner)
      throws Exception {
    stopOnFailedFsync();
    C config = load(server, dataDir, loader);
    logging.apply(logFormat.apply(config));
    S started = starter.start(dataDir, config);
    return untilStopped(started, banner.of(config, started));
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
