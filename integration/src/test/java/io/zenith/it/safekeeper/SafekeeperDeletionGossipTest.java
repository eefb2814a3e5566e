package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.replication.safekeeper.Safekeeper;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.Identity;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * Deletion against gossip over real HTTP: three safekeeper servers (in this JVM, real sockets); the
 * third is down while the timeline is deleted on the other two. When it comes back it still gossips
 * the timeline, and the other two refuse to learn it again (they say so), answering 410 for it;
 * deleted on the third too, it is gone everywhere.
 */
@ExtendWith(NettyLeakCheck.class)
class SafekeeperDeletionGossipTest {
  private static final Duration T = Duration.ofSeconds(60);

  @TempDir Path tmp;
  private SafekeeperSet sks;
  private final ListAppender<ILoggingEvent> logged = new ListAppender<>();
  private final Logger skLog = (Logger) LoggerFactory.getLogger(Safekeeper.class);

  @AfterEach
  void stop() {
    skLog.detachAppender(logged);
    if (sks != null) {
      sks.close();
    }
  }

  private int status(int sk, Identity id) {
    try {
      sks.client(sk).timeline(id.tenant(), id.timeline());
      return 200;
    } catch (JsonHttpClient.ApiError e) {
      return e.status();
    }
  }

  private boolean refusedBy(int sk, Identity id) {
    List<ILoggingEvent> events;
    synchronized (logged) { // the appender appends under its own lock, from gossip threads
      events = List.copyOf(logged.list);
    }
    return events.stream()
        .map(ILoggingEvent::getFormattedMessage)
        .anyMatch(
            m ->
                m.startsWith("safekeeper " + sk + ": timeline " + id.tenant() + "/" + id.timeline())
                    && m.contains("of safekeeper 3 not learned: it was deleted here"));
  }

  @Test
  void aSafekeeperThatWasDownGossipsTheTimelineButTheOthersDoNotTakeItBack() {
    logged.start();
    skLog.addAppender(logged);
    sks = new SafekeeperSet(tmp, 3).startAll();
    Identity id =
        new Identity(
            TenantId.generate(), TimelineId.generate(), 42, 15, 16 << 20, Lsn.parse("0/3000028"));
    sks.client(1).createTimeline(id, null);
    PgWal.await(
        T,
        "gossip to bring the timeline to 2 and 3",
        () -> status(2, id) == 200 && status(3, id) == 200);

    sks.stop(3);
    for (int sk : List.of(1, 2)) {
      assertThat(sks.client(sk).deleteTimeline(id.tenant(), id.timeline()).deletedNow()).isTrue();
    }
    sks.start(3);
    PgWal.await(
        T,
        "safekeepers 1 and 2 to hear the timeline from 3 and refuse it",
        () -> refusedBy(1, id) && refusedBy(2, id));
    assertThat(status(1, id)).isEqualTo(410);
    assertThat(status(2, id)).isEqualTo(410);
    assertThat(status(3, id)).isEqualTo(200);
    JsonHttpClient.ApiError e =
        catchThrowableOfType(
            JsonHttpClient.ApiError.class, () -> sks.client(1).createTimeline(id, null));
    assertThat(e.status()).isEqualTo(410);

    assertThat(sks.client(3).deleteTimeline(id.tenant(), id.timeline()).deletedNow()).isTrue();
    for (int sk = 1; sk <= 3; sk++) {
      assertThat(sks.client(sk).timelines(id.tenant())).as("safekeeper %d", sk).isEmpty();
      assertThat(status(sk, id)).isEqualTo(410);
    }
  }
}
