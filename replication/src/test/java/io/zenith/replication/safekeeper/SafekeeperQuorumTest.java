package io.zenith.replication.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Schedulers;

/**
 * Three safekeeper timelines in this process (their gossip a loop, their peer WAL reads direct)
 * behind a real PostgreSQL 15 whose synchronous quorum is {@code ANY 2 (sk_1, sk_2, sk_3)}.
 */
@ExtendWith(NettyLeakCheck.class)
class SafekeeperQuorumTest {
  private static final Duration T = Duration.ofSeconds(60);

  @TempDir Path tmp;
  private PgCluster compute;
  private Identity identity;
  private final SafekeeperTimeline[] sk = new SafekeeperTimeline[3];
  private Disposable gossip;

  private final WalFetcher fetcher = LocalPeers.fetcher(peer -> sk[peer - 1]);

  @BeforeEach
  void start() throws IOException {
    compute = PgCluster.initdb();
    identity = PgWal.startSafekeeperCompute(compute, 3, Map.of());
    for (int i = 1; i <= 3; i++) {
      sk[i - 1] =
          SafekeeperTimeline.create(
              tmp.resolve("sk" + i), identity, LagLimits.NONE, SafekeeperConfig.of(i, 3), fetcher);
    }
    gossip =
        Flux.interval(Duration.ofMillis(50), Schedulers.newBoundedElastic(1, 10, "gossip"))
            .onBackpressureDrop()
            .subscribe(
                x -> {
                  for (SafekeeperTimeline a : sk) {
                    for (SafekeeperTimeline b : sk) {
                      if (a != null && b != null && a != b) {
                        b.onPeerStatus(a.status());
                      }
                    }
                  }
                  for (SafekeeperTimeline a : sk) {
                    if (a != null) {
                      a.maintain();
                    }
                  }
                });
  }

  @AfterEach
  void stop() throws IOException {
    gossip.dispose();
    for (int i = 0; i < 3; i++) {
      if (sk[i] != null) {
        sk[i].close();
        sk[i] = null;
      }
    }
    compute.close();
  }

  private Election.Member member(int id) {
    return new Election.Member() {
      @Override
      public int id() {
        return id;
      }

      private SafekeeperTimeline t() throws IOException {
        SafekeeperTimeline t = sk[id - 1];
        if (t == null) {
          throw new IOException("safekeeper " + id + " is down");
        }
        return t;
      }

      @Override
      public TimelineStatus status() throws IOException {
        return t().status();
      }

      @Override
      public VoteResponse vote(long term) throws IOException {
        return t().vote(term);
      }

      @Override
      public TimelineStatus adopt(long term, List<TermEntry> history, Lsn upTo, int donorId)
          throws IOException {
        return t().adopt(term, history, upTo, donorId);
      }
    };
  }

  private Election.Result elect() throws Election.ElectionFailed {
    return Election.run(List.of(member(1), member(2), member(3)), Duration.ofSeconds(10));
  }

  private void startCompute(long term) throws IOException {
    ComputeSource c = new ComputeSource(term, "127.0.0.1", compute.port(), "postgres");
    for (SafekeeperTimeline t : sk) {
      if (t != null) {
        t.setCompute(c);
      }
    }
  }

  /**
   * The end of the compute's last record, or a little before it: the insert position, less the page
   * header it skips when the last record ended at a page boundary.
   */
  private Lsn lastRecordEnd() {
    Lsn insert = PgWal.lsn(compute, "pg_current_wal_insert_lsn()");
    if (insert.segmentOffset(identity.segmentSize()) == 40) {
      return insert.plus(-40);
    }
    return insert.pageOffset() == 24 ? insert.plus(-24) : insert;
  }

  private CompletableFuture<String> async(String sql) {
    return CompletableFuture.supplyAsync(() -> compute.sql(sql));
  }

  private void down(int id) throws IOException {
    sk[id - 1].close();
    sk[id - 1] = null;
  }

  private void up(int id) throws IOException {
    sk[id - 1] =
        SafekeeperTimeline.open(tmp.resolve("sk" + id), SafekeeperConfig.of(id, 3), fetcher);
  }

