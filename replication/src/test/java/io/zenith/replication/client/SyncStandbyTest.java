package io.zenith.replication.client;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;

/**
 * The client as a synchronous standby of a real PostgreSQL 15: commits wait until it reports the
 * commit's WAL as written (synchronous_commit=remote_write) or flushed (on).
 */
@ExtendWith(NettyLeakCheck.class)
class SyncStandbyTest {
  private static final Logger log = LoggerFactory.getLogger(SyncStandbyTest.class);
  private static final Duration T = Duration.ofSeconds(30);
  private static final String STANDBY = "zenith_sync";

  @Test
  void commitsWaitForTheReportedWriteOrFlushPosition() throws Exception {
    try (PgCluster c = PgCluster.initdb()) {
      c.configure(
          Map.of(
              "wal_level", "replica",
              "max_wal_senders", "4",
              "fsync", "off",
              "synchronous_standby_names", STANDBY));
      c.start();
      c.sql("set synchronous_commit = local; create table t (v int)");
      // Status updates only when reported (or asked for): a release can only come from
      // reportProgress, not from a timer.
      ReplicationClient rc =
          ReplicationClient.connect(
                  ReplicationStreamTest.options(c, STANDBY),
                  ReplicationOptions.DEFAULT.withStatusInterval(Duration.ZERO))
              .block(T);
      Lsn start = rc.identifySystem().block(T).xlogPos();
      AtomicReference<Lsn> received = new AtomicReference<>(start);
      Disposable stream =
          rc.startReplication(null, start, 0).subscribe(ch -> received.set(ch.end()));
      PgWal.await(
          T,
          "the standby to be listed as sync",
          () ->
              c.sql(
                      "select sync_state from pg_stat_replication where application_name = '"
                          + STANDBY
                          + "'")
                  .trim()
                  .equals("sync"));

      // remote_write: released by write >= commit LSN, flush staying behind.
      Lsn commit1 = blockedCommit(c, "remote_write", received);
      CompletableFuture<String> insert1 = pendingInsert;
      assertThat(rc.reportedProgress().write()).isEqualTo(start);
      long t0 = System.nanoTime();
      rc.reportProgress(received.get(), start, start);
      insert1.get(10, TimeUnit.SECONDS);
      log.info(
          "remote_write commit at {} released {} ms after reportProgress(write={})",
          commit1,
          (System.nanoTime() - t0) / 1_000_000,
          received.get());
      assertStandbyPositions(c, received.get(), start);

      // on (remote flush): write alone does not release it, flush does.
      Lsn commit2 = blockedCommit(c, "on", received);
      CompletableFuture<String> insert2 = pendingInsert;
      rc.reportProgress(received.get(), start, start);
      PgWal.await(
          T,
          "the server to see the new write position",
          () -> !standbyLsn(c, "write_lsn").isBefore(commit2));
      assertThat(insert2).isNotDone();
      assertThat(waitingOnSyncRep(c)).isEqualTo(1);
      t0 = System.nanoTime();
      rc.reportProgress(received.get(), received.get(), start);
      insert2.get(10, TimeUnit.SECONDS);
      log.info(
          "synchronous_commit=on commit at {} released {} ms after reportProgress(flush={})",
          commit2,
          (System.nanoTime() - t0) / 1_000_000,
          received.get());
      assertStandbyPositions(c, received.get(), received.get());
      assertThat(rc.metrics().statusUpdatesSent()).isGreaterThanOrEqualTo(4);

      stream.dispose();
      rc.close().block(T);
    }
  }

  @Test
  void statusUpdatesAreAlsoSentPeriodically() {
    try (PgCluster c = PgCluster.initdb()) {
      c.configure(Map.of("wal_level", "replica", "max_wal_senders", "4", "fsync", "off"));
      c.start();
      ReplicationClient rc =
          ReplicationClient.connect(
                  ReplicationStreamTest.options(c, "zenith_periodic"),
                  ReplicationOptions.DEFAULT.withStatusInterval(Duration.ofMillis(100)))
              .block(T);
      Lsn start = rc.identifySystem().block(T).xlogPos();
      Disposable stream = rc.startReplication(null, start, 0).subscribe();
      PgWal.await(T, "10 status updates", () -> rc.metrics().statusUpdatesSent() >= 10);
      String replyTime1 = replyTime(c);
      PgWal.await(T, "a newer reply_time", () -> !replyTime(c).equals(replyTime1));
      assertThat(standbyLsn(c, "flush_lsn")).isEqualTo(start);
      stream.dispose();
      rc.close().block(T);
    }
  }

  private static String replyTime(PgCluster c) {
    return c.sql(
            "select reply_time from pg_stat_replication where application_name ="
                + " 'zenith_periodic'")
        .trim();
  }

  private CompletableFuture<String> pendingInsert;

  /**
   * Starts an insert under {@code synchronousCommit} in another session, waits until it is blocked
   * in SyncRep and until the client has received its commit; returns the commit's end.
   */
  private Lsn blockedCommit(PgCluster c, String synchronousCommit, AtomicReference<Lsn> received) {
    pendingInsert =
        CompletableFuture.supplyAsync(
            () ->
                c.sql(
                    "set synchronous_commit = "
                        + synchronousCommit
                        + "; insert into t values (1)"));
    PgWal.await(T, "the commit to wait in SyncRep", () -> waitingOnSyncRep(c) == 1);
    // The commit record is flushed locally before the backend waits.
    Lsn commitEnd = PgWal.lsn(c, "pg_current_wal_flush_lsn()");
    PgWal.await(T, "the commit's WAL to be streamed", () -> !received.get().isBefore(commitEnd));
    assertThat(pendingInsert).isNotDone();
    return commitEnd;
  }

  private static int waitingOnSyncRep(PgCluster c) {
    return Integer.parseInt(
        c.sql("select count(*) from pg_stat_activity where wait_event = 'SyncRep'").trim());
  }

  private static Lsn standbyLsn(PgCluster c, String column) {
    return PgWal.lsn(
        c,
        column
            + " from pg_stat_replication where application_name in ('"
            + STANDBY
            + "', 'zenith_periodic')");
  }

  private static void assertStandbyPositions(PgCluster c, Lsn write, Lsn flush) {
    PgWal.await(
        T,
        "pg_stat_replication to show write " + write + " flush " + flush,
        () -> standbyLsn(c, "write_lsn").equals(write) && standbyLsn(c, "flush_lsn").equals(flush));
  }
}
