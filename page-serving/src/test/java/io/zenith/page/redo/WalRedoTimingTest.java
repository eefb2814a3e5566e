package io.zenith.page.redo;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Measures (prints, does not assert on) what one redo process costs: start-up, a request with no
 * record, one-record requests, and the time per record of long histories, sequentially on one
 * process. docs/benchmarks.md quotes these numbers; the JMH benchmark in integration is the
 * reference.
 */
class WalRedoTimingTest {

  @Test
  void measureRoundTrips() {
    RedoWorkload w = RedoWorkload.get();
    List<RedoWorkload.Target> single =
        w.targets().stream().filter(t -> t.history().size() == 1).toList();
    List<RedoWorkload.Target> longest =
        w.targets().stream()
            .sorted(Comparator.comparingInt(t -> -t.history().size()))
            .limit(20)
            .toList();
    long t0 = System.nanoTime();
    try (ScratchCluster scratch =
        ScratchCluster.create(
            w.cluster.distribution(), Path.of(System.getProperty("java.io.tmpdir")), true, true)) {
      long templateNanos = System.nanoTime() - t0;
      t0 = System.nanoTime();
      WalRedoProcess p = WalRedoProcess.start(scratch, Duration.ofSeconds(60));
      long startNanos = System.nanoTime() - t0;
      try {
        RedoWorkload.Target any = single.getFirst();
        RedoRequest empty =
            new RedoRequest(
                any.relation().rel(), any.fork(), any.block(), any.compute(), List.of());
        for (int i = 0; i < 3000; i++) { // warm-up (JIT; the timings are noisy before)
          p.apply(empty, Duration.ofSeconds(10));
        }
        long rssBefore = rssKb(p.backendPid());
        int n = 2000;
        t0 = System.nanoTime();
        for (int i = 0; i < n; i++) {
          p.apply(empty, Duration.ofSeconds(10));
        }
        double emptyMs = (System.nanoTime() - t0) / 1e6 / n;

        int m = 0;
        t0 = System.nanoTime();
        for (int round = 0; m < 2000; round++) {
          for (RedoWorkload.Target t : single) {
            assertThat(t.matches(p.apply(t.request(), Duration.ofSeconds(10)))).isTrue();
            m++;
          }
        }
        double singleMs = (System.nanoTime() - t0) / 1e6 / m;

        long records = 0;
        t0 = System.nanoTime();
        for (int round = 0; round < 5; round++) {
          for (RedoWorkload.Target t : longest) {
            p.apply(t.request(), Duration.ofSeconds(10));
            records += t.history().size();
          }
        }
        double longNanos = System.nanoTime() - t0;
        long rssAfter = rssKb(p.backendPid());
        long walBytes;
        try (var files = java.nio.file.Files.list(p.directory().resolve("data/pg_wal"))) {
          walBytes =
              files
                  .filter(java.nio.file.Files::isRegularFile)
                  .mapToLong(f -> f.toFile().length())
                  .sum();
        } catch (java.io.IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
        System.out.printf(
            "WAL redo timing (one process, sequential): template %.0f ms, process start %.0f ms;"
                + " no-record request %.3f ms; one-record request %.3f ms (%d distinct);"
                + " long histories %.1f records/request, %.4f ms per record, %.3f ms per request;"
                + " backend RSS %d kB -> %d kB over %d requests, scratch pg_wal %d kB%n",
            templateNanos / 1e6,
            startNanos / 1e6,
            emptyMs,
            singleMs,
            single.size(),
            records / 100.0,
            longNanos / 1e6 / records,
            longNanos / 1e6 / 100,
            rssBefore,
            rssAfter,
            n + m + 100,
            walBytes / 1024);
      } finally {
        p.close();
      }
    }
  }

  private static long rssKb(long pid) {
    try {
      for (String line : java.nio.file.Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
        if (line.startsWith("VmRSS:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
      }
    } catch (java.io.IOException | NumberFormatException e) {
      return -1;
    }
    return -1;
  }
}
