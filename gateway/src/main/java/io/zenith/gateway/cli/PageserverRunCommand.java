package io.zenith.gateway.cli;

import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.layer.Seams;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
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
  private static final Logger log = LoggerFactory.getLogger(PageserverRunCommand.class);

  @Option(
      names = {"-D", "--data-dir"},
      required = true,
      paramLabel = "DIR",
      description = "Pageserver data directory (pageserver.toml, layer files, index).")
  Path dataDir;

  @Mixin LogOptions logging = new LogOptions();

  /**
   * Test only: {@code <seam>[:<n>]} SIGKILLs this process the {@code n}-th time (default first) a
   * maintenance pass reaches {@code seam} ({@link Seams.Seam#settingName()}, e.g. {@code
   * image-written}). Read once at start; the crash-seam tests use it.
   */
  static final String CRASH_AT_ENV = "ZENITH_TEST_CRASH_AT";

  @Override
  public Integer call() throws Exception {
    crashAtSeamForTests();
    return Foreground.run(
        "pageserver",
        dataDir,
        PageserverConfig::load,
        logging,
        PageserverConfig::logFormat,
        Pageserver::start,
        (config, ps) ->
            String.format(
                "pageserver %s: HTTP on port %d, libpq on port %d, data in %s",
                config.id(), ps.httpPort(), ps.pgPort(), dataDir.toAbsolutePath()));
  }

  /** Installs the crash {@link #CRASH_AT_ENV} asks for, if set. */
  private static void crashAtSeamForTests() {
    String spec = System.getenv(CRASH_AT_ENV);
    if (spec == null || spec.isBlank()) {
      return;
    }
    String[] parts = spec.strip().split(":", 2);
    Seams.Seam at;
    long n;
    try {
      at = Seams.Seam.parse(parts[0]);
      n = parts.length == 1 ? 1 : Long.parseLong(parts[1]);
    } catch (IllegalArgumentException e) {
      throw new UserException(CRASH_AT_ENV + "=" + spec + ": " + e.getMessage());
    }
    AtomicLong seen = new AtomicLong();
    Seams.install(
        seam -> {
          if (seam == at && seen.incrementAndGet() == n) {
            killThisProcess(seam);
          }
        });
    log.info("{}={}: this process will be SIGKILLed there (test only)", CRASH_AT_ENV, spec);
  }

  /**
   * SIGKILL, as an operator's {@code kill -9} or the OOM killer would: nothing more runs in this
   * process, not even a flush of its buffers. {@link Runtime#halt} if {@code kill} cannot run.
   */
  private static void killThisProcess(Seams.Seam seam) {
    long pid = ProcessHandle.current().pid();
    log.warn(
        "reached seam {}: SIGKILL to pid {} ({}, test only)",
        seam.settingName(),
        pid,
        CRASH_AT_ENV);
    try {
      Process kill = new ProcessBuilder("kill", "-KILL", Long.toString(pid)).start();
      kill.waitFor(10, TimeUnit.SECONDS);
      Thread.sleep(10_000); // the signal is on its way; nothing more may happen here
    } catch (IOException | InterruptedException e) {
      // fall through to halt
    }
    Runtime.getRuntime().halt(137);
  }
}
