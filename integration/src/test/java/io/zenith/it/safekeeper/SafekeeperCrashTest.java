package io.zenith.it.safekeeper;

import static io.zenith.it.safekeeper.QuorumTimeline.T;
import static io.zenith.it.safekeeper.QuorumTimeline.commit;
import static io.zenith.it.safekeeper.QuorumTimeline.flush;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.r2dbc.postgresql.PostgresqlConnectionFactory;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.TimelineInfo;
import io.zenith.it.support.BankWorkload;
import io.zenith.it.wal.DumpedRecord;
import io.zenith.it.wal.PgWaldump;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.safekeeper.Election;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalSegmentName;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Crashes around three {@code zenith safekeeper run} OS processes behind a real PostgreSQL 15
 * (issue 4): safekeepers and computes are SIGKILLed, and what the safekeepers hold afterwards is
 * read from their segment files directly.
 *
 * <p>The compute of a new term needs its WAL to continue at the elected LSN L. The pageserver does
 * not read WAL from safekeepers yet, so there is no basebackup at L; {@link
 * QuorumTimeline#successor} stands in for one: the killed compute's data directory with its WAL cut
 * at L, which PostgreSQL's crash recovery turns into exactly the state at L. That is enough to test
 * the safekeeper invariants (truncation of a divergent tail, identical WAL, acknowledged
 * transactions at or below L); it says nothing about basebackups, which the pageserver's tests
 * cover once it reads from safekeepers.
 */
class SafekeeperCrashTest {
  private static final int[] ALL = {1, 2, 3};

  @TempDir Path tmp;
  private SafekeeperSet sks;
  private QuorumTimeline q;

  @BeforeEach
  void start() {
    sks = new SafekeeperSet(tmp, 3).osProcesses().startAll();
    q = QuorumTimeline.start(sks);
  }

  @AfterEach
  void stop() {
    QuorumTimeline.closeAll(q, sks);
  }

  @Test
  void withTwoOfThreeKilledACommitWaitsWithoutErrorAndCompletesWhenOneIsBack() throws Exception {
    q.elect();
    q.setCompute(1);
    PgCluster c = q.compute();
    c.sql("create table t (v int); insert into t values (1)");
    sks.kill(2);
    sks.kill(3);
    CompletableFuture<String> blocked = q.sqlAsync("insert into t values (2)");
    q.awaitSyncRepWaiters(1);
    // Blocking is the point: it neither completes nor fails while a majority is down.
    assertThatThrownBy(() -> blocked.get(3, TimeUnit.SECONDS)).isInstanceOf(TimeoutException.class);
    sks.start(3);
    assertThat(blocked.get(T.toSeconds(), TimeUnit.SECONDS)).isEmpty();
    assertThat(c.sql("select count(*) from t").trim()).isEqualTo("2");
    sks.start(2);
    Lsn end = q.lastRecordEnd();
    q.awaitCaughtUp(ALL, end);
    q.assertSameWal(ALL, end);
  }

  /**
   * The compute dies mid-workload; a new election's start LSN L is the end of the donor's last
   * complete record, which is a record boundary of the dead compute's WAL; every safekeeper then
   * holds exactly the donor's WAL up to L and nothing after it; and a compute started at L holds
   * every acknowledged transfer with the total balance unchanged.
   */
  @Test
  void aComputeKilledMidWorkloadLeavesEverySafekeeperWithTheDonorsWalUpToTheNewStart()
      throws Exception {
    q.elect();
    q.setCompute(1);
    PgCluster old = q.compute();
    BankWorkload bank;
    try (BankWorkload b = BankWorkload.create(factory(old), 100, 1_000).start(10)) {
      bank = b;
      PgWal.await(T, "200 transfers", () -> b.acknowledgedCount() >= 200);
      q.killCompute();
    }
    Election.Result r = q.elect();
    assertThat(r.term()).isEqualTo(2);
    Lsn start = r.startLsn();
    // Every safekeeper holds exactly the donor's WAL, which is the compute's, up to L ...
    q.awaitAll("L to be committed everywhere", ALL, t -> commit(t).equals(start));
    for (int id : ALL) {
      TimelineInfo t = q.info(id);
      assertThat(List.of(flush(t), Lsn.parse(t.writeLsn())))
          .as(() -> "L = " + start + ", safekeeper flush and write LSNs" + q.describe(ALL))
          .containsOnly(start);
      assertNothingAfter(id, start);
    }
    q.assertSameWal(ALL, start);
    // ... and L ends a record of the compute's WAL: the next record starts there (after a page
    // header), or the compute's WAL ends there.
    PgWaldump.Result dump =
        PgWaldump.dump(
            old.distribution(),
            old.walDir(),
            segmentName(q.identity.startLsn()),
            segmentName(start));
    assertThat(dump.records()).anyMatch(rec -> rec.lsn().isBefore(start));
    Optional<DumpedRecord> next =
        dump.records().stream().filter(rec -> !rec.lsn().isBefore(start)).findFirst();
    if (next.isPresent()) {
      assertThat(q.recordEndBefore(next.get().lsn())).isEqualTo(start);
    } else {
      assertThat(dump.err()).contains(start.toString());
    }
    // A compute started at L sees every acknowledged transfer, and the money is all there.
    PgCluster successor = q.successor(start);
    q.setCompute(2);
    BankWorkload.Snapshot s = BankWorkload.read(factory(successor));
    assertThat(s.total()).isEqualTo(bank.expectedTotal());
    assertThat(BankWorkload.missing(bank.acknowledged(), s.transfers()))
        .as("acknowledged transfers the compute does not have")
        .isEmpty();
    successor.sql("update bank set balance = balance + 1 where id = 1");
    Lsn end = q.lastRecordEnd();
    q.awaitCaughtUp(ALL, end);
    q.assertSameWal(ALL, end);
  }

  private static PostgresqlConnectionFactory factory(PgCluster c) {
    return BankWorkload.factory("127.0.0.1", c.port(), "postgres");
  }

  private String segmentName(Lsn lsn) {
    int seg = q.identity.segmentSize();
    return WalSegmentName.of(1, lsn, seg).fileName(seg);
  }

  /** Safekeeper {@code id} holds nothing at or after {@code end}: zeros, and no later segment. */
  private void assertNothingAfter(int id, Lsn end) throws IOException {
    int seg = q.identity.segmentSize();
    long last = end.value() / seg;
    try (Stream<Path> files = Files.list(q.walDir(id))) {
      assertThat(
              files
                  .map(p -> p.getFileName().toString().replace(WalSegmentName.PARTIAL_SUFFIX, ""))
                  .map(n -> WalSegmentName.parse(n, seg))
                  .flatMap(Optional::stream)
                  .map(WalSegmentName::segmentNumber))
          .as("safekeeper %d's segments", id)
          .allMatch(n -> n <= last);
    }
    Path file = q.walDir(id).resolve(segmentName(end) + WalSegmentName.PARTIAL_SUFFIX);
    if (!Files.exists(file)) {
      file = q.walDir(id).resolve(segmentName(end));
    }
    try (FileChannel ch = FileChannel.open(file)) {
      long from = end.segmentOffset(seg);
      ByteBuffer rest = ByteBuffer.allocate((int) (ch.size() - from));
      while (rest.hasRemaining() && ch.read(rest, from + rest.position()) >= 0) {
        // read to the end of the file
      }
      rest.flip();
      while (rest.hasRemaining()) {
        if (rest.get() != 0) {
          throw new AssertionError(
              "safekeeper " + id + " holds bytes at " + end.plus(rest.position() - 1));
        }
      }
    }
  }
}
