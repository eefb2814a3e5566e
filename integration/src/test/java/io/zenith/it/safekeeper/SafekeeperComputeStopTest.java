package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.TimelineInfo;
import io.zenith.replication.safekeeper.Election;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code DELETE …/compute} on three safekeepers (servers in this JVM, real HTTP and gossip) whose
 * compute is gone (nothing listens on its port, as after {@code zenith pg stop}): every intake
 * keeps failing and retrying until one safekeeper is told the compute stopped; then that one, and
 * through gossip the two that were not told, stop pulling for good (intake idle, compute null),
 * also across a restart, and the next term's compute is taken up as before while a stale stop
 * leaves it alone. No PostgreSQL: the intakes never get past connecting.
 */
@ExtendWith(NettyLeakCheck.class)
class SafekeeperComputeStopTest {
  private static final Duration T = Duration.ofSeconds(60);

  @TempDir Path tmp;
  private SafekeeperSet sks;
  private final Identity identity =
      new Identity(
          TenantId.generate(),
          TimelineId.generate(),
          7_301_234_567_890_123_456L,
          15,
          16 << 20,
          Lsn.parse("0/3000028"));

  @BeforeEach
  void start() {
    sks = new SafekeeperSet(tmp, 3).startAll();
    for (int id = 1; id <= 3; id++) {
      // A peer may have learned it by gossip from the first one already: same identity, fine.
      sks.client(id).ensureTimeline(identity, null);
    }
  }

  @AfterEach
  void stop() {
    if (sks != null) {
      sks.close();
    }
  }

  private TimelineInfo info(int id) {
    return sks.client(id).timeline(identity.tenant(), identity.timeline());
  }

  private void awaitAll(String what, Predicate<TimelineInfo> ok) {
    PgWal.await(
        T,
        what,
        () -> {
          for (int id = 1; id <= 3; id++) {
            if (!ok.test(info(id))) {
              return false;
            }
          }
          return true;
        });
  }

  private static boolean stoppedPulling(TimelineInfo t, long term) {
    return t.compute() == null
        && "idle".equals(t.intake())
        && t.intakeError() == null
        && t.stoppedComputeTerm() == term;
  }

  private long electAndSetDeadCompute() throws Election.ElectionFailed {
    long term = Election.run(sks.members(identity.tenant(), identity.timeline()), T).term();
    ComputeSource gone = new ComputeSource(term, "127.0.0.1", SafekeeperSet.freePort(), "postgres");
    for (int id = 1; id <= 3; id++) {
      sks.client(id).setCompute(identity.tenant(), identity.timeline(), gone);
    }
    return term;
  }

  @Test
  void aStoppedComputeIsNoLongerPulledFromByAnySafekeeper() throws Exception {
    long term = electAndSetDeadCompute();
    awaitAll(
        "every intake to fail on the compute that is gone",
        t -> "failed".equals(t.intake()) && t.intakeError() != null);

    // Only safekeeper 1 is told (2 and 3 stand for safekeepers that were down at `pg stop`).
    TimelineInfo told = sks.client(1).stopCompute(identity.tenant(), identity.timeline(), term);
    assertThat(stoppedPulling(told, term)).as("%s", told).isTrue();
    awaitAll(
        "safekeepers 2 and 3 to hear of the stop through gossip", t -> stoppedPulling(t, term));
    // ... and it stays so: over ten gossip and upkeep rounds, no safekeeper takes the compute up
    // again from a peer's stale status.
    long until = System.nanoTime() + Duration.ofSeconds(2).toNanos();
    while (System.nanoTime() < until) {
      for (int id = 1; id <= 3; id++) {
        TimelineInfo t = info(id);
        assertThat(stoppedPulling(t, term)).as("safekeeper %d: %s", id, t).isTrue();
      }
      Thread.sleep(100);
    }

    // Durable: a restarted safekeeper does not pull either.
    sks.stop(2);
    sks.start(2);
    assertThat(stoppedPulling(info(2), term)).as("%s", info(2)).isTrue();

    // The next term's compute is taken up as before; a stale stop of the old one leaves it alone.
    long next = electAndSetDeadCompute();
    assertThat(next).isGreaterThan(term);
    awaitAll(
        "every intake to try the next term's compute",
        t -> t.compute() != null && t.compute().term() == next && !"idle".equals(t.intake()));
    JsonHttpClient.ApiError stale =
        catchThrowableOfType(
            JsonHttpClient.ApiError.class,
            () -> sks.client(1).stopCompute(identity.tenant(), identity.timeline(), term));
    assertThat(stale.status()).isEqualTo(409);
    assertThat(stale.getMessage())
        .isEqualTo(
            "the compute here belongs to term "
                + next
                + ", not to term "
                + term
                + "; it was left alone");
    for (int id = 1; id <= 3; id++) {
      TimelineInfo t = info(id);
      assertThat(t.compute()).as("safekeeper %d: %s", id, t).isNotNull();
      assertThat(t.compute().term()).isEqualTo(next);
      assertThat(t.intake()).isNotEqualTo("idle");
    }
  }
}
