package io.zenith.replication.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import io.zenith.wal.log.ControlFile.TermEntry;
import io.zenith.wal.log.WalLog;
import io.zenith.wal.testing.SyntheticWal;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * A safekeeper learning timelines from its peers' statuses ({@link Safekeeper#onPeerStatus}): one
 * it lacks is created with the peer's identity through the durable create path and caught up from
 * the most advanced peer; a concurrent creation by the control plane with the same identity is
 * fine, a different identity is refused (logged once) and never replaces what is held.
 */
class SafekeeperLearnTest {
  private static final int SEG = 1 << 20;
  private static final long SYSID = 7_000_000_000_000_000_001L;
  private static final Lsn START = Lsn.of(SEG);
  private static final Duration T = Duration.ofSeconds(30);

  @TempDir Path tmp;
  private final Map<Integer, SafekeeperTimeline> peers = new ConcurrentHashMap<>();
  private final List<Safekeeper> started = new ArrayList<>();
  private final ListAppender<ILoggingEvent> logged = new ListAppender<>();
  private final Logger skLog = (Logger) LoggerFactory.getLogger(Safekeeper.class);

  /** Reads a donor's WAL from the peer timeline opened for it in this test. */
  private final WalFetcher fetcher = LocalPeers.fetcher(peers::get);

  @BeforeEach
  void captureLog() {
    logged.start();
    skLog.addAppender(logged);
  }

  @AfterEach
  void closeAll() throws IOException {
    skLog.detachAppender(logged);
    started.forEach(Safekeeper::close);
    for (SafekeeperTimeline t : peers.values()) {
      t.close();
    }
  }

  private Safekeeper safekeeper(int id) throws IOException {
    Safekeeper sk =
        Safekeeper.start(
            SafekeeperConfig.of(id, 3),
            tmp.resolve("sk" + id),
            fetcher,
            new SimpleMeterRegistry(),
            Duration.ofMillis(50));
    started.add(sk);
    return sk;
  }

  /** {@code n} synthetic records of term 1: every {@code n} gives a prefix of a longer one. */
  private static SyntheticWal wal(int n) {
    SyntheticWal w = new SyntheticWal(SEG, SYSID, 1, START);
    for (int i = 0; i < n; i++) {
      w.append(10, 0, 100 + i, 3000 + (i * 37) % 5000);
    }
    return w;
  }

