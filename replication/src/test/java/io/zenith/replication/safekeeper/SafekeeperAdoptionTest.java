package io.zenith.replication.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.TermEntry;
import io.zenith.wal.log.WalLog;
import io.zenith.wal.testing.SyntheticWal;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Schedulers;

/**
 * Adoption (the step of elections and peer recovery that truncates and copies WAL) on logs built
 * from synthetic WAL whose terms diverge.
 */
class SafekeeperAdoptionTest {
  private static final int SEG = 1 << 20;
  private static final long SYSID = 7_000_000_000_000_000_001L;
  private static final Lsn START = Lsn.of(SEG);

  @TempDir Path tmp;
  private final Map<Integer, SafekeeperTimeline> open = new HashMap<>();
  private final Identity id =
      new Identity(TenantId.generate(), TimelineId.generate(), SYSID, 15, SEG, START);

  /** Reads the donor's WAL from the timeline opened for it in this test. */
  private final WalFetcher fetcher =
      (peer, ident, from, upTo) -> {
        SafekeeperTimeline d = open.get(peer);
        return d == null
            ? Flux.error(new IOException("safekeeper " + peer + " is down"))
            : d.readFlushed(from, upTo, Schedulers.boundedElastic());
      };

  @AfterEach
  void closeAll() throws IOException {
    for (SafekeeperTimeline t : open.values()) {
      t.close();
    }
  }

  /** WAL with a shared prefix of {@code shared} records, then records of its own. */
  private static SyntheticWal wal(int shared, int own, int ownSeed) {
    SyntheticWal w = new SyntheticWal(SEG, SYSID, 1, START);
    for (int i = 0; i < shared; i++) {
      w.append(10, 0, 100 + i, 3000 + (i * 37) % 5000);
    }
    for (int i = 0; i < own; i++) {
      w.append(10, 0, 900 + i, 100 + (i * 131 + ownSeed * 7919) % 9000);
    }
    return w;
  }

  /** A safekeeper's timeline holding {@code wal} labelled by {@code history}. */
  private SafekeeperTimeline safekeeper(
      int skId, SyntheticWal wal, long promised, List<TermEntry> history, Lsn commit)
      throws IOException {
    Path dir = java.nio.file.Files.createDirectories(tmp.resolve("sk" + skId));
    ControlFile c = ControlFile.create(id, ControlFile.LagLimits.NONE);
    c.withPromisedTerm(promised)
        .withHistory(history)
        .withPositions(new ControlFile.Positions(commit, START, Lsn.INVALID, START))
        .write(dir);
    try (WalLog log = WalLog.open(dir, SEG, SYSID, START)) {
      log.append(START, ByteBuffer.wrap(wal.bytes()));
      log.flush();
    }
    SafekeeperTimeline t = SafekeeperTimeline.open(dir, SafekeeperConfig.of(skId, 3), fetcher);
    open.put(skId, t);
    return t;
  }

  private static String digest(SafekeeperTimeline t, Lsn upTo) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    t.readFlushed(START, upTo, Schedulers.boundedElastic())
        .toIterable()
        .forEach(
            p -> {
              out.writeBytes(io.netty.buffer.ByteBufUtil.getBytes(p.data()));
              p.release();
            });
    try {
      byte[] b = out.toByteArray();
      return b.length
          + " bytes "
          + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }

  @Test
  void aDivergentTailIsTruncatedAndTheDonorsWalCopied() throws IOException {
    // Term 1 wrote 40 records everywhere; safekeeper 1 then got an uncommitted tail of term 1
    // (the compute died), while term 2's compute wrote other WAL to safekeeper 2.
    SyntheticWal old = wal(40, 25, 1);
    SyntheticWal next = wal(40, 60, 2);
    Lsn fork = next.records().get(39).end();
    TermEntry t1 = new TermEntry(1, START);
    SafekeeperTimeline a = safekeeper(1, old, 1, List.of(t1), fork);
    SafekeeperTimeline b = safekeeper(2, next, 2, List.of(t1, new TermEntry(2, fork)), fork);
    Lsn end = next.position();
    assertThat(a.status().flushLsn()).isEqualTo(old.position());

    // An election of term 3 with safekeeper 2 as donor.
    List<TermEntry> h3 = TermHistory.append(b.status().history(), 3, end);
    assertThat(a.vote(3).granted()).isTrue();
    assertThat(b.vote(3).granted()).isTrue();
    TimelineStatus sa = a.adopt(3, h3, end, 2);
    b.adopt(3, h3, end, 2);

    assertThat(sa.flushLsn()).isEqualTo(end);
    assertThat(sa.history()).isEqualTo(h3);
    assertThat(sa.lastLogTerm()).isEqualTo(3);
    assertThat(digest(a, end)).isEqualTo(digest(b, end));

    // The same after a restart (control file + WAL scan).
    a.close();
    open.remove(1);
    SafekeeperTimeline again =
        SafekeeperTimeline.open(tmp.resolve("sk1"), SafekeeperConfig.of(1, 3), fetcher);
    open.put(1, again);
    assertThat(again.status().flushLsn()).isEqualTo(end);
    assertThat(again.status().history()).isEqualTo(h3);
    assertThat(again.status().promisedTerm()).isEqualTo(3);
    assertThat(digest(again, end)).isEqualTo(digest(b, end));
  }

