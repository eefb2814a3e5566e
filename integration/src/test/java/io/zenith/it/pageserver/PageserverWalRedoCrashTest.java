package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * End to end through the WAL-redo pool: a basebackup rebuilds hundreds of pages through WAL redo;
 * its redo process is SIGKILLed in the middle. That basebackup fails with an error naming the redo
 * failure; the pool replaces the process, and the next basebackup succeeds with the right data.
 */
@ExtendWith(NettyLeakCheck.class)
class PageserverWalRedoCrashTest {
  private static final int ROWS = 150_000;

  @TempDir static Path data;

  @Test
  void aRedoProcessKilledDuringABasebackupFailsItAndTheNextOneSucceeds() throws Exception {
    TenantId tenant = TenantId.generate();
    TimelineId main = TimelineId.generate();
    PageserverHarness.importTimeline(data, tenant, main);
    // One redo process per tenant: the one killed is the one the basebackup uses.
    try (Pageserver ps = Pageserver.start(data, PageserverHarness.config("8MiB", "5s", 1))) {
      try (PgCluster compute = PageserverHarness.compute(ps, tenant, main, null, true)) {
        PageserverHarness.stream(ps, tenant, main, compute);
        // Every heap page: a page-initializing insert, ~200 more inserts, and the updates of its
        // rows, which only the redo process replays (inserts alone are rebuilt in Java, ADR 0034).
        compute.sql(
            "CREATE TABLE t(i int, v text); INSERT INTO t SELECT g, 'row ' || g"
                + " FROM generate_series(1, %d) g; UPDATE t SET v = 'updated ' || i"
                    .formatted(ROWS));
        compute.stop();
      }
      ps.stopWalReceiver(tenant, main);

      double ok0 = sample(ps, "zenith_walredo_requests_total", "outcome=\"ok\"");
      Path tar = Files.createTempFile(data, "bb", ".tar");
      CompletableFuture<PageserverHarness.Run> first =
          CompletableFuture.supplyAsync(
              () -> PageserverHarness.basebackup(ps, tenant, main, null, tar));
      PgWal.await(
          Duration.ofSeconds(60),
          "the basebackup is rebuilding pages",
          () -> sample(ps, "zenith_walredo_requests_total", "outcome=\"ok\"") >= ok0 + 20);
      long pid = redoBackendPid(ps);
      kill(pid);
      PageserverHarness.Run r = first.get(2, TimeUnit.MINUTES);
      assertThat(r.exit()).as(r.output()).isNotZero();
      // Killed during a request ("died"), or between two (the next one finds it gone).
      assertThat(r.output())
          .contains("ERROR:")
          .contains("WAL redo of ")
          .containsAnyOf(
              "WAL-redo backend " + pid + " died", "WAL-redo backend " + pid + " is not running");
      assertThat(sample(ps, "zenith_walredo_requests_total", "outcome=\"crashed\"")).isEqualTo(1);
      assertThat(sample(ps, "zenith_walredo_restarts_total", "reason=\"crashed\"")).isEqualTo(1);

      // The next basebackup gets a new process and the right pages.
      try (PgCluster again = PageserverHarness.compute(ps, tenant, main, null, false)) {
        assertThat(again.sql("SELECT count(*), sum(i) FROM t").trim())
            .isEqualTo(ROWS + "|" + (long) ROWS * (ROWS + 1) / 2);
      }
      assertThat(redoBackendPid(ps)).isNotEqualTo(pid);
    }
  }

  /**
   * The pid of the only WAL-redo backend ({@code postgres --single}) of {@code ps}: the JVM may run
   * other pageservers (the shared regression run starts with the test plan), whose backends run in
   * other scratch directories.
   */
  private static long redoBackendPid(Pageserver ps) {
    String scratch = ps.walRedoScratch().toString() + "/";
    List<ProcessHandle> redo =
        ProcessHandle.current().descendants().filter(h -> isRedoBackend(h.pid(), scratch)).toList();
    assertThat(redo).as("WAL-redo backends").hasSize(1);
    return redo.getFirst().pid();
  }

  /**
   * From /proc: its argv is {@code postgres --single ... -D <scratch>/p-<n>/data} (runuser, its
   * parent, has it too).
   */
  private static boolean isRedoBackend(long pid, String scratch) {
    try {
      String[] argv =
          new String(Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline")))
              .split("\0");
      return argv.length > 1
          && argv[0].endsWith("postgres")
          && argv[1].equals("--single")
          && java.util.Arrays.stream(argv).anyMatch(a -> a.startsWith(scratch));
    } catch (IOException e) {
      return false; // gone
    }
  }

  private static void kill(long pid) throws IOException, InterruptedException {
    Process p = new ProcessBuilder("sh", "-c", "kill -KILL " + pid).inheritIO().start();
    assertThat(p.waitFor()).isZero();
  }

  /** The value of {@code name}'s sample whose labels contain {@code label}, 0 if none. */
  private static double sample(Pageserver ps, String name, String label) {
    for (String line : ps.scrapeMetrics().split("\n")) {
      if (line.startsWith(name + "{") && line.contains(label)) {
        return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
      }
    }
    return 0;
  }
}
