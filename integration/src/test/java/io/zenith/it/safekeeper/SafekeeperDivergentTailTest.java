package io.zenith.it.safekeeper;

import static io.zenith.it.safekeeper.QuorumTimeline.commit;
import static io.zenith.it.safekeeper.QuorumTimeline.flush;
import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.safekeeper.Election;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A divergent tail on a {@code zenith safekeeper run} OS process (issue 4), behind a real
 * PostgreSQL 15: WAL its compute could not commit reaches safekeeper 1 only; both die; a new term
 * commits other WAL at the same LSNs on safekeepers 2 and 3 with a compute started at the elected
 * LSN ({@link QuorumTimeline#successor}, see there and {@link SafekeeperCrashTest} for what that
 * stand-in for a basebackup is worth). Until safekeepers serve WAL over libpq, the rejoining
 * safekeeper truncates through the adoption and then takes the new term's WAL from the compute.
 */
class SafekeeperDivergentTailTest {
  private static final int[] ALL = {1, 2, 3};

  @TempDir Path tmp;

  /**
   * Safekeeper 1 alone takes WAL its compute cannot commit; both die; a new term on safekeepers 2
   * and 3 writes other WAL over the same LSNs and commits it; safekeeper 1, restarted, cuts its
   * divergent tail at the new term's start and holds the new term's WAL and history.
   */
  @Test
  void aDivergentUncommittedTailIsTruncatedAndReplacedWhenItsSafekeeperRejoins() throws Exception {
    try (SafekeeperSet sks = new SafekeeperSet(tmp, 3).osProcesses().startAll();
        QuorumTimeline q = QuorumTimeline.start(sks)) {
      run(sks, q);
    }
  }

  private static void run(SafekeeperSet sks, QuorumTimeline q) throws Exception {
    q.elect();
    q.setCompute(1);
    PgCluster old = q.compute();
    old.sql(
        "create table t (id int, v text); insert into t select i, 'one' from generate_series(1, 1000) i");
    Lsn committed = q.lastRecordEnd();
    q.awaitCaughtUp(ALL, committed);
    sks.kill(2);
    sks.kill(3);
    q.sqlAsync("insert into t select i, 'lost' from generate_series(1, 2000) i");
    q.awaitSyncRepWaiters(1);
    Lsn tail = q.lastRecordEnd();
    q.awaitAll(
        "safekeeper 1 to hold the uncommitted tail", new int[] {1}, t -> !flush(t).isBefore(tail));
    assertThat(commit(q.info(1))).isLessThan(tail);
    String divergent = q.digest(1, tail);
    q.killCompute();
    sks.kill(1);

    sks.start(2, 3);
    Election.Result r = q.elect();
    assertThat(r.term()).isEqualTo(2);
    assertThat(r.members()).containsExactlyInAnyOrder(2, 3);
    Lsn start = r.startLsn();
    assertThat(start).isGreaterThanOrEqualTo(committed).isLessThan(tail);
    PgCluster next = q.successor(start);
    q.setCompute(2);
    next.sql("insert into t select i, 'two' from generate_series(1, 3000) i");
    Lsn end = q.lastRecordEnd();
    assertThat(end).as("the new term wrote over the whole divergent tail").isGreaterThan(tail);

    sks.start(1);
    q.awaitCaughtUp(ALL, end);
    q.assertSameWal(ALL, end);
    assertThat(q.digest(1, tail)).isNotEqualTo(divergent);
    assertThat(Files.readString(sks.log(1))).contains("truncating WAL at " + start + " (was ");
    List<TermEntry> history =
        List.of(new TermEntry(1, q.identity.startLsn()), new TermEntry(2, start));
    for (int id : ALL) {
      assertThat(sks.client(id).timelineStatus(q.tenant(), q.timeline()).history())
          .isEqualTo(history);
    }
    assertThat(next.sql("select count(*) filter (where v = 'lost'), count(*) from t").trim())
        .isEqualTo("0|4000");
  }
}