  @Test
  void adoptionNeverTruncatesCommittedWal() throws IOException {
    SyntheticWal old = wal(40, 25, 1);
    SyntheticWal next = wal(40, 60, 2);
    Lsn fork = next.records().get(39).end();
    TermEntry t1 = new TermEntry(1, START);
    // Safekeeper 1 believes WAL beyond the fork was committed: the history says otherwise, so one
    // of the two is wrong and nothing may be truncated.
    Lsn committed = old.records().get(50).end();
    SafekeeperTimeline a = safekeeper(1, old, 1, List.of(t1), committed);
    SafekeeperTimeline b = safekeeper(2, next, 2, List.of(t1, new TermEntry(2, fork)), fork);
    List<TermEntry> h3 = TermHistory.append(b.status().history(), 3, next.position());
    assertThatThrownBy(() -> a.adopt(3, h3, next.position(), 2))
        .isInstanceOf(SafekeeperException.class)
        .hasMessageContaining("would truncate committed WAL")
        .hasMessageContaining("below the commit LSN " + committed);
    assertThat(a.status().flushLsn()).isEqualTo(old.position());
    assertThat(a.status().history()).containsExactly(t1);
  }

  @Test
  void staleTermsAreRefused() throws IOException {
    SyntheticWal w = wal(10, 0, 1);
    SafekeeperTimeline a = safekeeper(1, w, 5, List.of(new TermEntry(1, START)), START);
    VoteResponse r = a.vote(4);
    assertThat(r.granted()).isFalse();
    assertThat(r.term()).isEqualTo(5);
    assertThat(a.vote(5).granted()).isFalse();
    assertThatThrownBy(() -> a.adopt(4, List.of(new TermEntry(1, START)), w.position(), 2))
        .isInstanceOf(SafekeeperException.class)
        .extracting(e -> ((SafekeeperException) e).kind())
        .isEqualTo(SafekeeperException.Kind.TERM_CONFLICT);
    assertThatThrownBy(
            () -> a.setCompute(new ControlFile.ComputeSource(4, "127.0.0.1", 5432, "postgres")))
        .hasMessageContaining("term is 5");
    VoteResponse six = a.vote(6);
    assertThat(six.granted()).isTrue();
    assertThat(six.flushLsn()).isEqualTo(w.position());
    assertThat(six.history()).containsExactly(new TermEntry(1, START));
  }

  @Test
  void aDonorThatCannotServeFailsTheAdoptionWithoutMislabellingWal() throws IOException {
    SyntheticWal old = wal(40, 25, 1);
    SyntheticWal next = wal(40, 60, 2);
    Lsn fork = next.records().get(39).end();
    TermEntry t1 = new TermEntry(1, START);
    SafekeeperTimeline a = safekeeper(1, old, 1, List.of(t1), fork);
    List<TermEntry> h3 = List.of(t1, new TermEntry(2, fork), new TermEntry(3, next.position()));
    // Safekeeper 2 is not running.
    assertThatThrownBy(() -> a.adopt(3, h3, next.position(), 2))
        .isInstanceOf(SafekeeperException.class)
        .hasMessageContaining("safekeeper 2 is down");
    TimelineStatus s = a.status();
    // Truncated to the common point, and the entries beyond its WAL do not count yet.
    assertThat(s.flushLsn()).isEqualTo(fork);
    assertThat(s.history()).containsExactly(t1, new TermEntry(2, fork));
    assertThat(s.promisedTerm()).isEqualTo(3);
  }
}
