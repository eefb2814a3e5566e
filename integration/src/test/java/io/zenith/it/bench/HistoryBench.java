package io.zenith.it.bench;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;

/**
 * {@code make bench BENCH=history}: issue 11's benchmarks of the history's lifecycle, each part
 * selectable ({@code BENCH=history-storage}, {@code history-getpage}, {@code history-basebackup},
 * {@code history-ingest}). Not a test: nothing here fails on a number. Not thread-safe.
 */
final class HistoryBench {
  /** The parts, in the order {@code history} runs them (bounded storage first: it matters most). */
  static final List<String> PARTS = List.of("storage", "getpage", "basebackup", "ingest");

  private HistoryBench() {}

  /**
   * Runs {@code parts} (names from {@link #PARTS}); scratch directories go under {@code scratch}.
   */
  static void run(Path root, Path scratch, Set<String> parts) throws Exception {
    if (parts.contains("storage")) {
      // -Dzenith.bench.history.seconds shortens the run for a trial; the issue asks for 600 s
      long seconds = Long.getLong("zenith.bench.history.seconds", 600);
      new BoundedStorageBench(
              root.toAbsolutePath(),
              scratch,
              Integer.getInteger("zenith.bench.history.scale", 20),
              Duration.ofSeconds(seconds),
              Duration.ofSeconds(Math.min(30, Math.max(5, seconds / 10))))
          .run();
    }
    boolean getPage = parts.contains("getpage");
    boolean basebackup = parts.contains("basebackup");
    if (getPage || basebackup) {
      // one database for both: about 1 GB (scale 70) when the basebackup is measured
      int scale = Integer.getInteger("zenith.bench.history.speed.scale", basebackup ? 70 : 20);
      int runSeconds = Integer.getInteger("zenith.bench.history.speed.seconds", 60);
      new LifecycleSpeedBench(root.toAbsolutePath(), scratch)
          .run(scale, runSeconds, getPage, basebackup);
    }
    if (parts.contains("ingest")) {
      new IngestCompactionBench(root.toAbsolutePath(), scratch)
          .run(Integer.getInteger("zenith.bench.history.ingest.scale", 40));
    }
  }

  /** {@code uptime}'s load averages: the machine is shared, so each part notes its load. */
  static String uptime() {
    try {
      return "load " + java.nio.file.Files.readString(Path.of("/proc/loadavg")).strip();
    } catch (java.io.IOException e) {
      return "load unknown";
    }
  }
}
