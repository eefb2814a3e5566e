package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.it.wal.DumpedRecord;
import io.zenith.it.wal.PgWaldump;
import io.zenith.it.wal.ZenithCli;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalSegmentName;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A SIGKILLed {@code zenith safekeeper run} whose last segment file is then damaged — ending in the
 * middle of a record (safekeeper 1), or with garbage after its last record (safekeeper 2) —
 * recovers its state from its control file and a scan of its WAL: its WAL ends at the end of the
 * last complete record, and it catches up with the others byte for byte. Its segment directory is
 * read directly by {@code pg_waldump} and {@code zenith wal dump}, which list the same records.
 */
class SafekeeperTornTailTest {
  private static final int[] ALL = {1, 2, 3};

  @TempDir Path tmp;

  @Test
  void aTornOrGarbledTailIsNotWalAfterARestartAndTheSafekeeperCatchesUp() throws Exception {
    try (SafekeeperSet sks = new SafekeeperSet(tmp, 3).osProcesses().startAll();
        QuorumTimeline q = QuorumTimeline.start(sks)) {
      q.elect();
      q.setCompute(1);
      PgCluster c = q.compute();
      c.sql(
          "create table t (id int, v text); insert into t select i, 'a' from generate_series(1, 3000) i");
      c.sql("select pg_switch_wal(); insert into t values (0, 'next segment')");
      Lsn end = q.lastRecordEnd();
      q.awaitCaughtUp(ALL, end);

      // Safekeeper 1 dies while it receives a record: the first half of it is in its file (a
      // crash can tear only what was not yet durable, so the torn record is one it never
      // acknowledged: the compute writes it after the kill, and it commits with the others).
      sks.kill(1);
      Lsn end1 = listSameRecords(q, 1).getLast().end();
      c.sql("insert into t values (1, 'torn')");
      int seg = q.identity.segmentSize();
      String name = WalSegmentName.of(1, end1, seg).fileName(seg);
      DumpedRecord torn =
          PgWaldump.dump(c.distribution(), c.walDir(), name, name).records().stream()
              .filter(r -> !r.lsn().isBefore(end1))
              .findFirst()
              .orElseThrow();
      Lsn cut = torn.lsn().plus(torn.length() / 2);
      try (FileChannel ch = FileChannel.open(segmentFile(q, 1, end1), StandardOpenOption.WRITE)) {
        ch.write(ByteBuffer.wrap(PgWal.readWal(c, 1, seg, end1, cut)), end1.segmentOffset(seg));
      }
      assertThat(restartAndRecover(sks, 1)).isEqualTo(end1);

      // Safekeeper 2: garbage after its last record.
      sks.kill(2);
      List<DumpedRecord.Zenith> records2 = listSameRecords(q, 2);
      Lsn lastEnd = records2.getLast().end();
      byte[] garbage = new byte[300];
      Arrays.fill(garbage, (byte) 0xA5);
      try (FileChannel ch =
          FileChannel.open(segmentFile(q, 2, lastEnd), StandardOpenOption.WRITE)) {
        ch.write(ByteBuffer.wrap(garbage), lastEnd.segmentOffset(q.identity.segmentSize()));
      }
      assertThat(restartAndRecover(sks, 2)).isEqualTo(lastEnd);

      c.sql("insert into t select i, 'after' from generate_series(1, 1000) i");
      Lsn end2 = q.lastRecordEnd();
      q.awaitCaughtUp(ALL, end2);
      q.assertSameWal(ALL, end2);
      for (int id : ALL) {
        assertThat(sks.client(id).timelineStatus(q.tenant(), q.timeline()).history())
            .containsExactly(new TermEntry(1, q.identity.startLsn()));
        assertThat(listSameRecords(q, id).getLast().end()).isEqualTo(end2);
      }
    }
  }

  /**
   * Restarts safekeeper {@code id} and returns where it found the end of its WAL (its log line,
   * written before it takes any WAL from its compute or peers).
   */
  private static Lsn restartAndRecover(SafekeeperSet sks, int id) throws IOException {
    long logged = Files.exists(sks.log(id)) ? Files.size(sks.log(id)) : 0;
    sks.start(id);
    String out = Files.readString(sks.log(id)).substring((int) logged);
    java.util.regex.Matcher m =
        java.util.regex.Pattern.compile(
                ": opened, term 1, history 1@[0-9A-F/]+, WAL ends at ([0-9A-F]+/[0-9A-F]+),")
            .matcher(out);
    assertThat(m.find()).as("safekeeper %d's log after its restart:%n%s", id, out).isTrue();
    return Lsn.parse(m.group(1));
  }

  /** The records of safekeeper {@code id}'s files, as both dump tools list them (the same). */
  private static List<DumpedRecord.Zenith> listSameRecords(QuorumTimeline q, int id)
      throws IOException, InterruptedException {
    QuorumTimeline.WalCopy copy = q.walCopy(id);
    PgWaldump.Result pg =
        PgWaldump.dump(q.compute().distribution(), copy.dir(), copy.first(), copy.last());
    ZenithCli.Result zenith = ZenithCli.run("wal", "dump", "--json", q.walDir(id).toString());
    List<DumpedRecord.Zenith> ours = DumpedRecord.parseZenithJson(zenith.out());
    assertThat(ours).as("zenith wal dump of safekeeper %d: %s", id, zenith).isNotEmpty();
    assertThat(ours.stream().map(DumpedRecord.Zenith::record).toList())
        .as("records of safekeeper %d by zenith wal dump and by pg_waldump (%s)", id, pg.err())
        .isEqualTo(pg.records());
    return ours;
  }

  private static Path segmentFile(QuorumTimeline q, int id, Lsn lsn) {
    int seg = q.identity.segmentSize();
    String name = WalSegmentName.of(1, lsn, seg).fileName(seg);
    Path partial = q.walDir(id).resolve(name + WalSegmentName.PARTIAL_SUFFIX);
    assertThat(partial).as("the segment being written").exists();
    return partial;
  }
}
