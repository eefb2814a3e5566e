package io.zenith.ingest.keys;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.ingest.keys.CommitTimestamps.AfterEnd;
import io.zenith.ingest.keys.CommitTimestamps.BeforeStart;
import io.zenith.ingest.keys.CommitTimestamps.BelowGcCutoff;
import io.zenith.ingest.keys.CommitTimestamps.Commit;
import io.zenith.ingest.keys.CommitTimestamps.Found;
import io.zenith.ingest.keys.CommitTimestamps.NoCommits;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
import io.zenith.layer.TimelineWriter;
import io.zenith.layer.Value;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The time-to-LSN search over commit-time versions in a real layer store: every kind of answer, in
 * memory and after a flush to layer files, on a branch (commits below the branch point come from
 * the ancestor, the ancestor's later ones are not seen), and under a GC cutoff.
 */
class CommitTimestampsTest {
  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId MAIN = TimelineId.parse("11111111111111111111111111111111");
  private static final TimelineId CHILD = TimelineId.parse("22222222222222222222222222222222");
  private static final Lsn START = Lsn.of(0x0150_0000L);

  /** 2026-12-06T10:00:00Z. */
  private static final Instant T0 = Instant.parse("2026-12-06T10:00:00Z");

  @TempDir Path dir;
  private LayerStore store;
  private Timeline main;

  @BeforeEach
  void open() {
    store = LayerStore.open(dir, LayerStoreConfig.DEFAULT);
    store.createTenant(TENANT);
    main = store.createRootTimeline(TENANT, MAIN, START, 42, 15);
    // the import's first record: something other than a commit at the start
    main.put(KeySpace.CHECKPOINT, START.plus(8), new Value.Image(new byte[88]));
    main.finishRecord(START.plus(8), START);
  }

  @AfterEach
  void close() {
    store.close();
  }

  /** A commit record ending at {@code lsn} with time T0 + {@code seconds}, then a record after. */
  private static Commit commit(TimelineWriter t, long lsn, double seconds) {
    long micros = CommitTimestamps.toPgMicros(at(seconds));
    t.put(KeySpace.COMMIT_TIMESTAMP, Lsn.of(lsn), CommitTimestamps.encode(micros));
    t.finishRecord(Lsn.of(lsn), Lsn.of(lsn - 0x20));
    // some other record after it, so that the commit is not the timeline's last record
    t.put(KeySpace.CHECKPOINT, Lsn.of(lsn + 0x40), new Value.Image(new byte[88]));
    t.finishRecord(Lsn.of(lsn + 0x40), Lsn.of(lsn));
    return new Commit(Lsn.of(lsn), micros);
  }

  private static Instant at(double seconds) {
    return T0.plusNanos(Math.round(seconds * 1e9));
  }

  @Test
  void valuesAreTimestampTzBigEndianAndTimesRoundTripInMicroseconds() {
    Value v = CommitTimestamps.encode(0x0102030405060708L);
    assertThat(((Value.Image) v).bytes()).containsExactly(1, 2, 3, 4, 5, 6, 7, 8);
    assertThat(CommitTimestamps.decode(v)).isEqualTo(0x0102030405060708L);
    assertThat(CommitTimestamps.toPgMicros(Instant.parse("2000-01-01T00:00:00Z"))).isZero();
    assertThat(CommitTimestamps.toPgMicros(Instant.parse("1999-12-31T23:59:59.9999995Z")))
        .as("rounded down, also before the epoch")
        .isEqualTo(-1);
    long m = CommitTimestamps.toPgMicros(Instant.parse("2026-12-06T10:00:00.123456Z"));
    assertThat(CommitTimestamps.toInstant(m))
        .isEqualTo(Instant.parse("2026-12-06T10:00:00.123456Z"));
    assertThat(CommitTimestamps.toPgMicros(Instant.MAX)).isEqualTo(Long.MAX_VALUE);
    assertThat(CommitTimestamps.toPgMicros(Instant.MIN)).isEqualTo(Long.MIN_VALUE);
  }

  @Test
  void aHistoryWithoutCommitsHasNoData() {
    assertThat(CommitTimestamps.lsnByTimestamp(main, T0)).isEqualTo(new NoCommits(START));
    assertThat(CommitTimestamps.lastCommitAtOrBefore(main, T0)).isEmpty();
  }

  @Test
  void eachKindOfAnswerInMemoryAndFromLayerFiles() {
    Commit c1 = commit(main, 0x0200_0000L, 1);
    Commit c2 = commit(main, 0x0200_1000L, 2);
    Commit c3 = commit(main, 0x0300_0000L, 3);
    for (int pass = 0; pass < 2; pass++) {
      assertThat(CommitTimestamps.lsnByTimestamp(main, at(0.5)))
          .isEqualTo(new BeforeStart(START, c1));
      assertThat(CommitTimestamps.lsnByTimestamp(main, at(1))).isEqualTo(new Found(c1.lsn(), c1));
      assertThat(CommitTimestamps.lsnByTimestamp(main, at(1.999999)))
          .isEqualTo(new Found(c1.lsn(), c1));
      assertThat(CommitTimestamps.lsnByTimestamp(main, at(2.5))).isEqualTo(new Found(c2.lsn(), c2));
      assertThat(CommitTimestamps.lsnByTimestamp(main, at(3))).isEqualTo(new Found(c3.lsn(), c3));
      assertThat(CommitTimestamps.lsnByTimestamp(main, at(3.000001))).isEqualTo(new AfterEnd(c3));
      assertThat(CommitTimestamps.lastCommitAtOrBefore(main, at(2.9))).contains(c2);
      assertThat(CommitTimestamps.lastCommitAtOrBefore(main, at(0.9))).isEmpty();
      main.checkpoint(); // the second pass reads layer files
    }
  }

  @Test
  void manyCommitsAreFoundExactly() {
    Random r = new Random(7);
    List<Commit> commits = new ArrayList<>();
    long lsn = 0x0200_0000L;
    for (int i = 0; i < 2000; i++) {
      lsn += 0x80 + 8L * r.nextInt(4000);
      commits.add(commit(main, lsn, 1 + i * 0.01 + r.nextInt(5) * 1e-6));
      if (i == 700) {
        main.checkpoint(); // some in a layer file, the rest in memory
      }
    }
    for (int i = 0; i < commits.size(); i += 37) {
      Commit c = commits.get(i);
      assertThat(CommitTimestamps.lsnByTimestamp(main, c.time())).isEqualTo(new Found(c.lsn(), c));
      assertThat(CommitTimestamps.lsnByTimestamp(main, c.time().plusMillis(5)))
          .isEqualTo(new Found(c.lsn(), c));
      if (i > 0) {
        Commit before = commits.get(i - 1);
        assertThat(CommitTimestamps.lsnByTimestamp(main, c.time().minusNanos(1000)))
            .isEqualTo(new Found(before.lsn(), before));
      }
    }
  }

  @Test
  void aBranchSeesItsAncestorsCommitsBelowTheBranchPointOnly() {
    Commit c1 = commit(main, 0x0200_0000L, 1);
    Commit c2 = commit(main, 0x0200_1000L, 2);
    Lsn branchPoint = main.lastRecordLsn(); // after c2
    Timeline child = store.branch(TENANT, CHILD, MAIN, Optional.of(branchPoint));
    Commit c3 = commit(main, 0x0300_0000L, 3); // on main only
    Commit d4 = commit(child, 0x0400_0000L, 4);
    Commit d5 = commit(child, 0x0400_1000L, 5);
    main.checkpoint();
    assertThat(CommitTimestamps.lsnByTimestamp(child, at(0.5)))
        .isEqualTo(new BeforeStart(START, c1));
    assertThat(CommitTimestamps.lsnByTimestamp(child, at(1.5))).isEqualTo(new Found(c1.lsn(), c1));
    assertThat(CommitTimestamps.lsnByTimestamp(child, at(3.5)))
        .as("main's commit after the branch point is not the child's")
        .isEqualTo(new Found(c2.lsn(), c2));
    assertThat(CommitTimestamps.lsnByTimestamp(child, at(4.5))).isEqualTo(new Found(d4.lsn(), d4));
    assertThat(CommitTimestamps.lsnByTimestamp(child, at(6))).isEqualTo(new AfterEnd(d5));
    assertThat(CommitTimestamps.lsnByTimestamp(main, at(4.5))).isEqualTo(new AfterEnd(c3));
    // a branch without commits of its own answers from its ancestor's
    Timeline empty =
        store.branch(
            TENANT,
            TimelineId.parse("33333333333333333333333333333333"),
            CHILD,
            Optional.of(d4.lsn().plus(0x40)));
    assertThat(CommitTimestamps.lsnByTimestamp(empty, at(10))).isEqualTo(new AfterEnd(d4));
    assertThat(CommitTimestamps.lsnByTimestamp(empty, at(2))).isEqualTo(new Found(c2.lsn(), c2));
  }

  @Test
  void belowTheGcCutoff() {
    Commit c1 = commit(main, 0x0200_0000L, 1);
    Commit c2 = commit(main, 0x0200_1000L, 2);
    Commit c3 = commit(main, 0x0300_0000L, 3);
    Lsn cutoff = Lsn.of(0x0280_0000L); // between c2 and c3
    assertThat(CommitTimestamps.lsnByTimestamp(main, at(2.5), cutoff))
        .as("the commits visible at the cutoff are those up to c2: the cutoff is the answer")
        .isEqualTo(new Found(cutoff, c2));
    assertThat(CommitTimestamps.lsnByTimestamp(main, at(1.5), cutoff))
        .isEqualTo(new BelowGcCutoff(cutoff));
    assertThat(CommitTimestamps.lsnByTimestamp(main, at(0.5), cutoff))
        .as("older commits may have been collected: the first one left is at or below the cutoff")
        .isEqualTo(new BelowGcCutoff(cutoff));
    assertThat(CommitTimestamps.lsnByTimestamp(main, at(3), cutoff))
        .isEqualTo(new Found(c3.lsn(), c3));
    assertThat(CommitTimestamps.lsnByTimestamp(main, at(2.5), c2.lsn()))
        .isEqualTo(new Found(c2.lsn(), c2));
    Lsn early = Lsn.of(0x0180_0000L); // before the first commit
    assertThat(CommitTimestamps.lsnByTimestamp(main, at(0.5), early))
        .isEqualTo(new BeforeStart(early, c1));
    // GC's pitr_interval search ignores the cutoff
    assertThat(CommitTimestamps.lastCommitAtOrBefore(main, at(1.5))).contains(c1);
  }

  @Test
  void thePitrWindowStartsAtTheFirstCommitThenAtTheLastOneAtOrBelowTheGcCutoff() {
    assertThat(CommitTimestamps.pitrStart(main)).as("no commit yet").isEmpty();
    Commit c1 = commit(main, 0x0200_0000L, 1);
    Commit c2 = commit(main, 0x0200_1000L, 2);
    commit(main, 0x0300_0000L, 3);
    assertThat(CommitTimestamps.pitrStart(main)).contains(c1);
    main.checkpoint();
    Lsn cutoff = store.gc(TENANT, MAIN, Lsn.of(0x0280_0000L)).cutoff();
    assertThat(cutoff).isEqualTo(Lsn.of(0x0280_0000L));
    assertThat(CommitTimestamps.pitrStart(main))
        .as("the state at the cutoff is the state after c2")
        .contains(c2);
    assertThat(CommitTimestamps.lsnByTimestamp(main, c2.time()))
        .as("and the window's start can be shown")
        .isEqualTo(new Found(cutoff, c2));
  }
}
