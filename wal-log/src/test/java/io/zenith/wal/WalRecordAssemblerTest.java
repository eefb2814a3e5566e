package io.zenith.wal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.testing.SyntheticWal;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class WalRecordAssemblerTest {

  private static final WalRecordAssembler.Options OPTS = WalRecordAssembler.Options.DEFAULT;

  /** Records of many shapes: tiny, page-crossing, multi-page, segment-crossing, split headers. */
  static SyntheticWal mixed() {
    SyntheticWal wal = SyntheticWal.small();
    Random r = new Random(42);
    int[] fixed = {0, 1, 7, 8, 100, 8000, 8168, 8169, 20_000, 70_000, 3};
    for (int len : fixed) {
      wal.append(10, 0x00, 700, len);
    }
    // Enough small records to walk the insert position over every offset mod 8 near page ends,
    // so that some record headers are split across pages.
    for (int i = 0; i < 3000; i++) {
      wal.append(1 + r.nextInt(20), r.nextInt(16) << 4, r.nextInt(1000), r.nextInt(600));
    }
    wal.append(0x15, 0, 1, 2 * 1024 * 1024 + 5);
    wal.append(11, 0x10, 2, 12);
    return wal;
  }

  @Test
  void mixedWalCoversEveryShape() {
    List<SyntheticWal.Written> records = mixed().records();
    int page = WalFormat.XLOG_BLCKSZ;
    assertThat(records)
        .as("a record header split across pages")
        .anyMatch(w -> w.lsn().pageOffset() > page - WalFormat.RECORD_HEADER_SIZE);
    assertThat(records)
        .as("a record spanning more than two pages")
        .anyMatch(w -> w.end().minus(w.lsn()) > 2 * page);
    assertThat(records)
        .as("a record crossing a segment")
        .anyMatch(w -> w.lsn().segmentNumber(1 << 20) != w.end().segmentNumber(1 << 20));
    assertThat(records)
        .as("a record ending exactly at a page end")
        .anyMatch(w -> w.end().pageOffset() == 0);
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 3, 8, 24, 41, 4096, 8192, 100_000, Integer.MAX_VALUE})
  void reassemblesRecordsFromAnyChunking(int chunk) {
    SyntheticWal wal = mixed();
    List<WalRecord> got = readAll(wal.bytesToSegmentEnd(), wal.startLsn(), OPTS, chunk);
    assertSameRecords(got, wal.records());
  }

  @Test
  void reassemblesWithRandomChunks() {
    SyntheticWal wal = mixed();
    byte[] bytes = wal.bytesToSegmentEnd();
    Random r = new Random(7);
    WalRecordAssembler a = new WalRecordAssembler(wal.startLsn(), OPTS);
    List<WalRecord> got = new ArrayList<>();
    int off = 0;
    while (off < bytes.length) {
      int n = Math.min(bytes.length - off, 1 + r.nextInt(20_000));
      a.feed(ByteBuffer.wrap(bytes, off, n)).forEachRemaining(got::add);
      off += n;
    }
    assertSameRecords(got, wal.records());
    assertThat(got)
        .as("records returned in place, sharing the chunk's array")
        .anyMatch(rec -> rec.array() == bytes);
    assertThat(got)
        .as("records copied out of several chunks")
        .anyMatch(rec -> rec.array() != bytes);
    assertThat(a.ended()).isTrue();
    assertThat(a.endReason()).hasValueSatisfying(s -> assertThat(s).contains("zero record length"));
    assertThat(a.lastRecordEnd()).isEqualTo(wal.records().getLast().end());
  }

  @Test
  void recordEndIsMaxAlignedEndRecPtr() {
    SyntheticWal wal = SyntheticWal.small();
    SyntheticWal.Written w = wal.append(10, 0, 1, 5); // 29 bytes
    List<WalRecord> got = readAll(wal.bytesToSegmentEnd(), wal.startLsn(), OPTS, 1000);
    assertThat(got.getFirst().lsn()).isEqualTo(wal.startLsn().plus(40));
    assertThat(got.getFirst().end()).isEqualTo(wal.startLsn().plus(40 + 32));
    assertThat(got.getFirst().end()).isEqualTo(w.end());
  }

  @Test
  void switchRecordJumpsToNextSegment() {
    SyntheticWal wal = SyntheticWal.small();
    wal.append(10, 0, 1, 100);
    SyntheticWal.Written sw = wal.appendSwitch();
    SyntheticWal.Written after = wal.append(10, 0, 2, 100);
    assertThat(sw.end()).isEqualTo(wal.startLsn().plus(wal.segmentSize()));
    assertThat(after.lsn()).isEqualTo(sw.end().plus(WalFormat.LONG_PAGE_HEADER_SIZE));
    List<WalRecord> got = readAll(wal.bytesToSegmentEnd(), wal.startLsn(), OPTS, 5000);
    assertSameRecords(got, wal.records());
  }

  @Test
  void startingAtASegmentSkipsTheContinuedRecord() {
    SyntheticWal wal = SyntheticWal.small();
    while (wal.position().segmentNumber(wal.segmentSize()) == 1) {
      wal.append(10, 0, 1, 30_000);
    }
    // The last record crossed into segment 2; read from segment 2's start.
    Lsn seg2 = Lsn.of(2L * wal.segmentSize());
    wal.append(10, 0, 9, 10);
    wal.append(10, 0, 9, 50_000);
    byte[] all = wal.bytesToSegmentEnd();
    byte[] fromSeg2 = Arrays.copyOfRange(all, wal.segmentSize(), all.length);
    List<WalRecord> got = readAll(fromSeg2, seg2, OPTS.withSegmentSize(wal.segmentSize()), 777);
    List<SyntheticWal.Written> expected =
        wal.records().stream().filter(w -> !w.lsn().isBefore(seg2)).toList();
    assertThat(expected).hasSize(2);
    assertSameRecords(got, expected);
  }

  @Test
  void startingAtARecordBoundaryMidPage() {
    SyntheticWal wal = mixed();
    SyntheticWal.Written from = wal.records().get(40);
    byte[] all = wal.bytesToSegmentEnd();
    int off = (int) from.lsn().minus(wal.startLsn());
    List<WalRecord> got =
        readAll(
            Arrays.copyOfRange(all, off, all.length),
            from.lsn(),
            OPTS.withSegmentSize(wal.segmentSize()),
            999);
    assertSameRecords(got, wal.records().subList(40, wal.records().size()));
  }

  @Test
  void truncatedInputEndsAtLastCompleteRecord() {
    SyntheticWal wal = mixed();
    SyntheticWal.Written big = wal.records().get(9); // 70 000 bytes, spans pages
    byte[] all = wal.bytes();
    int cut = (int) big.lsn().minus(wal.startLsn()) + 30_000;
    WalRecordAssembler a = new WalRecordAssembler(wal.startLsn(), OPTS);
    List<WalRecord> got = new ArrayList<>();
    a.feed(ByteBuffer.wrap(all, 0, cut)).forEachRemaining(got::add);
    assertSameRecords(got, wal.records().subList(0, 9));
    assertThat(a.ended()).isFalse();
    assertThat(a.incompleteRecordStart()).contains(big.lsn());
    assertThat(a.lastRecordEnd()).isEqualTo(wal.records().get(8).end());
  }

  @Test
  void flippedByteIsACrcErrorNamingTheRecord() {
    SyntheticWal wal = mixed();
    SyntheticWal.Written victim = wal.records().get(5);
    byte[] all = wal.bytesToSegmentEnd();
    all[(int) victim.lsn().minus(wal.startLsn()) + 60] ^= 0x10;
    assertThatThrownBy(() -> readAll(all, wal.startLsn(), OPTS, 4096))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(WalFormatException.Kind.CRC_MISMATCH);
              assertThat(e.lsn()).isEqualTo(victim.lsn());
              assertThat(e.getMessage()).contains(victim.lsn().toString()).contains("checksum");
            });
  }

  @Test
  void pageAddressMismatch() {
    SyntheticWal wal = mixed();
    byte[] all = wal.bytesToSegmentEnd();
    int page = 3 * WalFormat.XLOG_BLCKSZ;
    ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN).putLong(page + 8, 0x1234_0000L);
    assertThatThrownBy(() -> readAll(all, wal.startLsn(), OPTS, 4096))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(WalFormatException.Kind.PAGE_ADDRESS_MISMATCH);
              assertThat(e.lsn()).isEqualTo(wal.startLsn().plus(page));
            });
  }

  @Test
  void badMagic() {
    SyntheticWal wal = mixed();
    byte[] all = wal.bytesToSegmentEnd();
    all[5 * WalFormat.XLOG_BLCKSZ] = 0x55;
    assertThatThrownBy(() -> readAll(all, wal.startLsn(), OPTS, 4096))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> assertThat(e.kind()).isEqualTo(WalFormatException.Kind.BAD_PAGE_MAGIC));
  }

  @Test
  void wrongSegmentSizeInHeader() {
    SyntheticWal wal = mixed();
    byte[] all = wal.bytesToSegmentEnd();
    ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN).putInt(32, 3_000_000);
    assertThatThrownBy(() -> readAll(all, wal.startLsn(), OPTS, 4096))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(WalFormatException.Kind.BAD_SEGMENT_SIZE);
              assertThat(e.getMessage()).contains("3000000");
            });
  }

  @Test
  void otherSystemsSegment() {
    SyntheticWal wal = mixed();
    byte[] all = wal.bytesToSegmentEnd();
    WalRecordAssembler.Options expectOther = new WalRecordAssembler.Options(0, 42, true);
    assertThatThrownBy(() -> readAll(all, wal.startLsn(), expectOther, 4096))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> assertThat(e.kind()).isEqualTo(WalFormatException.Kind.SYSTEM_ID_MISMATCH));
  }

  @Test
  void missingContinuationFlag() {
    SyntheticWal wal = mixed();
    SyntheticWal.Written big = wal.records().get(9);
    byte[] all = wal.bytesToSegmentEnd();
    long nextPage = big.lsn().pageStart().plus(WalFormat.XLOG_BLCKSZ).minus(wal.startLsn());
    all[(int) nextPage + 2] &= (byte) ~WalFormat.XLP_FIRST_IS_CONTRECORD;
    assertThatThrownBy(() -> readAll(all, wal.startLsn(), OPTS, 4096))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> assertThat(e.kind()).isEqualTo(WalFormatException.Kind.BAD_CONTRECORD));
  }

  @Test
  void overwrittenContinuationDropsTheFragment() {
    // A record whose writer died mid-way; the next page says "overwrite contrecord" and a new
    // record starts right after its header.
    SyntheticWal wal = SyntheticWal.small();
    wal.append(10, 0, 1, 100);
    SyntheticWal.Written torn = wal.append(10, 0, 2, 12_000);
    byte[] all = wal.bytesToSegmentEnd();
    int page1 = WalFormat.XLOG_BLCKSZ;
    ByteBuffer b = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
    b.putShort(page1 + 2, (short) WalFormat.XLP_FIRST_IS_OVERWRITE_CONTRECORD);
    b.putInt(page1 + 16, 0);
    Arrays.fill(all, page1 + 24, all.length, (byte) 0);
    WalRecordAssembler a = new WalRecordAssembler(wal.startLsn(), OPTS);
    List<WalRecord> got = new ArrayList<>();
    a.feed(ByteBuffer.wrap(all)).forEachRemaining(got::add);
    assertThat(got).hasSize(1);
    assertThat(a.ended()).isTrue();
    assertThat(a.lastRecordEnd()).isEqualTo(wal.records().getFirst().end());
    assertThat(a.lastRecordEnd()).isEqualTo(torn.lsn());
  }

  @Test
  void invalidLengthIsAnError() {
    SyntheticWal wal = SyntheticWal.small();
    SyntheticWal.Written w = wal.append(10, 0, 1, 100);
    byte[] all = wal.bytesToSegmentEnd();
    int next = (int) w.end().minus(wal.startLsn());
    all[next] = 5;
    assertThatThrownBy(() -> readAll(all, wal.startLsn(), OPTS, 4096))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(WalFormatException.Kind.BAD_RECORD_LENGTH);
              assertThat(e.lsn()).isEqualTo(w.end());
            });
  }

  @Test
  void rejectsBadStartPositions() {
    assertThatThrownBy(
            () -> new WalRecordAssembler(Lsn.of(0x1000004), OPTS.withSegmentSize(1 << 24)))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> new WalRecordAssembler(Lsn.of(0x1000028), OPTS))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("segment size");
  }

  static List<WalRecord> readAll(
      byte[] bytes, Lsn start, WalRecordAssembler.Options opts, int chunk) {
    WalRecordAssembler a = new WalRecordAssembler(start, opts);
    List<WalRecord> out = new ArrayList<>();
    for (int off = 0; off < bytes.length; ) {
      int n = (int) Math.min((long) chunk, bytes.length - off);
      Iterator<WalRecord> it = a.feed(ByteBuffer.wrap(bytes, off, n));
      it.forEachRemaining(out::add);
      off += n;
    }
    return out;
  }

  static void assertSameRecords(List<WalRecord> got, List<SyntheticWal.Written> expected) {
    assertThat(got).hasSameSizeAs(expected);
    for (int i = 0; i < got.size(); i++) {
      WalRecord g = got.get(i);
      SyntheticWal.Written e = expected.get(i);
      assertThat(g.lsn()).as("lsn of record %d", i).isEqualTo(e.lsn());
      assertThat(g.end()).as("end of record %d", i).isEqualTo(e.end());
      assertThat(g.copyBytes()).as("bytes of record %d", i).isEqualTo(e.bytes());
    }
  }
}