  @Test
  void commitsNeedAMajorityAndEveryoneEndsWithTheSameWal() throws Exception {
    Election.Result r = elect();
    assertThat(r.term()).isEqualTo(1);
    assertThat(r.startLsn()).isEqualTo(identity.startLsn());
    startCompute(1);
    compute.sql("create table t (id int primary key, v text)");
    compute.sql("insert into t select i, repeat('x', 100) from generate_series(1, 20000) i");

    // One safekeeper down: two of three still acknowledge.
    down(2);
    compute.sql("insert into t select i, 'two' from generate_series(20001, 21000) i");

    // Two down: the commit waits (no error) ...
    down(3);
    CompletableFuture<String> blocked = async("insert into t values (0, 'waits')");
    Thread.sleep(2000);
    assertThat(blocked).isNotDone();
    // ... and completes once a majority is back.
    up(3);
    blocked.get(60, TimeUnit.SECONDS);
    up(2);

    Lsn end = lastRecordEnd();
    PgWal.await(
        T,
        "every safekeeper to hold the WAL up to " + end,
        () -> {
          for (SafekeeperTimeline t : sk) {
            if (t.status().flushLsn().isBefore(end)) {
              return false;
            }
          }
          return true;
        });
    PgWal.await(
        T, "the commit LSN to reach " + end, () -> !sk[0].status().commitLsn().isBefore(end));
    String d1 = LocalPeers.digest(sk[0], identity.startLsn(), end);
    assertThat(LocalPeers.digest(sk[1], identity.startLsn(), end)).isEqualTo(d1);
    assertThat(LocalPeers.digest(sk[2], identity.startLsn(), end)).isEqualTo(d1);
    // ... and it is the compute's own WAL.
    byte[] computeWal = PgWal.readWal(compute, 1, identity.segmentSize(), identity.startLsn(), end);
    assertThat(
            computeWal.length
                + " bytes "
                + HexFormat.of().formatHex(PgWal.sha256().digest(computeWal)))
        .isEqualTo(d1);
    for (SafekeeperTimeline t : sk) {
      assertThat(t.status().history()).containsExactly(new TermEntry(1, identity.startLsn()));
    }
  }

  @Test
  void aSafekeeperThatVotedForANewTermTakesNoMoreWalFromTheOldCompute() throws Exception {
    elect();
    startCompute(1);
    compute.sql("create table t (v int); insert into t values (1)");
    VoteResponse v = sk[0].vote(2);
    assertThat(v.granted()).isTrue();
    Lsn frozen = sk[0].status().writeLsn();
    // The other two still make a quorum for the compute of term 1.
    compute.sql("insert into t select generate_series(1, 10000)");
    Lsn end = lastRecordEnd();
    PgWal.await(T, "safekeeper 2 to have " + end, () -> !sk[1].status().flushLsn().isBefore(end));
    assertThat(sk[0].status().writeLsn()).isEqualTo(frozen);
    assertThat(sk[0].status().intake()).isEqualTo("idle");
    // Peer recovery does not copy WAL of a term older than the promised one.
    Thread.sleep(500);
    assertThat(sk[0].status().writeLsn()).isEqualTo(frozen);
  }

  @Test
  void aRestartedSafekeeperCatchesUpFromItsPeersWithoutTheCompute() throws Exception {
    elect();
    startCompute(1);
    down(3);
    compute.sql(
        "create table t (v text); insert into t select repeat('y', 500) from generate_series(1, 20000)");
    Lsn end = lastRecordEnd();
    compute.stop(); // no compute to pull from
    up(3);
    PgWal.await(
        T,
        "safekeeper 3 to catch up from its peers",
        () -> !sk[2].status().flushLsn().isBefore(end));
    assertThat(LocalPeers.digest(sk[2], identity.startLsn(), end))
        .isEqualTo(LocalPeers.digest(sk[0], identity.startLsn(), end));
  }

  @Test
  void commitsWaitWhileThePageserverLagsBeyondTheLimit() throws Exception {
    elect();
    startCompute(1);
    compute.sql("create table t (v text)");
    Lsn base = PgWal.lsn(compute, "pg_current_wal_flush_lsn()");
    PageserverFeedback ps = new PageserverFeedback(base, base, base);
    for (SafekeeperTimeline t : sk) {
      t.onPageserverFeedback(ps);
      t.setLagLimits(new LagLimits(1 << 20, 0, 0));
    }
    // ~4 MiB of WAL: more than the pageserver may trail.
    CompletableFuture<String> big =
        async("insert into t select repeat(md5(i::text), 32) from generate_series(1, 3000) i");
    PgWal.await(
        T,
        "the WAL to reach the safekeepers",
        () -> sk[0].status().flushLsn().minus(base) > 2 << 20);
    Thread.sleep(1000);
    assertThat(big).isNotDone();
    TimelineStatus s = sk[0].status();
    assertThat(s.ackLsn()).isEqualTo(base.plus(1 << 20));
    // The pageserver catches up (it reports to one safekeeper; gossip tells the others).
    Lsn now = PgWal.lsn(compute, "pg_current_wal_flush_lsn()");
    sk[1].onPageserverFeedback(new PageserverFeedback(now, base, base));
    big.get(30, TimeUnit.SECONDS);
    // Without limits the pageserver's position does not matter.
    for (SafekeeperTimeline t : sk) {
      t.setLagLimits(LagLimits.NONE);
    }
    compute.sql("insert into t select repeat(md5(i::text), 32) from generate_series(1, 3000) i");
    List<Lsn> acks = new ArrayList<>();
    for (SafekeeperTimeline t : sk) {
      acks.add(t.status().ackLsn());
    }
    assertThat(acks).allSatisfy(a -> assertThat(a).isGreaterThan(now));
  }
}
