package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A failed fsync of its WAL stops a {@code zenith safekeeper run} OS process at once (one ERROR
 * line, exit 74), the compute goes on with the other two, and the restarted safekeeper recovers
 * from what is on its disk and catches up. The failure is injected with the test-only {@code
 * ZENITH_TEST_FSYNC_FAIL}, which the run command reads once at start.
 */
class SafekeeperFsyncFailureTest {
  private static final int[] ALL = {1, 2, 3};

  @TempDir Path tmp;
  private SafekeeperSet sks;
  private QuorumTimeline q;

  @AfterEach
  void stop() {
    QuorumTimeline.closeAll(q, sks);
  }

  @Test
  void aFailedWalFsyncStopsTheSafekeeperWhichRecoversFromItsDiskOnRestart() throws Exception {
    sks = new SafekeeperSet(tmp, 3).osProcesses();
    // the 20th fsync of a segment being written: after the election, while the compute commits
    sks.env(3, "ZENITH_TEST_FSYNC_FAIL", "20:.partial");
    sks.startAll();
    q = QuorumTimeline.start(sks);
    q.elect();
    q.setCompute(1);
    PgCluster c = q.compute();
    c.sql("create table t (v int)");
    int committed = 0;
    long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
    while (sks.isAlive(3) && System.nanoTime() < deadline) {
      c.sql("insert into t values (" + committed + ")");
      committed++;
    }
    assertThat(sks.awaitExit(3, Duration.ofSeconds(30))).as(sks.logTail(3)).isEqualTo(74);
    String log = Files.readString(sks.log(3));
    assertThat(log)
        .containsPattern(
            "ERROR .* fsync of \\S+\\.partial failed: Input/output error \\(injected by"
                + " ZENITH_TEST_FSYNC_FAIL\\); stopping: data written since the last successful"
                + " fsync may be lost; restart to recover from what is on disk");
    // two of three keep committing
    c.sql("insert into t values (-1)");
    assertThat(c.sql("select count(*) from t").trim()).isEqualTo(Integer.toString(committed + 1));
    // restarted without the injection, it re-reads its WAL and catches up
    sks.env(3, "ZENITH_TEST_FSYNC_FAIL", null);
    sks.start(3);
    c.sql("insert into t values (-2)");
    Lsn end = q.lastRecordEnd();
    q.awaitCaughtUp(ALL, end);
    q.assertSameWal(ALL, end);
  }
}
