package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.it.pageserver.HttpJson;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.safekeeper.Election;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three safekeeper processes (their servers in this JVM: real HTTP and libpq sockets, separate data
 * directories) behind a real PostgreSQL 15 whose synchronous quorum is {@code ANY 2 (sk_1, sk_2,
 * sk_3)}, driven only through their HTTP APIs: the timeline is created on each, the election runs
 * through {@code SafekeeperClient.member}, the compute is set per safekeeper, and the commit LSN
 * each reports comes from HTTP gossip.
 */
@ExtendWith(NettyLeakCheck.class)
class SafekeeperProcessQuorumTest {
  @TempDir Path tmp;
  private SafekeeperSet sks;
  private QuorumTimeline q;
  private Identity identity;
  private TenantId tenant;
  private TimelineId timeline;

  @BeforeEach
  void start() {
    sks = new SafekeeperSet(tmp, 3).startAll();
    q = QuorumTimeline.start(sks);
    identity = q.identity;
    tenant = q.tenant();
    timeline = q.timeline();
  }

  @AfterEach
  void stop() {
    QuorumTimeline.closeAll(q, sks);
  }

  private Election.Result elect() throws Election.ElectionFailed {
    return q.elect();
  }

  private void setCompute(long term) {
    q.setCompute(term);
  }

  private Lsn lastRecordEnd() {
    return q.lastRecordEnd();
  }

  private SafekeeperApiModel.TimelineInfo info(int id) {
    return q.info(id);
  }

  @Test
  void electedThroughHttpCommitsWithAQuorumAndARestartedSafekeeperCatchesUp() throws Exception {
    Election.Result r = elect();
    assertThat(r.term()).isEqualTo(1);
    assertThat(r.startLsn()).isEqualTo(identity.startLsn());
    assertThat(r.members()).containsExactlyInAnyOrder(1, 2, 3);
    setCompute(1);
    PgCluster compute = q.compute();
    compute.sql("create table t (id int primary key, v text)");
    compute.sql("insert into t select i, repeat('x', 100) from generate_series(1, 5000) i");
    Lsn end = lastRecordEnd();
    int[] all = {1, 2, 3};
    // Each learns the commit LSN from its peers' flush LSNs, read over HTTP.
    q.awaitAll(
        "every safekeeper to report commit_lsn >= " + end,
        all,
        t -> !QuorumTimeline.commit(t).isBefore(end));
    SafekeeperApiModel.TimelineInfo one = info(1);
    assertThat(one.term()).isEqualTo(1);
    assertThat(one.history())
        .containsExactly(new SafekeeperApiModel.TermEntryJson(1L, identity.startLsn().toString()));
    assertThat(one.intake()).isEqualTo("streaming");
    assertThat(one.peers()).extracting(SafekeeperApiModel.PeerInfo::id).containsExactly(2, 3);

    // One down: the other two still make the quorum.
    sks.stop(3);
    compute.sql("insert into t select i, 'two' from generate_series(5001, 6000) i");
    // Two down: commits wait ...
    sks.stop(2);
    CompletableFuture<String> blocked = q.sqlAsync("insert into t values (0, 'waits')");
    q.awaitSyncRepWaiters(1);
    assertThat(blocked).isNotDone();
    // ... until a majority is back.
    sks.start(3);
    blocked.get(60, TimeUnit.SECONDS);
    sks.start(2);
    Lsn end2 = lastRecordEnd();
    q.awaitCaughtUp(all, end2);
    q.assertSameWal(all, end2);
    for (int id : all) {
      assertThat(sks.client(id).timelineStatus(tenant, timeline).history())
          .containsExactly(new TermEntry(1, identity.startLsn()));
    }
    // Metrics of the core, through /metrics.
    HttpJson.Response metrics =
        new HttpJson(sks.settings(1).httpAddress().getPort()).get("/metrics");
    assertThat(metrics.status()).isEqualTo(200);
    assertThat(metrics.body())
        .contains("safekeeper_commit_lsn{")
        .contains("tenant_id=\"" + tenant + "\"");
  }

  /**
   * Issue 4: once a new term's compute runs on the timeline, the old term's compute cannot commit:
   * no safekeeper takes its WAL any more, so its commit waits (no statement timeout: a cancelled
   * wait would report the transaction as committed) while the new compute commits, and that
   * transaction is nowhere once the old compute is gone.
   */
  @Test
  void aNewTermsComputeCommitsAndTheOldTermsComputeCannot() throws Exception {
    elect();
    setCompute(1);
    PgCluster old = q.compute();
    old.sql("create table t (v int); insert into t select generate_series(1, 1000)");
    Lsn end = lastRecordEnd();
    int[] all = {1, 2, 3};
    q.awaitCaughtUp(all, end);
    Election.Result r2 = elect();
    assertThat(r2.term()).isEqualTo(2);
    assertThat(r2.startLsn()).isGreaterThanOrEqualTo(end);
    for (int id = 1; id <= 3; id++) {
      SafekeeperApiModel.TimelineInfo t = info(id);
      assertThat(t.term()).isEqualTo(2);
      assertThat(t.compute()).as("the compute of term 1 is forgotten").isNull();
      assertThat(t.intake()).isEqualTo("idle");
    }
    // The compute of term 1 cannot be set again: its term is over.
    assertThat(
            catchThrowableOfType(
                JsonHttpClient.ApiError.class,
                () ->
                    sks.client(1)
                        .setCompute(
                            tenant,
                            timeline,
                            new ComputeSource(1, "127.0.0.1", old.port(), "postgres"))))
        .satisfies(
            e -> {
              assertThat(e.status()).isEqualTo(409);
              assertThat(e.getMessage()).contains("term 1").contains("term is 2");
            });
    CompletableFuture<String> stale = q.sqlAsync("insert into t values (-1)");
    q.awaitSyncRepWaiters(1);

    PgCluster next = q.successor(r2.startLsn());
    setCompute(2);
    for (int i = 0; i < 20; i++) {
      next.sql(
          "insert into t select generate_series(1001 + 50 * " + i + ", 1050 + 50 * " + i + ")");
    }
    assertThat(stale).as("the old compute's commit after 20 of the new one's").isNotDone();
    Lsn end2 = lastRecordEnd();
    q.awaitCaughtUp(all, end2);
    q.assertSameWal(all, end2);

    q.kill(old);
    assertThat(stale)
        .failsWithin(QuorumTimeline.T)
        .withThrowableThat()
        .withMessageContaining("server closed the connection unexpectedly");
    assertThat(next.sql("select count(*), count(*) filter (where v < 0) from t").trim())
        .isEqualTo("2000|0");
    for (int id : all) {
      assertThat(sks.client(id).timelineStatus(tenant, timeline).history())
          .containsExactly(new TermEntry(1, identity.startLsn()), new TermEntry(2, r2.startLsn()));
    }
  }
}
