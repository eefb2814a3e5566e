package io.zenith.replication.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import io.zenith.wal.log.ControlFile.TermEntry;
import io.zenith.wal.log.WalLog;
import io.zenith.wal.testing.SyntheticWal;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.scheduler.Schedulers;

/**
 * WAL retention (ADR 0007) on a timeline of synthetic WAL over several 1 MiB segments, safekeeper 1
 * of 3 with its peers' statuses given by the test: segments go below min(commit LSN, the
 * pageserver's durable position, every peer's flush LSN), oldest first, and only whole ones; a
 * restart after a removal (also a partial one) holds the rest and refuses reads below it.
 */
class SafekeeperRetentionTest {
  private static final int SEG = 1 << 20;
  private static final long SYSID = 7_000_000_000_000_000_001L;
  private static final Lsn START = Lsn.of(SEG);
  private static final TermEntry T1 = new TermEntry(1, START);

  @TempDir Path tmp;
  private final Identity id =
      new Identity(TenantId.generate(), TimelineId.generate(), SYSID, 15, SEG, START);
  private SafekeeperTimeline t;
  private final SyntheticWal wal = fiveSegments();
  private final Lsn end = wal.position();

  @AfterEach
  void close() throws IOException {
    if (t != null) {
      t.close();
    }
  }

  private static SyntheticWal fiveSegments() {
    SyntheticWal w = new SyntheticWal(SEG, SYSID, 1, START);
    int i = 0;
    while (w.position().segmentNumber(SEG) < 5) {
      w.append(10, 0, 100 + i, 3000 + (i * 37) % 9000);
      i++;
    }
    return w;
  }

  private Path dir() {
    return tmp.resolve("sk1");
  }

  /** Safekeeper 1's timeline holding {@link #wal}, committed to its end, in term 1. */
  private SafekeeperTimeline open() throws IOException {
    Path dir = Files.createDirectories(dir());
    if (ControlFile.read(dir).isEmpty()) {
      ControlFile.create(id, ControlFile.LagLimits.NONE)
          .withPromisedTerm(1)
          .withHistory(List.of(T1))
          .withPositions(new ControlFile.Positions(end, START, Lsn.INVALID, START))
          .write(dir);
      try (WalLog log = WalLog.open(dir, SEG, SYSID, START)) {
        log.append(START, ByteBuffer.wrap(wal.bytes()));
        log.flush();
      }
    }
    t = SafekeeperTimeline.open(dir, SafekeeperConfig.of(1, 3), LocalPeers.fetcher(i -> null));
    return t;
  }

  /** A peer in term 1 with WAL up to {@code flush}; it heard nothing from the pageserver. */
  private TimelineStatus peer(int skId, Lsn flush) {
    return new TimelineStatus(
        skId,
        id,
        1,
        List.of(T1),
        flush,
        flush,
        flush,
        flush,
        new PageserverFeedback(START, START, START),
        ControlFile.LagLimits.NONE,
        null,
        0,
        "idle",
        null,
        START,
        0,
        Lsn.INVALID);
  }

  private static Lsn segment(int n) {
    return Lsn.of((long) n * SEG);
  }

  private List<String> segmentFiles() throws IOException {
    try (Stream<Path> s = Files.list(dir())) {
      return s.map(p -> p.getFileName().toString())
          .filter(n -> n.startsWith("0000"))
          .sorted()
          .toList();
    }
  }

  private static String name(int n) {
    return String.format("0000000100000000%08X", n);
  }

  @Test
  void segmentsGoBelowTheLowestOfCommitPageserverDurablePositionAndPeers() throws IOException {
    open();
    assertThat(segmentFiles()).hasSize(5);
    t.maintain();
    assertThat(segmentFiles()).as("peers never heard of: they may need everything").hasSize(5);

    t.onPeerStatus(peer(2, end));
    t.onPeerStatus(peer(3, segment(2).plus(500)));
    t.maintain();
    assertThat(segmentFiles()).as("the pageserver holds nothing durably yet").hasSize(5);

    // Received and flushed (disk-consistent) are not its durable position: apply is (ADR 0007).
    t.onPageserverFeedback(new PageserverFeedback(end, end, START));
    t.maintain();
    assertThat(segmentFiles()).hasSize(5);

    t.onPageserverFeedback(new PageserverFeedback(end, end, segment(4).plus(100)));
    t.maintain();
    assertThat(segmentFiles())
        .as("peer 3 still needs segment 2 on")
        .containsExactly(name(2), name(3), name(4), name(5) + WalLog.PARTIAL);
    assertThat(t.oldestLsn()).isEqualTo(segment(2));

    t.onPeerStatus(peer(3, end));
    t.maintain();
    assertThat(segmentFiles())
        .as("the segment holding the pageserver's durable position stays")
        .containsExactly(name(4), name(5) + WalLog.PARTIAL);
    TimelineStatus s = t.status();
    assertThat(s.oldestLsn()).isEqualTo(segment(4));
    assertThat(s.removedBytes()).isEqualTo(3L * SEG);
    // A read below what is held is refused, naming the oldest LSN.
    assertThatThrownBy(() -> t.readCommitted(segment(3), Schedulers.boundedElastic()).blockFirst())
        .isInstanceOf(SafekeeperException.class)
        .hasMessageContaining("is not here any more (the oldest held is at " + segment(4) + ")");
  }