  /** Peer {@code skId}'s timeline {@code id}, holding {@code wal} of term 1, all committed. */
  private SafekeeperTimeline peer(int skId, Identity id, SyntheticWal wal) throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("peer" + skId));
    ControlFile.create(id, LagLimits.NONE)
        .withPromisedTerm(1)
        .withHistory(List.of(new TermEntry(1, START)))
        .withPositions(new ControlFile.Positions(wal.position(), START, Lsn.INVALID, START))
        .write(dir);
    try (WalLog log = WalLog.open(dir, SEG, SYSID, START)) {
      log.append(START, ByteBuffer.wrap(wal.bytes()));
      log.flush();
    }
    SafekeeperTimeline t = SafekeeperTimeline.open(dir, SafekeeperConfig.of(skId, 3), fetcher);
    peers.put(skId, t);
    return t;
  }

  /** A status as a fresh peer timeline of {@code id} reports it (term 0, no WAL). */
  private static TimelineStatus fresh(int skId, Identity id, LagLimits limits) {
    return new TimelineStatus(
        skId,
        id,
        0,
        List.of(),
        id.startLsn(),
        id.startLsn(),
        id.startLsn(),
        id.startLsn(),
        new PageserverFeedback(id.startLsn(), id.startLsn(), id.startLsn()),
        limits,
        null,
        0,
        "idle",
        null,
        id.startLsn(),
        0,
        Lsn.INVALID);
  }

  private static Identity identity(long systemId) {
    return new Identity(TenantId.generate(), TimelineId.generate(), systemId, 15, SEG, START);
  }

  private static String digest(SafekeeperTimeline t, Lsn upTo) {
    return LocalPeers.digest(t, START, upTo);
  }

  private List<String> messages(Level level, String containing) {
    return logged.list.stream()
        .filter(e -> e.getLevel() == level)
        .map(ILoggingEvent::getFormattedMessage)
        .filter(m -> m.contains(containing))
        .toList();
  }

  @Test
  void aTimelineAPeerHoldsIsCreatedDurablyAndCaughtUpFromTheMostAdvancedPeer() throws Exception {
    Identity id = identity(SYSID);
    SafekeeperTimeline behind = peer(1, id, wal(40));
    SyntheticWal longer = wal(90);
    SafekeeperTimeline ahead = peer(2, id, longer);
    Lsn end = longer.position();
    Safekeeper sk = safekeeper(3);
    assertThat(sk.timelines()).isEmpty();

    sk.onPeerStatus(behind.status());
    sk.onPeerStatus(ahead.status());
    SafekeeperTimeline t = sk.find(id.tenant(), id.timeline()).orElseThrow();
    assertThat(t.identity()).isEqualTo(id);
    String name = id.tenant() + "/" + id.timeline();
    assertThat(messages(Level.INFO, "learned timeline"))
        .containsExactly(
            "safekeeper 3: learned timeline "
                + name
                + " from safekeeper 1 (system id "
                + Long.toUnsignedString(SYSID)
                + ", PostgreSQL 15, 1 MiB segments, start "
                + START
                + ")");

    PgWal.await(T, "the learned timeline to hold " + end, () -> t.flushRecordEnd().equals(end));
    assertThat(digest(t, end)).isEqualTo(digest(ahead, end));
    assertThat(t.status().history()).containsExactly(new TermEntry(1, START));
    assertThat(t.status().promisedTerm()).isEqualTo(1);
    PgWal.await(T, "the commit LSN to reach " + end, () -> t.status().commitLsn().equals(end));

    // Durable: a restart finds the timeline, its identity and its WAL.
    sk.close();
    Safekeeper again = safekeeper(3);
    SafekeeperTimeline reopened = again.find(id.tenant(), id.timeline()).orElseThrow();
    assertThat(reopened.identity()).isEqualTo(id);
    assertThat(reopened.flushRecordEnd()).isEqualTo(end);
    assertThat(digest(reopened, end)).isEqualTo(digest(ahead, end));
    // Statuses of it from then on go to it; nothing is learned twice.
    again.onPeerStatus(ahead.status());
    assertThat(reopened.peers()).containsOnlyKeys(2);
    assertThat(messages(Level.INFO, "learned timeline")).hasSize(1);
  }

  @Test
  void aConcurrentCreateWithTheSameIdentityEndsWithOneTimelineThatTakesTheStatus()
      throws Exception {
    Safekeeper sk = safekeeper(3);
    LagLimits limits = new LagLimits(1 << 20, 0, 0);
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try {
      for (int round = 0; round < 20; round++) {
        Identity id = identity(SYSID + round);
        CyclicBarrier go = new CyclicBarrier(2);
        Future<Boolean> created =
            pool.submit(
                () -> {
                  go.await();
                  try {
                    sk.create(id, limits);
                    return true;
                  } catch (SafekeeperException e) {
                    assertThat(e.kind()).isEqualTo(SafekeeperException.Kind.ALREADY_EXISTS);
                    return false;
                  }
                });
        Future<?> learned =
            pool.submit(
                () -> {
                  go.await();
                  sk.onPeerStatus(fresh(1, id, limits));
                  return null;
                });
        boolean byCreate = created.get(30, TimeUnit.SECONDS);
        learned.get(30, TimeUnit.SECONDS);
        SafekeeperTimeline t = sk.find(id.tenant(), id.timeline()).orElseThrow();
        assertThat(t.identity()).isEqualTo(id);
        assertThat(t.status().lagLimits()).isEqualTo(limits);
        assertThat(t.peers()).as("round %d: the peer's status is taken", round).containsKey(1);
        assertThat(messages(Level.INFO, id.timeline().toString()))
            .as("round %d: one creation, by the control plane or by gossip", round)
            .hasSize(1)
            .allMatch(m -> m.contains(byCreate ? ": created, WAL starts at" : "learned timeline"));
      }
    } finally {
      pool.shutdownNow();
    }
    assertThat(sk.timelines()).hasSize(20);
    assertThat(messages(Level.WARN, "")).isEmpty();
  }

  @Test
  void aPeersStatusWithAnotherIdentityIsRefusedOnceAndNeverReplacesTheTimeline() throws Exception {
    Safekeeper sk = safekeeper(3);
    Identity mine = identity(SYSID);
    SafekeeperTimeline t = sk.create(mine, LagLimits.NONE);
    Identity theirs =
        new Identity(mine.tenant(), mine.timeline(), SYSID + 1, 15, SEG, mine.startLsn());
    for (int i = 0; i < 3; i++) {
      sk.onPeerStatus(fresh(1, theirs, LagLimits.NONE));
    }
    assertThat(t.peers()).as("a status of another system is no donor").isEmpty();
    assertThat(sk.find(mine.tenant(), mine.timeline()).orElseThrow()).isSameAs(t);
    assertThat(ControlFile.read(t.dir()).orElseThrow().identity()).isEqualTo(mine);
    assertThat(messages(Level.WARN, "refused"))
        .containsExactly(
            "safekeeper 3: status of timeline "
                + mine.tenant()
                + "/"
                + mine.timeline()
                + " from safekeeper 1 refused: it has system id "
                + Long.toUnsignedString(SYSID + 1)
                + ", PostgreSQL 15, 1 MiB segments, start "
                + START
                + ", this one holds system id "
                + Long.toUnsignedString(SYSID)
                + ", PostgreSQL 15, 1 MiB segments, start "
                + START);
    // The control plane's creation of the other identity is refused as before.
    assertThatThrownBy(() -> sk.create(theirs, null))
        .isInstanceOf(SafekeeperException.class)
        .hasMessageContaining("exists already");

    // Its own status (a peer list naming itself) creates nothing; neither does an invalid one.
    Identity own = identity(SYSID);
    sk.onPeerStatus(fresh(3, own, LagLimits.NONE));
    assertThat(sk.find(own.tenant(), own.timeline())).isEmpty();
    Identity bad = new Identity(TenantId.generate(), TimelineId.generate(), SYSID, 15, 1000, START);
    sk.onPeerStatus(fresh(1, bad, LagLimits.NONE));
    sk.onPeerStatus(fresh(1, bad, LagLimits.NONE));
    assertThat(sk.find(bad.tenant(), bad.timeline())).isEmpty();
    assertThat(messages(Level.WARN, "not a valid identity")).hasSize(1);
    assertThat(Files.exists(tmp.resolve("sk3").resolve(bad.tenant().toString()))).isFalse();

    // Nothing is created after close.
    sk.close();
    Identity late = identity(SYSID);
    sk.onPeerStatus(fresh(1, late, LagLimits.NONE));
    assertThat(Files.exists(tmp.resolve("sk3").resolve(late.tenant().toString()))).isFalse();
  }
}
