package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.it.pageserver.HttpJson;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.safekeeper.Election;
import io.zenith.replication.safekeeper.SafekeeperTimeline;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.scheduler.Schedulers;

/**
 * Three safekeeper processes (their servers in this JVM: real HTTP and libpq sockets, separate data
 * directories) behind a real PostgreSQL 15 whose synchronous quorum is {@code ANY 2 (sk_1, sk_2,
 * sk_3)}, driven only through their HTTP APIs: the timeline is created on each, the election runs
 * through {@link SafekeeperClient#member}, the compute is set per safekeeper, and the commit LSN
 * each reports comes from HTTP gossip.
 */
@ExtendWith(NettyLeakCheck.class)
class SafekeeperProcessQuorumTest {
  private static final Duration T = Duration.ofSeconds(60);

  @TempDir Path tmp;
  private PgCluster compute;
  private SafekeeperSet sks;
  private Identity identity;
  private TenantId tenant;
  private TimelineId timeline;

  @BeforeEach
  void start() {
    compute = PgCluster.initdb();
    ComputeQuorum.configure(compute);
    compute.start();
    compute.sql(
        "set synchronous_commit = local;"
            + " select pg_create_physical_replication_slot('sk_' || i, true)"
            + " from generate_series(1, 3) i;"
            + " select pg_switch_wal();");
    int seg = PgWal.segmentSize(compute);
    Lsn start = PgWal.segmentStart(PgWal.lsn(compute, "pg_current_wal_insert_lsn()"), seg);
    long sysid =
        Long.parseUnsignedLong(
            compute.sql("select system_identifier from pg_control_system()").trim());
    tenant = TenantId.generate();
    timeline = TimelineId.generate();
    identity = new Identity(tenant, timeline, sysid, 15, seg, start);
    sks = new SafekeeperSet(tmp, 3).startAll();
    for (int i = 1; i <= 3; i++) {
      SafekeeperApiModel.TimelineInfo created = sks.client(i).createTimeline(identity, null);
      assertThat(created.startLsn()).isEqualTo(start.toString());
      assertThat(created.systemId()).isEqualTo(Long.toUnsignedString(sysid));
    }
  }

  @AfterEach
  void stop() {
    if (sks != null) {
      sks.close();
    }
    compute.close();
  }

  private Election.Result elect() throws Election.ElectionFailed {
    return Election.run(sks.members(tenant, timeline), Duration.ofSeconds(10));
  }

  private void setCompute(long term) {
    ComputeSource c = new ComputeSource(term, "127.0.0.1", compute.port(), "postgres");
    for (int i = 1; i <= 3; i++) {
      SafekeeperApiModel.TimelineInfo t = sks.client(i).setCompute(tenant, timeline, c);
      assertThat(t.compute()).isNotNull();
    }
  }

  /** The end of the compute's last record (see SafekeeperQuorumTest). */
  private Lsn lastRecordEnd() {
    return ComputeQuorum.lastRecordEnd(compute, identity.segmentSize());
  }

  private SafekeeperApiModel.TimelineInfo info(int id) {
    return sks.client(id).timeline(tenant, timeline);
  }

  private void awaitAll(
      String what, int[] ids, java.util.function.Predicate<SafekeeperApiModel.TimelineInfo> ok) {
    ComputeQuorum.awaitAll(sks, tenant, timeline, what, ids, ok);
  }

  private String digest(int id, Lsn upTo) {
    SafekeeperTimeline t = sks.process(id).safekeeper().timeline(tenant, timeline);
    MessageDigest md = PgWal.sha256();
    t.readFlushed(identity.startLsn(), upTo, Schedulers.boundedElastic())
        .toIterable()
        .forEach(
            p -> {
              md.update(p.data().nioBuffer());
              p.release();
            });
    return HexFormat.of().formatHex(md.digest());
  }

  @Test
  void electedThroughHttpCommitsWithAQuorumAndARestartedSafekeeperCatchesUp() throws Exception {
    Election.Result r = elect();
    assertThat(r.term()).isEqualTo(1);
    assertThat(r.startLsn()).isEqualTo(identity.startLsn());
    assertThat(r.members()).containsExactlyInAnyOrder(1, 2, 3);
    setCompute(1);
    compute.sql("create table t (id int primary key, v text)");
    compute.sql("insert into t select i, repeat('x', 100) from generate_series(1, 5000) i");
    Lsn end = lastRecordEnd();
    int[] all = {1, 2, 3};
    // Each learns the commit LSN from its peers' flush LSNs, read over HTTP.
    awaitAll(
        "every safekeeper to report commit_lsn >= " + end,
        all,
        t -> !Lsn.parse(t.commitLsn()).isBefore(end));
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
    CompletableFuture<String> blocked =
        CompletableFuture.supplyAsync(() -> compute.sql("insert into t values (0, 'waits')"));
    Thread.sleep(1500);
    assertThat(blocked).isNotDone();
    // ... until a majority is back.
    sks.start(3);
    blocked.get(60, TimeUnit.SECONDS);
    sks.start(2);
    Lsn end2 = lastRecordEnd();
    awaitAll(
        "every safekeeper to hold and commit " + end2,
        all,
        t -> !Lsn.parse(t.flushLsn()).isBefore(end2) && !Lsn.parse(t.commitLsn()).isBefore(end2));
    String d = digest(1, end2);
    assertThat(digest(2, end2)).isEqualTo(d);
    assertThat(digest(3, end2)).isEqualTo(d);
    assertThat(
            HexFormat.of()
                .formatHex(
                    PgWal.sha256()
                        .digest(
                            PgWal.readWal(
                                compute, 1, identity.segmentSize(), identity.startLsn(), end2))))
        .isEqualTo(d);
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

  @Test
  void aSecondElectionMovesToANewTermAndTheOldTermsComputeIsRefused() throws Exception {
    elect();
    setCompute(1);
    compute.sql("create table t (v int); insert into t select generate_series(1, 1000)");
    Lsn end = lastRecordEnd();
    awaitAll("commit " + end, new int[] {1, 2, 3}, t -> !Lsn.parse(t.commitLsn()).isBefore(end));
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
            org.assertj.core.api.Assertions.catchThrowableOfType(
                io.zenith.gateway.http.JsonHttpClient.ApiError.class,
                () ->
                    sks.client(1)
                        .setCompute(
                            tenant,
                            timeline,
                            new ComputeSource(1, "127.0.0.1", compute.port(), "postgres"))))
        .satisfies(
            e -> {
              assertThat(e.status()).isEqualTo(409);
              assertThat(e.getMessage()).contains("term 1").contains("term is 2");
            });
  }
}
