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
import io.zenith.wal.testing.FullDisk;
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
  private final WalFetcher fetcher = LocalPeers.fetcher(open::get);

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
    return digest(out.toByteArray());
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

  /**
   * Upkeep: a peer of a newer term that cannot serve its WAL (its libpq endpoint is down) does not
   * keep this safekeeper from learning the new term's compute, which can serve the same WAL.
   */
  @Test
  void aPeerThatCannotServeDoesNotKeepUpkeepFromLearningTheCompute() throws IOException {
    // Term 2 began after the 40 records shared with safekeeper 1's term-1 WAL.
    Lsn fork = wal(40, 0, 2).position();
    Lsn end = wal(40, 60, 2).position();
    TermEntry t1 = new TermEntry(1, START);
    SafekeeperTimeline a = safekeeper(1, wal(40, 25, 1), 1, List.of(t1), fork);
    List<TermEntry> h2 = List.of(t1, new TermEntry(2, fork));
    ControlFile.ComputeSource compute =
        new ControlFile.ComputeSource(2, "127.0.0.1", 1, "postgres");
    ControlFile.PageserverFeedback ps = new ControlFile.PageserverFeedback(START, START, START);
    // Safekeeper 2 (not running here: fetching from it fails) is in term 2 with its compute.
    a.onPeerStatus(
        new TimelineStatus(
            2,
            id,
            2,
            h2,
            end,
            end,
            end,
            end,
            ps,
            ControlFile.LagLimits.NONE,
            compute,
            0,
            "streaming",
            null,
            START,
            0,
            Lsn.INVALID));
    a.maintain();
    TimelineStatus s = a.status();
    assertThat(s.flushLsn()).isEqualTo(fork);
    assertThat(s.history()).isEqualTo(h2);
    assertThat(s.compute()).as("learned although the catch-up failed").isEqualTo(compute);
  }

  /** A peer's status in term 1 at {@code end}, with its compute and stopped compute term. */
  private TimelineStatus peerInTerm1(
      int skId, Lsn end, ControlFile.ComputeSource compute, long stoppedComputeTerm) {
    return new TimelineStatus(
        skId,
        id,
        1,
        List.of(new TermEntry(1, START)),
        end,
        end,
        end,
        end,
        new ControlFile.PageserverFeedback(START, START, START),
        ControlFile.LagLimits.NONE,
        compute,
        stoppedComputeTerm,
        compute == null ? "idle" : "failed",
        null,
        START,
        0,
        Lsn.INVALID);
  }

  /**
   * A stopped compute: forgotten durably and its intake stopped; a stop of another term's compute
   * is refused and changes nothing; stopping twice is harmless; neither a request nor a peer that
   * still has it brings it back, also after a restart.
   */
  @Test
  void aStoppedComputeIsForgottenDurablyAndNotTakenUpAgain() throws IOException {
    SyntheticWal w = wal(20, 0, 1);
    List<TermEntry> h1 = List.of(new TermEntry(1, START));
    SafekeeperTimeline a = safekeeper(1, w, 1, h1, START);
    // Nothing listens on port 1: the intake keeps failing, as after `pg stop` before this API.
    ControlFile.ComputeSource dead = new ControlFile.ComputeSource(1, "127.0.0.1", 1, "postgres");
    a.setCompute(dead);
    assertThat(a.status().intake()).isIn("connecting", "failed");

    assertThatThrownBy(() -> a.stopCompute(2))
        .isInstanceOf(SafekeeperException.class)
        .hasMessage("the compute here belongs to term 1, not to term 2; it was left alone")
        .extracting(e -> ((SafekeeperException) e).kind())
        .isEqualTo(SafekeeperException.Kind.TERM_CONFLICT);
    assertThat(a.status().compute()).isEqualTo(dead);

    a.stopCompute(1);
    TimelineStatus s = a.status();
    assertThat(s.compute()).isNull();
    assertThat(s.intake()).isEqualTo("idle");
    assertThat(s.intakeError()).isNull();
    assertThat(s.stoppedComputeTerm()).isEqualTo(1);
    assertThat(ControlFile.read(tmp.resolve("sk1")).orElseThrow().compute()).isNull();
    a.stopCompute(1); // again: nothing to do

    // A peer that was not told still has it: it is not learned from there.
    a.onPeerStatus(peerInTerm1(2, w.position(), dead, 0));
    a.maintain();
    assertThat(a.status().compute()).isNull();
    assertThat(a.status().intake()).isEqualTo("idle");
    assertThatThrownBy(() -> a.setCompute(dead))
        .hasMessage(
            "the compute of term 1 has stopped; a new compute needs a new term (an election)");

    a.close();
    open.remove(1);
    SafekeeperTimeline again =
        SafekeeperTimeline.open(tmp.resolve("sk1"), SafekeeperConfig.of(1, 3), fetcher);
    open.put(1, again);
    again.onPeerStatus(peerInTerm1(2, w.position(), dead, 0));
    again.maintain();
    assertThat(again.status().compute()).isNull();
    assertThat(again.status().intake()).isEqualTo("idle");
    assertThat(again.status().stoppedComputeTerm()).isEqualTo(1);

    // The next term's compute is taken up as before.
    assertThat(again.vote(2).granted()).isTrue();
    again.adopt(2, List.of(h1.getFirst(), new TermEntry(2, w.position())), w.position(), 1);
    ControlFile.ComputeSource next = new ControlFile.ComputeSource(2, "127.0.0.1", 1, "postgres");
    again.setCompute(next);
    assertThat(again.status().compute()).isEqualTo(next);
    assertThat(again.status().intake()).isNotEqualTo("idle");
    // A stale stop does not touch it.
    assertThatThrownBy(() -> again.stopCompute(1))
        .hasMessage("the compute here belongs to term 2, not to term 1; it was left alone");
    assertThat(again.status().compute()).isEqualTo(next);
  }

  /** A safekeeper that was not told (it was down) drops the compute once a peer says it stopped. */
  @Test
  void aComputeAPeerWasToldHasStoppedIsDropped() throws IOException {
    SyntheticWal w = wal(20, 0, 1);
    SafekeeperTimeline b = safekeeper(2, w, 1, List.of(new TermEntry(1, START)), START);
    ControlFile.ComputeSource dead = new ControlFile.ComputeSource(1, "127.0.0.1", 1, "postgres");
    b.setCompute(dead);
    // A peer that knows of no stopped compute changes nothing.
    b.onPeerStatus(peerInTerm1(1, w.position(), null, 0));
    b.maintain();
    assertThat(b.status().compute()).isEqualTo(dead);

    b.onPeerStatus(peerInTerm1(1, w.position(), null, 1));
    b.maintain();
    TimelineStatus s = b.status();
    assertThat(s.compute()).isNull();
    assertThat(s.intake()).isEqualTo("idle");
    assertThat(s.stoppedComputeTerm()).isEqualTo(1);
    assertThat(ControlFile.read(tmp.resolve("sk2")).orElseThrow().stoppedComputeTerm())
        .isEqualTo(1);
  }

  /**
   * A full disk: the append that needs a new segment fails with the position and the file in its
   * message, nothing of it is acknowledged, and the WAL continues from the last whole record once
   * there is space again.
   */
  @Test
  void aFullDiskFailsTheAppendPreciselyAndNothingUnwrittenIsAcknowledged() throws IOException {
    SyntheticWal w = new SyntheticWal(SEG, SYSID, 1, START);
    for (int i = 0; w.position().segmentNumber(SEG) < 2; i++) {
      w.append(10, 0, 100 + i, 3000 + (i * 37) % 5000);
    }
    byte[] bytes = w.bytes();
    Path dir = java.nio.file.Files.createDirectories(tmp.resolve("full"));
    ControlFile.ComputeSource compute =
        new ControlFile.ComputeSource(1, "127.0.0.1", 1, "postgres");
    ControlFile.create(id, ControlFile.LagLimits.NONE)
        .withPromisedTerm(1)
        .withHistory(List.of(new TermEntry(1, START)))
        .withCompute(compute)
        .write(dir);
    FullDisk disk = FullDisk.withFree(SEG); // the first segment only
    SafekeeperTimeline t = SafekeeperTimeline.open(dir, SafekeeperConfig.of(1, 3), fetcher, disk);
    open.put(1, t);
    int half = SEG / 2;
    t.appendFromCompute(1, START, ByteBuffer.wrap(bytes, 0, half));
    Lsn acked = t.flushAndAck();
    assertThatThrownBy(
            () ->
                t.appendFromCompute(
                    1, START.plus(half), ByteBuffer.wrap(bytes, half, bytes.length - half)))
        .isInstanceOf(SafekeeperException.class)
        .satisfies(
            e ->
                assertThat(((SafekeeperException) e).kind()).isEqualTo(SafekeeperException.Kind.IO))
        .hasMessage(
            "WAL at "
                + START.plus(half)
                + " not stored, resuming at "
                + acked
                + ": cannot create WAL segment "
                + dir.resolve("000000010000000000000002.partial")
                + ": "
                + FullDisk.ENOSPC);
    assertThat(t.flushAndAck()).isEqualTo(acked);
    assertThat(t.status().writeLsn()).isEqualTo(acked);
    disk.setFree(Long.MAX_VALUE);
    int from = (int) acked.minus(START);
    t.appendFromCompute(1, acked, ByteBuffer.wrap(bytes, from, bytes.length - from));
    assertThat(t.flushAndAck()).isEqualTo(w.position());
    assertThat(digest(t, w.position())).isEqualTo(digest(bytes));
  }

  private static String digest(byte[] b) {
    try {
      return b.length
          + " bytes "
          + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }
}
