package io.zenith.replication.client;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.replication.pgwire.BackendMessage;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.pgwire.ReplicationMessage;
import io.zenith.replication.pgwire.ReplicationMessage.PrimaryKeepalive;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyStatusUpdate;
import io.zenith.replication.pgwire.ReplicationMessage.XLogData;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.Lsn;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import reactor.test.StepVerifier;

/** Stream endings and server misbehaviour that real PostgreSQL shows only in rare situations. */
@ExtendWith(NettyLeakCheck.class)
class FakeWalsenderTest {
  private static final Duration T = Duration.ofSeconds(20);
  private static final Lsn START = Lsn.parse("0/1000000");

  private static CopyData wal(Lsn start, int length) {
    byte[] bytes = new byte[length];
    Arrays.fill(bytes, (byte) length);
    return new XLogData(start, start.plus(length), 0, bytes, 0, length).toCopyData();
  }

  private static ReplicationClient connect(FakeWalsender fake) {
    return ReplicationClient.connect(
            PgConnectOptions.builder().port(fake.port()).user("u").build(),
            ReplicationOptions.DEFAULT.withStatusInterval(Duration.ZERO))
        .block(T);
  }

  @Test
  void copyDoneWithANextTimelineCompletesTheStreamAndKeepalivesAreAnswered() throws Exception {
    List<StandbyStatusUpdate> updates = new CopyOnWriteArrayList<>();
    List<String> queries = new CopyOnWriteArrayList<>();
    try (FakeWalsender fake =
        new FakeWalsender(
            c -> {
              c.acceptStartup();
              queries.add(c.readUntil('Q').text());
              c.send(new BackendMessage.CopyBothResponse(0, List.of()));
              updates.add(ReplicationMessage.parseStatusUpdate(c.readUntil('d').body()));
              c.send(wal(START, 100));
              c.send(new PrimaryKeepalive(START.plus(100), 0, true).toCopyData());
              updates.add(ReplicationMessage.parseStatusUpdate(c.readUntil('d').body()));
              c.send(wal(START.plus(100), 50));
              c.send(CopyDone.INSTANCE);
              c.readUntil('c');
              c.send(
                  new BackendMessage.RowDescription(
                      List.of(
                          BackendMessage.Field.text("next_tli"),
                          BackendMessage.Field.text("next_tli_startpos"))));
              c.send(
                  new BackendMessage.DataRow(
                      List.of(
                          "2".getBytes(StandardCharsets.US_ASCII),
                          "0/1000096".getBytes(StandardCharsets.US_ASCII))));
              c.send(new BackendMessage.CommandComplete("START_STREAMING"));
              c.send(BackendMessage.ReadyForQuery.IDLE);
              c.readUntil('X');
            })) {
      ReplicationClient rc = connect(fake);
      StepVerifier.create(rc.startReplication(null, START, 1))
          .assertNext(ch -> assertThat(ch.start()).isEqualTo(START))
          .assertNext(
              ch -> {
                assertThat(ch.start()).isEqualTo(START.plus(100));
                assertThat(ch.length()).isEqualTo(50);
                assertThat(ch.data().get()).isEqualTo((byte) 50);
              })
          .verifyComplete();
      assertThat(rc.lastTimelineSwitch())
          .contains(new ReplicationClient.TimelineSwitch(2, Lsn.parse("0/1000096")));
      assertThat(rc.metrics().keepalivesAnswered()).isEqualTo(1);
      rc.close().block(T);
      fake.done().get(20, TimeUnit.SECONDS);
    }
    assertThat(queries).containsExactly("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1");
    // the first update at stream start, the second answering the keepalive; both report the
    // start point, since nothing was reported
    assertThat(updates).hasSize(2);
    assertThat(updates)
        .allSatisfy(
            u -> {
              assertThat(u.write()).isEqualTo(START);
              assertThat(u.flush()).isEqualTo(START);
              assertThat(u.apply()).isEqualTo(START);
            });
  }

  @Test
  void aGapInTheWalIsAProtocolError() throws Exception {
    try (FakeWalsender fake =
        new FakeWalsender(
            c -> {
              c.acceptStartup();
              c.readUntil('Q');
              c.send(new BackendMessage.CopyBothResponse(0, List.of()));
              c.send(wal(START, 100));
              c.send(wal(START.plus(200), 100));
              c.read();
            })) {
      ReplicationClient rc = connect(fake);
      StepVerifier.create(rc.startReplication(null, START, 0))
          .expectNextCount(1)
          .expectErrorSatisfies(
              e -> {
                assertThat(e).isInstanceOf(PgWireException.class);
                assertThat(((PgWireException) e).kind()).isEqualTo(PgWireException.Kind.PROTOCOL);
                assertThat(e.getMessage())
                    .endsWith(
                        "WAL from the server is not contiguous: expected data at 0/1000064, got"
                            + " 0/10000C8");
              })
          .verify(T);
      assertThat(rc.connection().isClosed()).isTrue();
    }
  }

  @Test
  void anErrorDuringStreamingFollowsTheChunksBeforeItAndTheConnectionGoesOn() throws Exception {
    try (FakeWalsender fake =
        new FakeWalsender(
            c -> {
              c.acceptStartup();
              c.readUntil('Q');
              c.send(new BackendMessage.CopyBothResponse(0, List.of()));
              c.send(wal(START, 100));
              c.send(
                  new BackendMessage.ErrorResponse(
                      PgNotice.error(
                          "58P01",
                          "requested WAL segment 000000010000000000000001 has already been"
                              + " removed")));
              c.send(BackendMessage.ReadyForQuery.IDLE);
              c.readUntil('Q');
              c.send(new BackendMessage.CommandComplete("SET"));
              c.send(BackendMessage.ReadyForQuery.IDLE);
              c.readUntil('X');
            })) {
      ReplicationClient rc = connect(fake);
      StepVerifier.create(rc.startReplication(null, START, 0), 0)
          .thenRequest(1)
          .expectNextCount(1)
          .expectErrorSatisfies(
              e -> assertThat(((PgServerException) e).sqlState()).isEqualTo("58P01"))
          .verify(T);
      assertThat(rc.connection().simpleQuery("set x = 1").block(T).commandTag()).isEqualTo("SET");
      rc.close().block(T);
      fake.done().get(20, TimeUnit.SECONDS);
    }
  }
}
