package io.zenith.replication.client;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.client.ReplicationClient.Progress;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import reactor.core.publisher.Mono;
import reactor.test.StepVerifier;

/**
 * {@link WalSenderFollower} against a real PostgreSQL 15: the steps in order, the slot, the system
 * check, and the connection closed however the follow ends.
 */
@ExtendWith(NettyLeakCheck.class)
class WalSenderFollowerTest {
  private static final Duration T = Duration.ofSeconds(30);

  private static PgCluster cluster;

  @BeforeAll
  static void startCluster() {
    cluster = PgCluster.initdb();
    cluster.configure(
        Map.of(
            "wal_level", "replica",
            "max_wal_senders", "4",
            "max_replication_slots", "4",
            "fsync", "off"));
    cluster.start();
  }

  @AfterAll
  static void stopCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private static WalSenderFollower follower(String slot, WalSenderFollower.SystemCheck check) {
    return new WalSenderFollower(
        PgConnectOptions.builder().port(cluster.port()).user("postgres").build(),
        ReplicationOptions.DEFAULT,
        slot,
        check);
  }

  /** Records the callbacks; streams until the first chunk, from the start of the current WAL. */
  private static final class Recorder implements WalSenderFollower.Session<Lsn> {
    final List<String> events = new CopyOnWriteArrayList<>();
    volatile ReplicationClient released;

    @Override
    public void connected(ReplicationClient client) {
      events.add("connected");
    }

    @Override
    public Mono<Lsn> stream(WalSenderFollower.Connection c) {
      events.add("stream " + c.slot());
      Lsn start = PgWal.segmentStart(c.system().xlogPos(), PgWal.segmentSize(cluster));
      return c.startReplication(start, 0, new Progress(start, start, start))
          .next()
          .map(WalChunk::start);
    }

    @Override
    public void released(ReplicationClient client) {
      events.add("released");
      released = client;
    }
  }

  @Test
  void createsTheSlotThenHandsOverAnIdentifiedConnectionAndClosesItAfterwards() {
    Recorder r = new Recorder();
    long expected = PgWal.systemId(cluster);
    StepVerifier.create(
            follower("follower_ok", id -> assertThat(id.systemId()).isEqualTo(expected)).follow(r))
        .assertNext(lsn -> assertThat(lsn.isValid()).isTrue())
        .expectComplete()
        .verify(T);
    assertThat(r.events).containsExactly("connected", "stream follower_ok", "released");
    assertThat(
            cluster
                .sql("SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'follower_ok'")
                .strip())
        .isEqualTo("physical");
    StepVerifier.create(r.released.connection().onClose()).expectComplete().verify(T);

    // An existing slot is fine: a reconnect follows the same one.
    Recorder again = new Recorder();
    StepVerifier.create(follower("follower_ok", id -> {}).follow(again))
        .expectNextCount(1)
        .expectComplete()
        .verify(T);
    assertThat(again.events).containsExactly("connected", "stream follower_ok", "released");
  }

  @Test
  void anotherSystemFailsWithTheChecksErrorBeforeAnySlotOrStream() {
    Recorder r = new Recorder();
    IllegalStateException refused = new IllegalStateException("not the expected system");
    StepVerifier.create(
            follower(
                    "follower_refused",
                    id -> {
                      throw refused;
                    })
                .follow(r))
        .expectErrorSatisfies(e -> assertThat(e).isSameAs(refused))
        .verify(T);
    assertThat(r.events).containsExactly("connected", "released");
    assertThat(
            cluster
                .sql(
                    "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'follower_refused'")
                .strip())
        .isEqualTo("0");
    StepVerifier.create(r.released.connection().onClose()).expectComplete().verify(T);
  }
}
