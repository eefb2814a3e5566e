package io.zenith.ingest.wal.records;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.ingest.wal.BlockImage;
import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RecordHeader;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalRecord;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Hand-built main data: every field of the fixed layouts gets a distinct value (real WAL often has
 * equal values in neighbouring fields, which would hide a swapped offset), the variable layouts get
 * every optional part, and malformed data must fail as BAD_RECORD_CONTENT.
 */
class PgRecordsLayoutTest {
  private static final Lsn LSN = Lsn.parse("0/3A5F0C8");
  private static final RelTag REL = new RelTag(1663, 5, 16384);

  /** Little-endian main data builder. */
  private static final class Data {
    private final ByteBuffer b = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);

    Data i8(int v) {
      b.put((byte) v);
      return this;
    }

    Data i16(int v) {
      b.putShort((short) v);
      return this;
    }

    Data i32(int v) {
      b.putInt(v);
      return this;
    }

    Data i64(long v) {
      b.putLong(v);
      return this;
    }

    Data pad(int n) {
      return zeros(n);
    }

    Data zeros(int n) {
      for (int i = 0; i < n; i++) {
        b.put((byte) 0);
      }
      return this;
    }

    Data rel(RelTag r) {
      return i32(r.spcOid()).i32(r.dbOid()).i32(r.relNumber());
    }

    Data cstring(String s) {
      b.put(s.getBytes(StandardCharsets.UTF_8)).put((byte) 0);
      return this;
    }

