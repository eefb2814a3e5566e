package io.zenith.replication.client;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.test.StepVerifier;

/** The server dies (pg_ctl stop -m immediate) while WAL streams: the stream fails clearly. */
@ExtendWith(NettyLeakCheck.class)
class ServerCrashTest {
  private static final Logger log = LoggerFactory.getLogger(ServerCrashTest.class);
  private static final Duration T = Duration.ofSeconds(30);

  @Test
  void aServerKilledMidStreamFailsTheStreamWithConnectionLost() {
    try (PgCluster c = PgCluster.initdb()) {
      c.configure(Map.of("wal_level", "replica", "max_wal_senders", "4", "fsync", "off"));
      c.start();
      ReplicationClient rc =
          ReplicationClient.connect(ReplicationStreamTest.options(c, "zenith_crash")).block(T);
      Lsn start = rc.identifySystem().block(T).xlogPos();
      AtomicLong bytes = new AtomicLong();
      StepVerifier.create(
              rc.startReplication(null, start, 0).doOnNext(ch -> bytes.addAndGet(ch.length())))
          .then(() -> c.sql("create table t as select generate_series(1, 10000) g"))
          .then(() -> PgWal.await(T, "some WAL", () -> bytes.get() > 0))
          .then(
              () ->
                  c.run(
                      "pg_ctl",
                      List.of("-D", c.dataDir().toString(), "-m", "immediate", "-w", "stop")))
          .thenConsumeWhile(ch -> true)
          .expectErrorSatisfies(
              e -> {
                assertThat(e).isInstanceOf(PgWireException.class);
                PgWireException pe = (PgWireException) e;
                assertThat(pe.kind()).isEqualTo(PgWireException.Kind.CONNECTION_LOST);
                assertThat(pe.getMessage())
                    .startsWith(rc.connection().id() + " 127.0.0.1:" + c.port())
                    .contains("connection closed by the server");
                log.info("stream failed as expected: {}", pe.getMessage());
              })
          .verify(T);
      assertThat(rc.connection().isClosed()).isTrue();
    }
  }

  @Test
  void aCleanShutdownCompletesTheStreamOnceEverythingIsConfirmed() throws Exception {
    try (PgCluster c = PgCluster.initdb()) {
      c.configure(Map.of("wal_level", "replica", "max_wal_senders", "4", "fsync", "off"));
      c.start();
      ReplicationClient rc =
          ReplicationClient.connect(ReplicationStreamTest.options(c, "zenith_shutdown")).block(T);
      Lsn start = rc.identifySystem().block(T).xlogPos();
      AtomicLong chunks = new AtomicLong();
      // A standby that flushes what it receives: the walsender's shutdown waits for that.
      StepVerifier.create(
              rc.startReplication(null, start, 0)
                  .doOnNext(
                      ch -> {
                        chunks.incrementAndGet();
                        rc.reportProgress(ch.end(), ch.end(), ch.end());
                      }))
          .then(() -> c.sql("create table t as select generate_series(1, 1000) g"))
          .then(() -> PgWal.await(T, "some WAL", () -> chunks.get() > 0))
          .then(c::stop)
          .thenConsumeWhile(ch -> true)
          .verifyComplete();
      assertThat(rc.connection().isClosed()).isTrue();
    }
  }
}
