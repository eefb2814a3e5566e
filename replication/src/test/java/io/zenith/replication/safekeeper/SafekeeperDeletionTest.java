package io.zenith.replication.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;

/**
 * Deleting a timeline on a safekeeper: its files go, its tombstone stays and keeps it from coming
 * back (creation, gossip, a restart), and a crash after the tombstone is finished at the next
 * start.
 */
class SafekeeperDeletionTest {
  private static final int SEG = 1 << 20;
  private static final Lsn START = Lsn.of(SEG + 40);

  @TempDir Path dir;
  private final ListAppender<ILoggingEvent> logged = new ListAppender<>();
  private final Logger skLog = (Logger) LoggerFactory.getLogger(Safekeeper.class);

  @BeforeEach
  void captureLog() {
    logged.start();
    skLog.addAppender(logged);
  }

  @AfterEach
  void detach() {
    skLog.detachAppender(logged);
  }

  private Safekeeper start() throws IOException {
    return Safekeeper.start(
        SafekeeperConfig.of(1, 3),
        dir,
        (p, t, from, upTo) -> Flux.error(new IOException("no peers here")),
        new SimpleMeterRegistry(),
        Duration.ofHours(1));
  }

  private static Identity identity() {
    return new Identity(TenantId.generate(), TimelineId.generate(), 42, 15, SEG, START);
  }

  private Path timelineDir(Identity id) {
    return dir.resolve(id.tenant().toString()).resolve(id.timeline().toString());
  }

  private static TimelineStatus peerStatus(Identity id, int peer) {
    return new TimelineStatus(
        peer,
        id,
        0,
        List.of(),
        START,
        START,
        START,
        START,
        new PageserverFeedback(START, START, START),
        LagLimits.NONE,
        null,
        0,
        "idle",
        null,
        START,
        0,
        Lsn.INVALID);
  }

  private static void assertKind(ThrowingRunnable r, SafekeeperException.Kind kind, String text) {
    assertThatThrownBy(r::run)
        .isInstanceOfSatisfying(
            SafekeeperException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(kind);
              assertThat(e.getMessage()).contains(text);
            });
  }

  private interface ThrowingRunnable {
    void run() throws Exception;
  }

  @Test
  void aDeletedTimelineLosesItsFilesAndNeverComesBack() throws Exception {
    Identity id = identity();
    Identity other = identity();
    try (Safekeeper sk = start()) {
      sk.create(id, null);
      sk.create(other, null);
      assertThat(timelineDir(id).resolve(ControlFile.FILE_NAME)).exists();

      assertThat(sk.delete(id.tenant(), id.timeline())).isTrue();

      assertThat(timelineDir(id)).doesNotExist();
      assertThat(dir.resolve(id.tenant().toString()).resolve(id.timeline() + ".deleted"))
          .isRegularFile();
      assertThat(sk.find(id.tenant(), id.timeline())).isEmpty();
      assertThat(sk.isDeleted(id.tenant(), id.timeline())).isTrue();
      assertThat(sk.timelines()).extracting(SafekeeperTimeline::identity).containsExactly(other);
      // Idempotent; the API answers 410 for what was deleted, 404 for what never was.
      assertThat(sk.delete(id.tenant(), id.timeline())).isFalse();
      assertKind(
          () -> sk.timeline(id.tenant(), id.timeline()),
          SafekeeperException.Kind.DELETED,
          "was deleted on safekeeper 1");
      assertKind(
          () -> sk.delete(id.tenant(), TimelineId.generate()),
          SafekeeperException.Kind.NOT_FOUND,
          "is not here");
      assertKind(() -> sk.create(id, null), SafekeeperException.Kind.DELETED, "never used again");

      // Gossip from a peer that still has it: not learned, said once.
      sk.onPeerStatus(peerStatus(id, 2));
      sk.onPeerStatus(peerStatus(id, 2));
      assertThat(sk.find(id.tenant(), id.timeline())).isEmpty();
      assertThat(timelineDir(id)).doesNotExist();
      assertThat(
              logged.list.stream()
                  .map(ILoggingEvent::getFormattedMessage)
                  .filter(m -> m.contains("not learned: it was deleted here")))
          .hasSize(1);
    }
    try (Safekeeper sk = start()) {
      assertThat(sk.isDeleted(id.tenant(), id.timeline())).isTrue();
      assertThat(sk.timelines()).extracting(SafekeeperTimeline::identity).containsExactly(other);
      assertKind(() -> sk.create(id, null), SafekeeperException.Kind.DELETED, "was deleted");
      sk.onPeerStatus(peerStatus(id, 3));
      assertThat(sk.find(id.tenant(), id.timeline())).isEmpty();
    }
  }

  @Test
  void aCrashAfterTheTombstoneIsFinishedAtTheNextStart() throws Exception {
    Identity id = identity();
    try (Safekeeper sk = start()) {
      sk.create(id, null);
    }
    // What a crash right after the tombstone leaves: the tombstone and the whole timeline.
    Tombstones.load(dir).add(id.tenant(), id.timeline());
    assertThat(timelineDir(id).resolve(ControlFile.FILE_NAME)).exists();
    try (Safekeeper sk = start()) {
      assertThat(timelineDir(id)).doesNotExist();
      assertThat(sk.find(id.tenant(), id.timeline())).isEmpty();
      assertThat(sk.isDeleted(id.tenant(), id.timeline())).isTrue();
      assertThat(sk.delete(id.tenant(), id.timeline())).isFalse();
    }
    assertThat(Files.list(dir.resolve(id.tenant().toString())).map(p -> p.getFileName().toString()))
        .containsExactly(id.timeline() + ".deleted");
  }
}