  @Test
  void aRestartAfterRemovalHoldsTheRestAndRecoversFromAboveTheHorizon() throws IOException {
    open();
    t.onPeerStatus(peer(2, end));
    t.onPeerStatus(peer(3, end));
    String expected = LocalPeers.digest(t, segment(4), end);
    t.onPageserverFeedback(new PageserverFeedback(end, end, segment(4).plus(100)));
    t.maintain();
    assertThat(segmentFiles()).containsExactly(name(4), name(5) + WalLog.PARTIAL);
    // The control file's recovery start moved above the horizon before the first deletion.
    assertThat(ControlFile.read(dir()).orElseThrow().positions().recoveryStart())
        .isGreaterThanOrEqualTo(segment(4));
    t.close();
    t = null;

    open();
    assertThat(t.flushRecordEnd()).isEqualTo(end);
    assertThat(t.oldestLsn()).isEqualTo(segment(4));
    assertThat(t.status().removedBytes()).isEqualTo(3L * SEG);
    assertThat(LocalPeers.digest(t, segment(4), end)).isEqualTo(expected);
    assertThatThrownBy(() -> t.readFlushed(START, end, Schedulers.boundedElastic()).blockFirst())
        .isInstanceOf(SafekeeperException.class)
        .hasMessageContaining("is not here any more");
    // Positions reloaded from the control file: nothing more to remove, nothing breaks.
    t.maintain();
    assertThat(segmentFiles()).containsExactly(name(4), name(5) + WalLog.PARTIAL);
  }

  @Test
  void aRestartAfterAPartialRemovalGoesOnWhereItStopped() throws IOException {
    open();
    t.onPeerStatus(peer(2, end));
    t.onPeerStatus(peer(3, end));
    t.close(); // positions persisted: the recovery start is the durable end
    t = null;
    // A crash after the first of three deletions.
    Files.delete(dir().resolve(name(1)));

    open();
    assertThat(t.flushRecordEnd()).isEqualTo(end);
    assertThat(t.oldestLsn()).isEqualTo(segment(2));
    assertThat(t.status().removedBytes()).isEqualTo(SEG);
    t.onPeerStatus(peer(2, end));
    t.onPeerStatus(peer(3, end));
    t.onPageserverFeedback(new PageserverFeedback(end, end, segment(4)));
    t.maintain();
    assertThat(segmentFiles()).containsExactly(name(4), name(5) + WalLog.PARTIAL);
  }

  @Test
  void thePageserverIsItsApplicationNameFromItsAddresses() throws Exception {
    PageserverSource ps =
        new PageserverSource("ps-main", List.of(InetAddress.ofLiteral("127.0.0.1")));
    InetSocketAddress local = new InetSocketAddress(InetAddress.ofLiteral("127.0.0.1"), 40000);
    InetSocketAddress other = new InetSocketAddress(InetAddress.ofLiteral("127.0.0.2"), 40000);
    assertThat(ps.matches("ps-main", local)).isTrue();
    assertThat(ps.matches("ps-main", other)).isFalse();
    assertThat(ps.matches("pageserver", local)).isFalse();
    assertThat(ps.matches("", local)).isFalse();
    assertThat(PageserverSource.LOCAL.matches("pageserver", local)).isTrue();
    assertThat(
            PageserverSource.LOCAL.matches(
                "pageserver", new InetSocketAddress(InetAddress.ofLiteral("::1"), 1)))
        .isTrue();
    assertThatThrownBy(() -> new PageserverSource("pageserver", List.of()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("at least one address");
    assertThatThrownBy(() -> new PageserverSource("", List.of(InetAddress.ofLiteral("::1"))))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("must not be empty");
  }
}
