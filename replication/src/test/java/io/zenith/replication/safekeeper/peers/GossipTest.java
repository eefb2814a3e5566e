package io.zenith.replication.safekeeper.peers;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.replication.safekeeper.Safekeeper;
import io.zenith.replication.safekeeper.SafekeeperConfig;
import io.zenith.replication.safekeeper.SafekeeperTimeline;
import io.zenith.replication.safekeeper.TimelineStatus;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import java.io.IOException;
import java.net.ConnectException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/** Gossip against a scripted {@link PeerStatusSource}: no HTTP, a real {@link Safekeeper}. */
class GossipTest {
  @TempDir Path dir;

  private static final Lsn START = Lsn.parse("0/3000028");

  private static TimelineStatus peerStatus(Identity id, int peer, Lsn pageserverFlush) {
    return peerStatus(id, peer, pageserverFlush, LagLimits.NONE);
  }

  private static TimelineStatus peerStatus(
      Identity id, int peer, Lsn pageserverFlush, LagLimits limits) {
    return new TimelineStatus(
        peer,
        id,
        0,
        List.of(),
        START,
        START,
        START,
        START,
        new PageserverFeedback(pageserverFlush, pageserverFlush, START),
        limits,
        null,
        0,
        "idle",
        null,
        START,
        0,
        Lsn.INVALID);
  }

  @Test
  void statusesReachHeldTimelinesCreateMissingOnesAndAnUnreachablePeerDoesNotStopTheOthers()
      throws Exception {
    Identity id = new Identity(TenantId.generate(), TimelineId.generate(), 42, 15, 16 << 20, START);
    Identity elsewhere =
        new Identity(TenantId.generate(), TimelineId.generate(), 42, 15, 16 << 20, START);
    Scheduler blocking = Schedulers.newBoundedElastic(4, 100, "gossip-test");
    AtomicInteger asked3 = new AtomicInteger();
    Lsn reported = Lsn.parse("0/3100000");
    LagLimits theirs = new LagLimits(1 << 20, 0, 0);
    try (Safekeeper sk =
        Safekeeper.start(
            SafekeeperConfig.of(1, 3),
            dir,
            (p, t, from, upTo) -> Flux.error(new IOException("no peers here")),
            new SimpleMeterRegistry(),
            Duration.ofHours(1))) {
      SafekeeperTimeline t = sk.create(id, LagLimits.NONE);
      PeerStatusSource source =
          peer -> {
            if (peer == 3) {
              asked3.incrementAndGet();
              throw new ConnectException("Connection refused");
            }
            return List.of(
                peerStatus(elsewhere, peer, reported, theirs), peerStatus(id, peer, reported));
          };
      try (Gossip g = new Gossip(sk, List.of(2, 3), source, Duration.ofMillis(20), blocking)) {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while ((t.peers().isEmpty() || asked3.get() < 3) && System.nanoTime() < deadline) {
          Thread.sleep(10);
        }
        assertThat(t.peers()).containsOnlyKeys(2);
        assertThat(asked3.get()).as("the unreachable peer is asked again").isGreaterThan(2);
        assertThat(g.peerStates()).containsEntry(2, "reachable").containsEntry(3, "unreachable");
        // What a peer heard from the pageserver counts here too.
        assertThat(t.status().pageserver().flushLsn()).isEqualTo(reported);
        // A timeline the peer has and this one lacks is created with the peer's identity and lag
        // limits, and gets the status too.
        SafekeeperTimeline learned =
            sk.find(elsewhere.tenant(), elsewhere.timeline()).orElseThrow();
        assertThat(learned.identity()).isEqualTo(elsewhere);
        assertThat(learned.status().lagLimits()).isEqualTo(theirs);
        assertThat(learned.peers()).containsOnlyKeys(2);
        assertThat(sk.timelines()).hasSize(2);
      }
    } finally {
      blocking.dispose();
    }
  }
}