    byte[] bytes() {
      byte[] out = new byte[b.position()];
      b.get(0, out);
      return out;
    }
  }

  private record Block(int id, RelTag rel, ForkNumber fork, int blockNumber, boolean image) {}

  private static DecodedRecord record(int rmid, int info, byte[] main, int origin, Block... bs) {
    byte[] bytes = new byte[24 + main.length];
    System.arraycopy(main, 0, bytes, 24, main.length);
    WalRecord raw =
        new WalRecord(
            LSN,
            LSN.plus(bytes.length).align(),
            new RecordHeader(bytes.length, 1234, Lsn.INVALID, info, rmid, 0),
            bytes);
    List<BlockRef> blocks = new ArrayList<>();
    for (Block b : bs) {
      BlockImage image = b.image() ? new BlockImage(8192, 0, 0, BlockImage.APPLY, 0) : null;
      blocks.add(
          new BlockRef(
              b.id(),
              b.rel(),
              b.fork(),
              b.blockNumber(),
              b.fork().ordinal() | (b.image() ? BlockRef.HAS_IMAGE : 0),
              image,
              0,
              0,
              bytes));
    }
    return new DecodedRecord(raw, List.copyOf(blocks), 24, main.length, origin, 0);
  }

  private static DecodedRecord record(int rmid, int info, Data main, Block... bs) {
    return record(rmid, info, main.bytes(), 0, bs);
  }

  private static Block heapBlock(int id, int blk) {
    return new Block(id, REL, ForkNumber.MAIN, blk, false);
  }

  private static void assertBad(DecodedRecord r, String type) {
    assertThatThrownBy(() -> PgRecords.parse(r))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(WalFormatException.Kind.BAD_RECORD_CONTENT);
              assertThat(e.lsn()).isEqualTo(LSN);
              assertThat(e.getMessage()).contains(type).contains(LSN.toString());
            });
  }

  @Test
  void checkpointFieldsComeFromTheirPaddedOffsets() {
    Data d =
        new Data()
            .i64(0x0000_0001_0203_0405L)
            .i32(7)
            .i32(6)
            .i8(1)
            .pad(7)
            .i64((3L << 32) | 0xFFFF_FFF0L)
            .i32(24576)
            .i32(2050)
            .i32(11)
            .i32(716)
            .i32(12)
            .i32(2047)
            .i32(13)
            .pad(4)
            .i64(1_700_000_000L)
            .i32(21)
            .i32(22)
            .i32(23)
            .pad(4);
    assertThat(d.bytes()).hasSize(88);
    XlogRecord.Checkpoint c = (XlogRecord.Checkpoint) PgRecords.parse(record(0, 0x10, d));
    assertThat(c)
        .isEqualTo(
            new XlogRecord.Checkpoint(
                false,
                Lsn.of(0x0000_0001_0203_0405L),
                7,
                6,
                true,
                (3L << 32) | 0xFFFF_FFF0L,
                24576,
                2050,
                11,
                716,
                12,
                2047,
                13,
                1_700_000_000L,
                21,
                22,
                23));
    assertThat(c.nextXidEpoch()).isEqualTo(3);
    assertThat(Integer.toUnsignedString(c.nextXidValue())).isEqualTo("4294967280");
    assertThat(c.timeInstant()).isEqualTo(Instant.ofEpochSecond(1_700_000_000L));
    assertThat(c.describe())
        .isEqualTo(
            "redo 1/2030405; tli 7; prev tli 6; fpw true; xid 3:4294967280; oid 24576;"
                + " multi 2050; offset 11; oldest xid 716 in DB 12; oldest multi 2047 in DB 13;"
                + " oldest/newest commit timestamp xid: 21/22; oldest running xid 23; online");
    assertBad(record(0, 0x00, new Data().zeros(84)), "XLOG/CHECKPOINT_SHUTDOWN");
  }

  @Test
  void parameterChangeAndEndOfRecovery() {
    Data pc = new Data().i32(1).i32(2).i32(3).i32(4).i32(5).i32(1).i8(0).i8(1).pad(2);
    assertThat(PgRecords.parse(record(0, 0x60, pc)))
        .isEqualTo(new XlogRecord.ParameterChange(1, 2, 3, 4, 5, 1, false, true));
    Data eor = new Data().i64(757479845678901L).i32(3).i32(2);
    XlogRecord.EndOfRecovery e = (XlogRecord.EndOfRecovery) PgRecords.parse(record(0, 0x90, eor));
    assertThat(e.describe()).isEqualTo("tli 3; prev tli 2; time 2024-01-02 03:04:05.678901 UTC");
    assertThat(e.endTime().toInstant()).isEqualTo(Instant.parse("2024-01-02T03:04:05.678901Z"));
    assertBad(record(0, 0x60, new Data().zeros(27)), "XLOG/PARAMETER_CHANGE");
  }

  @Test
  void commitWithEveryOptionalPartIncludingAnUnalignedOrigin() {
    int xinfo =
        XactRecord.XINFO_HAS_DBINFO
            | XactRecord.XINFO_HAS_SUBXACTS
            | XactRecord.XINFO_HAS_RELFILENODES
            | XactRecord.XINFO_HAS_DROPPED_STATS
            | XactRecord.XINFO_HAS_INVALS
            | XactRecord.XINFO_HAS_TWOPHASE
            | XactRecord.XINFO_HAS_GID
            | XactRecord.XINFO_HAS_ORIGIN
            | XactRecord.COMPLETION_UPDATE_RELCACHE_FILE
            | XactRecord.COMPLETION_FORCE_SYNC_COMMIT;
    Data d =
        new Data()
            .i64(757479845678901L)
            .i32(xinfo)
            .i32(5)
            .i32(1663)
            .i32(2)
            .i32(801)
            .i32(802)
            .i32(2)
            .rel(REL)
            .rel(new RelTag(1664, 0, 1262))
            .i32(1)
            .i32(2)
            .i32(5)
            .i32(16384)
            .i32(3);
    d.i8(-2).pad(3).i32(5).i32(16384).pad(4); // relcache
    d.i8(-3).i8(0).i16(0).rel(REL); // smgr
    d.i8(42).pad(3).i32(5).i32(0xCAFE).pad(4); // catcache
    d.i32(800).cstring("gid_7").i64(0xABCDEFL).i64(757479845000000L);
    DecodedRecord r = record(1, 0x80 | 0x30, d.bytes(), 9);
    XactRecord.Commit c = (XactRecord.Commit) PgRecords.parse(r);
    assertThat(c.prepared()).isTrue();
    assertThat(c.dbId()).isEqualTo(5);
    assertThat(c.tsId()).isEqualTo(1663);
    assertThat(c.subxacts()).containsExactly(801, 802);
    assertThat(c.rels()).containsExactly(REL, new RelTag(1664, 0, 1262));
    assertThat(c.droppedStats()).containsExactly(new XactRecord.DroppedStats(2, 5, 16384));
    assertThat(c.invalidations())
        .containsExactly(
            new XactRecord.InvalidationMessage(-2, 5, 16384),
            new XactRecord.InvalidationMessage(-3, 5, 16384),
            new XactRecord.InvalidationMessage(42, 5, 0xCAFE));
    assertThat(c.twophaseXid()).isEqualTo(800);
    assertThat(c.gid()).isEqualTo("gid_7");
    assertThat(c.originLsn()).isEqualTo(Lsn.of(0xABCDEFL));
    assertThat(c.originId()).isEqualTo(9);
    assertThat(c.describe())
        .isEqualTo(
            "800: 2024-01-02 03:04:05.678901 UTC; rels: base/5/16384 global/1262;"
                + " subxacts: 801 802; dropped stats: 2/5/16384;"
                + " relcache init file inval dbid 5 tsid 1663;"
                + " inval msgs: relcache 16384 smgr catcache 42; sync;"
                + " origin: node 9, lsn 0/ABCDEF, at 2024-01-02 03:04:05.000000 UTC");
  }

  @Test
  void abortSkipsInvalidationsEvenWhenFlagged() {
    int xinfo = XactRecord.XINFO_HAS_SUBXACTS | XactRecord.XINFO_HAS_INVALS;
    Data d = new Data().i64(0).i32(xinfo).i32(1).i32(77);
    XactRecord.Abort a = (XactRecord.Abort) PgRecords.parse(record(1, 0xA0, d));
    assertThat(a.subxacts()).containsExactly(77);
    assertThat(a.describe()).isEqualTo("2000-01-01 00:00:00.000000 UTC; subxacts: 77");
    // Without XLOG_XACT_HAS_INFO there is no xinfo: the 8-byte timestamp is all.
    XactRecord.Abort plain = (XactRecord.Abort) PgRecords.parse(record(1, 0x20, d));
    assertThat(plain.xinfo()).isZero();
    assertThat(plain.subxacts()).isEmpty();
  }

  @Test
  void prepareArraysArePaddedToMaxalign() {
    Data d =
        new Data()
            .i32(0x57F94534)
            .i32(512)
            .i32(900)
            .i32(5)
            .i64(757479845678901L)
            .i32(10)
            .i32(1) // nsubxacts
            .i32(1) // ncommitrels
            .i32(0) // nabortrels
            .i32(1) // ncommitstats
            .i32(0) // nabortstats
            .i32(1) // ninvalmsgs
            .i8(1)
            .pad(1)
            .i16(6) // gidlen with its NUL
            .i64(0x1234L)
            .i64(0);
    d.cstring("p_one").pad(2); // 6 -> 8
    d.i32(901).pad(4); // 4 -> 8
    d.rel(REL).pad(4); // 12 -> 16
    d.i32(2).i32(5).i32(16384).pad(4); // 12 -> 16
    d.i8(-1).pad(3).i32(5).i32(1259).pad(4);
    d.zeros(40); // the state records PostgreSQL appends are not decoded
    XactRecord.Prepare p = (XactRecord.Prepare) PgRecords.parse(record(1, 0x10, d));
    assertThat(p.gid()).isEqualTo("p_one");
    assertThat(p.xid()).isEqualTo(900);
    assertThat(p.owner()).isEqualTo(10);
    assertThat(p.subxacts()).containsExactly(901);
    assertThat(p.commitRels()).containsExactly(REL);
    assertThat(p.abortRels()).isEmpty();
    assertThat(p.commitStats()).containsExactly(new XactRecord.DroppedStats(2, 5, 16384));
    assertThat(p.invalidations()).containsExactly(new XactRecord.InvalidationMessage(-1, 5, 1259));
    assertThat(p.initFileInval()).isTrue();
    assertThat(p.originLsn()).isEqualTo(Lsn.of(0x1234L));
    assertThat(p.describe())
        .isEqualTo(
            "gid p_one: 2024-01-02 03:04:05.678901 UTC; rels(commit): base/5/16384;"
                + " commit dropped stats: 2/5/16384; subxacts: 901;"
                + " relcache init file inval dbid 5 tsid 0; inval msgs: catalog 1259");
  }

  @Test
  void runningXactsSplitsTopLevelAndSubtransactionXids() {
    Data d =
        new Data()
            .i32(2)
            .i32(1)
            .i8(1)
            .pad(3)
            .i32(1000)
            .i32(990)
            .i32(999)
            .i32(991)
            .i32(995)
            .i32(992);
    StandbyRecord.RunningXacts r = (StandbyRecord.RunningXacts) PgRecords.parse(record(8, 0x10, d));
    assertThat(r)
        .isEqualTo(
            new StandbyRecord.RunningXacts(true, 1000, 990, 999, List.of(991, 995), List.of(992)));
    assertThat(r.describe())
        .isEqualTo(
            "nextXid 1000 latestCompletedXid 999 oldestRunningXid 990; 2 xacts: 991 995;"
                + " subxid ovf");
  }

  @Test
  void heapUpdateClearsTheOldPageThenTheNewOne() {
    Data d = new Data().i32(700).i16(3).i8(0x10).i8(0x03).i32(0).i16(9);
    HeapRecord.Update u =
        (HeapRecord.Update) PgRecords.parse(record(10, 0xA0, d, heapBlock(0, 8), heapBlock(1, 2)));
    assertThat(u.typeName()).isEqualTo("UPDATE+INIT");
    assertThat(u.oldBlock()).isEqualTo(2);
    assertThat(u.newBlock()).isEqualTo(8);
    assertThat(u.visibilityMapChanges())
        .containsExactly(
            new VisibilityMapChange(REL, 2, VisibilityMapChange.Action.CLEAR, 3),
            new VisibilityMapChange(REL, 8, VisibilityMapChange.Action.CLEAR, 3));
    assertThat(u.describe()).isEqualTo("off 3 xmax 700 flags 0x03 KEYS_UPDATED ; new off 9 xmax 0");
    HeapRecord.Update samePage =
        (HeapRecord.Update) PgRecords.parse(record(10, 0x40, d, heapBlock(0, 8)));
    assertThat(samePage.oldBlock()).isEqualTo(8);
    assertThat(samePage.visibilityMapChanges())
        .extracting(VisibilityMapChange::heapBlock)
        .containsExactly(8, 8);
  }

  @Test
  void lockClearsOnlyAllFrozenAndVisibleSetsTheBitsOfBlockOne() {
    Data lock = new Data().i32(55).i16(4).i8(0x02).i8(0x01);
    assertThat(PgRecords.parse(record(10, 0x60, lock, heapBlock(0, 40))).visibilityMapChanges())
        .containsExactly(
            new VisibilityMapChange(
                REL, 40, VisibilityMapChange.Action.CLEAR, VisibilityMapChange.ALL_FROZEN));
    Data visible = new Data().i32(77).i8(0x03);
    HeapRecord.Visible v =
        (HeapRecord.Visible)
            PgRecords.parse(
                record(
                    9,
                    0x40,
                    visible,
                    new Block(0, REL, ForkNumber.VISIBILITY_MAP, 1, false),
                    heapBlock(1, 40000)));
    assertThat(v.heapBlock()).isEqualTo(40000);
    assertThat(v.vmBlock()).isEqualTo(1);
    assertThat(v.visibilityMapChanges())
        .containsExactly(new VisibilityMapChange(REL, 40000, VisibilityMapChange.Action.SET, 3));
    assertBad(
        record(9, 0x40, visible, new Block(0, REL, ForkNumber.VISIBILITY_MAP, 1, false)),
        "Heap2/VISIBLE");
    assertBad(record(10, 0x00, new Data().i16(1).i8(0)), "Heap/INSERT");
  }

  @Test
  void multiInsertOffsetsAreStoredUnlessThePageIsInitialized() {
    Data d = new Data().i8(0x01).pad(1).i16(2).i16(5).i16(6);
    HeapRecord.MultiInsert m =
        (HeapRecord.MultiInsert) PgRecords.parse(record(9, 0x50, d, heapBlock(0, 3)));
    assertThat(m.offsets()).containsExactly(5, 6);
    assertThat(m.visibilityMapChanges()).hasSize(1);
    HeapRecord.MultiInsert init =
        (HeapRecord.MultiInsert)
            PgRecords.parse(record(9, 0xD0, new Data().i8(0x20).pad(1).i16(3), heapBlock(0, 3)));
    assertThat(init.offsets()).isEmpty();
    assertThat(init.tupleOffsets()).containsExactly(1, 2, 3);
    assertThat(init.visibilityMapChanges()).isEmpty();
    assertBad(
        record(9, 0x50, new Data().i8(0).pad(1).i16(3).i16(1), heapBlock(0, 3)),
        "Heap2/MULTI_INSERT");
  }

  @Test
  void visibilityMapPositionsFollowVisibilitymapC() {
    VisibilityMapChange first = new VisibilityMapChange(REL, 0, VisibilityMapChange.Action.SET, 1);
    assertThat(first.vmBlock()).isZero();
    assertThat(first.pageByteOffset()).isEqualTo(24);
    assertThat(first.mask()).isEqualTo(0x01);
    VisibilityMapChange fifth = new VisibilityMapChange(REL, 5, VisibilityMapChange.Action.SET, 2);
    assertThat(fifth.pageByteOffset()).isEqualTo(25);
    assertThat(fifth.bitShift()).isEqualTo(2);
    assertThat(fifth.mask()).isEqualTo(0x08);
    VisibilityMapChange nextPage =
        new VisibilityMapChange(REL, 32672, VisibilityMapChange.Action.CLEAR, 3);
    assertThat(nextPage.vmBlock()).isEqualTo(1);
    assertThat(nextPage.pageByteOffset()).isEqualTo(24);
    VisibilityMapChange last =
        new VisibilityMapChange(REL, 0xFFFF_FFFE, VisibilityMapChange.Action.CLEAR, 3);
    assertThat(last.vmBlock()).isEqualTo(131457);
    assertThat(last.mapByte()).isEqualTo(1047);
    assertThat(last.bitShift()).isEqualTo(4);
    assertThat(last.mask()).isEqualTo(0x30);
  }

  @Test
  void countsThatOverrunTheMainDataAreBadRecordContent() {
    assertBad(
        record(1, 0x80, new Data().i64(0).i32(XactRecord.XINFO_HAS_SUBXACTS).i32(1_000_000)),
        "Transaction/COMMIT");
    assertBad(
        record(1, 0x80, new Data().i64(0).i32(XactRecord.XINFO_HAS_RELFILENODES).i32(-1)),
        "Transaction/COMMIT");
    assertBad(
        record(
            1,
            0x80,
            new Data()
                .i64(0)
                .i32(XactRecord.XINFO_HAS_TWOPHASE | XactRecord.XINFO_HAS_GID)
                .i32(5)
                .i8('g')),
        "Transaction/COMMIT");
    assertBad(record(1, 0x50, new Data().i32(5).i32(3).i32(6)), "Transaction/ASSIGNMENT");
    assertBad(
        record(1, 0x10, new Data().zeros(28).i32(Integer.MAX_VALUE).zeros(40)),
        "Transaction/PREPARE");
    assertBad(
        record(8, 0x10, new Data().i32(Integer.MAX_VALUE).i32(0).zeros(16)),
        "Standby/RUNNING_XACTS");
    assertBad(
        record(6, 0x20, new Data().i32(5).i32(1).i32(2).i32(10).i32(0)), "MultiXact/CREATE_ID");
    assertBad(
        record(6, 0x20, new Data().i32(5).i32(1).i32(1).i32(10).i32(9)), "MultiXact/CREATE_ID");
    assertBad(record(4, 0x20, new Data().i32(5).i32(2).i32(1663)), "Database/DROP");
    assertBad(record(7, 0x00, new Data().i32(5).i32(1663).i32(100_000)), "RelMap/UPDATE");
    assertBad(
        record(7, 0x00, new Data().i32(5).i32(1663).i32(512).i32(0x12345).zeros(508)),
        "RelMap/UPDATE");
    assertBad(record(2, 0x10, new Data().rel(REL).i32(9)), "Storage/CREATE");
    assertBad(record(3, 0x10, new Data().i32(1).i32(2)), "CLOG/TRUNCATE");
    assertBad(
        record(0, 0xB0, new byte[0], 0, new Block(0, REL, ForkNumber.MAIN, 0, false)), "XLOG/FPI");
  }

  @Test
  void relationMapsAreKeptWhole() {
    Data d = new Data().i32(0).i32(1664).i32(512).i32(0x592717).i32(2);
    d.i32(1262).i32(1262).i32(2964).i32(2964).zeros(512 - 24);
    RelmapRecord.Update u = (RelmapRecord.Update) PgRecords.parse(record(7, 0x00, d));
    assertThat(u.nbytes()).isEqualTo(512);
    assertThat(u.mappings())
        .containsExactly(
            new RelmapRecord.Mapping(1262, 1262), new RelmapRecord.Mapping(2964, 2964));
    assertThat(u.describe()).isEqualTo("database 0 tablespace 1664 size 512");
    byte[] copy = u.map();
    copy[0] = 1;
    assertThat(u.map()[0]).isEqualTo((byte) 0x17);
  }

  @Test
  void recordsNotDecodedAreOther() {
    assertThat(PgRecords.parse(record(11, 0x00, new Data().i16(1))))
        .isEqualTo(new PgRecord.Other("Btree", "INSERT_LEAF"));
    assertThat(PgRecords.parse(record(130, 0x00, new Data().i16(1))))
        .isEqualTo(new PgRecord.Other("custom130", "UNKNOWN"));
    assertThat(PgRecords.parse(record(10, 0x90, new Data().zeros(8))))
        .isEqualTo(new PgRecord.Other("Heap", "UNKNOWN"));
    assertThat(PgRecords.parse(record(8, 0x00, new Data().i32(0))))
        .isEqualTo(new PgRecord.Other("Standby", "LOCK"));
    assertThat(PgRecords.parse(record(0, 0x20, new Data())))
        .isEqualTo(new PgRecord.Other("XLOG", "NOOP"));
  }

  @Test
  void timestampsPrintLikeTimestamptzToStrInUtc() {
    assertThat(new TimestampTz(0)).hasToString("2000-01-01 00:00:00.000000 UTC");
    assertThat(new TimestampTz(757479845678901L).toInstant())
        .isEqualTo(Instant.parse("2024-01-02T03:04:05.678901Z"));
    assertThat(new TimestampTz(757479845678901L)).hasToString("2024-01-02 03:04:05.678901 UTC");
  }
}
