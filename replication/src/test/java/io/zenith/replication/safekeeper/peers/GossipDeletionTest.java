package io.zenith.replication.safekeeper.peers;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.replication.safekeeper.Safekeeper;
import io.zenith.replication.safekeeper.SafekeeperConfig;
import io.zenith.replication.safekeeper.SafekeeperTimeline;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * Three real safekeepers gossiping (statuses handed over in-process): a timeline deleted on two of
 * them while the third still has it is never brought back to them by the third's gossip, across a
 * restart too; once deleted on the third as well, it is gone everywhere.
 */
class GossipDeletionTest {
  @TempDir Path dir;

  private static final Lsn START = Lsn.parse("0/3000028");
  private static final Duration ROUND = Duration.ofMillis(20);

  private final Map<Integer, Safekeeper> sks = new ConcurrentHashMap<>();
  private final Map<Integer, AtomicInteger> asked = new ConcurrentHashMap<>();

  private Safekeeper start(int id) throws IOException {
    Safekeeper sk =
        Safekeeper.start(
            SafekeeperConfig.of(id, 3),
            dir.resolve("sk" + id),
            (p, t, from, upTo) -> Flux.error(new IOException("no WAL to copy here")),
            new SimpleMeterRegistry(),
            Duration.ofHours(1));
    sks.put(id, sk);
    return sk;
  }

  /** Peer {@code id}'s statuses, as its HTTP API would list them; a stopped one is unreachable. */
  private List<io.zenith.replication.safekeeper.TimelineStatus> statuses(int id)
      throws IOException {
    asked.computeIfAbsent(id, k -> new AtomicInteger()).incrementAndGet();
    Safekeeper sk = sks.get(id);
    if (sk == null) {
      throw new java.net.ConnectException("safekeeper " + id + " is down");
    }
    return sk.timelines().stream().map(SafekeeperTimeline::status).toList();
  }

  private Gossip gossip(int id, Scheduler blocking) {
    List<Integer> peers = new ArrayList<>(List.of(1, 2, 3));
    peers.remove(Integer.valueOf(id));
    return new Gossip(sks.get(id), peers, this::statuses, ROUND, blocking);
  }

  private static void await(String what, BooleanSupplier ok) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
    while (!ok.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.sleep(10);
    }
  }

  /** Waits until peer {@code peer} was asked {@code rounds} more times (by anyone). */
  private void awaitRounds(int peer, int rounds) throws InterruptedException {
    int from = asked.computeIfAbsent(peer, k -> new AtomicInteger()).get();
    await(rounds + " gossip rounds", () -> asked.get(peer).get() >= from + rounds);
  }

  @Test
  void gossipNeverBringsADeletedTimelineBack() throws Exception {
    Identity id = new Identity(TenantId.generate(), TimelineId.generate(), 42, 15, 16 << 20, START);
    Scheduler blocking = Schedulers.newBoundedElastic(6, 100, "gossip-deletion-test");
    List<Gossip> gossips = new ArrayList<>();
    try {
      for (int i = 1; i <= 3; i++) {
        start(i);
      }
      for (int i = 1; i <= 3; i++) {
        gossips.add(gossip(i, blocking));
      }
      sks.get(1).create(id, LagLimits.NONE);
      await(
          "safekeepers 2 and 3 to learn the timeline",
          () ->
              sks.get(2).find(id.tenant(), id.timeline()).isPresent()
                  && sks.get(3).find(id.tenant(), id.timeline()).isPresent());

      assertThat(sks.get(1).delete(id.tenant(), id.timeline())).isTrue();
      assertThat(sks.get(2).delete(id.tenant(), id.timeline())).isTrue();
      // Safekeeper 3 still lists it: many rounds later, 1 and 2 still do not hold it.
      awaitRounds(3, 40);
      for (int i = 1; i <= 2; i++) {
        assertThat(sks.get(i).find(id.tenant(), id.timeline())).as("safekeeper %d", i).isEmpty();
        assertThat(sks.get(i).isDeleted(id.tenant(), id.timeline())).isTrue();
      }
      assertThat(sks.get(3).find(id.tenant(), id.timeline())).isPresent();

      // A restart keeps the tombstone.
      gossips.remove(0).close();
      sks.remove(1).close();
      start(1);
      gossips.add(0, gossip(1, blocking));
      awaitRounds(3, 40);
      assertThat(sks.get(1).find(id.tenant(), id.timeline())).isEmpty();

      assertThat(sks.get(3).delete(id.tenant(), id.timeline())).isTrue();
      awaitRounds(1, 10);
      for (int i = 1; i <= 3; i++) {
        assertThat(sks.get(i).timelines()).as("safekeeper %d", i).isEmpty();
      }
    } finally {
      gossips.forEach(Gossip::close);
      sks.values().forEach(Safekeeper::close);
      blocking.dispose();
    }
  }
}
