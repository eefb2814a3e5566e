package io.zenith.it.wal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalSegmentFiles;
import io.zenith.wal.WalSegmentName;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code zenith wal dump} on damaged copies of real PostgreSQL 15 WAL: every problem ends the
 * command with one line on stderr that says what and where (exit 1), a file cut short ends cleanly
 * at its last complete record (exit 0), usage errors exit 2 — and never a stack trace.
 */
class WalDumpBadInputTest {

  /** The consecutive segments of a small cluster, written once and never modified. */
  @TempDir static Path pristine;

  private static List<Path> segments;

  /** The undamaged dump: what every damaged dump must agree with up to the damage. */
  private static List<DumpedRecord.Zenith> baseline;

  /** A record that lies on one WAL page. */
  private static DumpedRecord.Zenith onePage;

  /** A record continued on the next WAL page (one with a full-page image). */
  private static DumpedRecord.Zenith multiPage;

  @TempDir Path work;

  @BeforeAll
  static void writeWal() throws IOException {
    try (PgCluster c = PgCluster.initdb("--wal-segsize=16")) {
      // Keep every segment: the shutdown checkpoint would otherwise recycle segment 1.
      c.configure(Map.of("wal_keep_size", "1GB"));
      c.start();
      c.sql(
          """
          CREATE TABLE t (id int PRIMARY KEY, v text);
          INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 20000) i;
          CHECKPOINT;
          -- First changes after a checkpoint: uncompressed full-page images, records of ~8 KiB
          -- that always continue on the next WAL page.
          UPDATE t SET v = v || 'x' WHERE id % 100 = 0;
          SELECT pg_switch_wal();
          INSERT INTO t SELECT i, md5(i::text) FROM generate_series(20001, 25000) i;
          """);
      c.stop();
      List<Path> copies = new ArrayList<>();
      for (Path segment : WalSegments.consecutive(c.walDir())) {
        copies.add(Files.copy(segment, pristine.resolve(segment.getFileName())));
      }
      segments = List.copyOf(copies);
      assertThat(segments).hasSizeGreaterThanOrEqualTo(2);
    }
    ZenithCli.Result r = ZenithCli.run("wal", "dump", "--json", pristine.toString());
    assertThat(r.exitCode()).as("undamaged dump: %s", r).isZero();
    assertThat(r.err()).isEmpty();
    baseline = DumpedRecord.parseZenithJson(r.out());

    // Away from the first pages of a segment, and inside one segment.
    Predicate<DumpedRecord.Zenith> midSegment =
        z ->
            z.record().lsn().segmentOffset(WalSegments.SEGMENT_SIZE) > 1024 * 1024
                && z.end().segmentNumber(WalSegments.SEGMENT_SIZE)
                    == z.record().lsn().segmentNumber(WalSegments.SEGMENT_SIZE);
    onePage =
        baseline.stream()
            .filter(midSegment)
            .filter(z -> z.record().length() >= 64)
            .filter(
                z -> z.record().lsn().pageOffset() + z.record().length() <= WalFormat.XLOG_BLCKSZ)
            .skip(100)
            .findFirst()
            .orElseThrow();
    multiPage =
        baseline.stream()
            .filter(midSegment)
            .filter(
                z ->
                    z.record().lsn().pageOffset() + z.record().length()
                        > WalFormat.XLOG_BLCKSZ + 200)
            .findFirst()
            .orElseThrow();
    System.out.printf(
        "bad-input WAL: %d segments, %d records; one-page record %s, multi-page record %s%n",
        segments.size(), baseline.size(), onePage, multiPage);
  }

  // --- damaged records -------------------------------------------------------------------------

  @Test
  void flippedByteInARecordBodyIsAChecksumErrorNamingTheRecord() throws IOException {
    Path dir = copyOfPristine();
    Lsn at = onePage.record().lsn();
    // Past the 24-byte header: only the CRC can notice.
    flipByte(
        dir,
        at.plus(
            WalFormat.RECORD_HEADER_SIZE
                + (onePage.record().length() - WalFormat.RECORD_HEADER_SIZE) / 2));

    ZenithCli.Result r = dump(dir);

    assertOneLineError(r, 1, "checksum", at.toString());
    assertThat(records(r)).as("records before the damaged one").isEqualTo(before(at));
    assertReaderFails(dir, WalFormatException.Kind.CRC_MISMATCH, at);
  }

  @Test
  void flippedByteOnTheContinuationPageIsAChecksumErrorNamingTheRecordStart() throws IOException {
    Path dir = copyOfPristine();
    Lsn at = multiPage.record().lsn();
    Lsn nextPage = at.pageStart().plus(WalFormat.XLOG_BLCKSZ);
    flipByte(dir, nextPage.plus(WalFormat.SHORT_PAGE_HEADER_SIZE + 100));

    ZenithCli.Result r = dump(dir);

    assertOneLineError(r, 1, "checksum", at.toString());
    assertThat(records(r)).isEqualTo(before(at));
    assertReaderFails(dir, WalFormatException.Kind.CRC_MISMATCH, at);
  }

  // --- files cut short -------------------------------------------------------------------------

  /** Where a segment file is cut, relative to a record. */
  enum Cut {
    /** 12 bytes into a record's header. */
    INSIDE_RECORD_HEADER,
    /** At the page boundary a record continues across: the file holds its first page only. */
    AT_PAGE_BOUNDARY_INSIDE_RECORD,
    /** 100 bytes into the continuation page of a record. */
    ON_CONTINUATION_PAGE
  }

  @ParameterizedTest
  @EnumSource(Cut.class)
  void truncatedSegmentEndsCleanlyAtTheLastCompleteRecord(Cut cut) throws IOException {
    Path dir = copyOfPristine();
    DumpedRecord.Zenith victim = cut == Cut.INSIDE_RECORD_HEADER ? onePage : multiPage;
    Lsn at = victim.record().lsn();
    Lsn nextPage = at.pageStart().plus(WalFormat.XLOG_BLCKSZ);
    Lsn cutAt =
        switch (cut) {
          case INSIDE_RECORD_HEADER -> at.plus(12);
          case AT_PAGE_BOUNDARY_INSIDE_RECORD -> nextPage;
          case ON_CONTINUATION_PAGE -> nextPage.plus(100);
        };
    // Later segments stay in the directory: a short file still ends the WAL there.
    Path file = dir.resolve(WalSegments.fileName(cutAt));
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
      ch.truncate(cutAt.segmentOffset(WalSegments.SEGMENT_SIZE));
    }

    ZenithCli.Result r = dump(dir);

    assertThat(r.exitCode()).as("%s", r).isZero();
    assertThat(records(r)).as("records up to the cut").isEqualTo(before(at));
    assertThat(r.errLines()).as("%s", r).hasSize(1);
    assertThat(r.err()).contains("incomplete record").contains(at.toString());
    assertNoStackTrace(r);
  }

  // --- not WAL / wrong WAL ---------------------------------------------------------------------

  @Test
  void textFileNamedLikeASegmentIsNotWal() throws IOException {
    Path dir = Files.createDirectory(work.resolve("pg_wal"));
    Path fake = dir.resolve("000000010000000000000001");
    Files.writeString(
        fake, "This is not WAL: just a few lines of text,\nlong enough for a header.\n");

    ZenithCli.Result r = dump(dir);

    assertOneLineError(r, 1, fake.getFileName().toString(), "not a PostgreSQL 15 WAL segment");
    assertReaderFails(List.of(fake), WalFormatException.Kind.BAD_PAGE_MAGIC, Lsn.INVALID);
  }

  @ParameterizedTest
  @ValueSource(strings = {"hello\n", "A text file that is longer than a WAL page header is.\n"})
  void textFileGivenByNameIsNotWal(String text) throws IOException {
    Path notes = Files.writeString(work.resolve("notes.txt"), text);

    ZenithCli.Result r = dump(notes);

    assertOneLineError(r, 1, notes.toString(), "WAL segment");
  }

  @Test
  void invalidSegmentSizeInTheLongPageHeader() throws IOException {
    Path dir = copyOfPristine();
    // xlp_seg_size: offset 32 of the segment's first (long) page header.
    patchInt(dir.resolve(segments.getFirst().getFileName()), 32, 12345);

    ZenithCli.Result r = dump(dir);

    assertOneLineError(r, 1, "segment size", "12345");
    assertReaderFails(
        dir,
        WalFormatException.Kind.BAD_SEGMENT_SIZE,
        WalSegments.name(segments.getFirst()).startLsn(WalSegments.SEGMENT_SIZE));
  }

  @Test
  void segmentCopiedUnderAnotherSegmentsNameIsAPageAddressMismatch() throws IOException {
    WalSegmentName first = WalSegments.name(segments.getFirst());
    WalSegmentName other = new WalSegmentName(first.timeline(), first.segmentNumber() + 5);
    Path wrong = work.resolve(other.fileName(WalSegments.SEGMENT_SIZE));
    Files.copy(segments.getFirst(), wrong);

    ZenithCli.Result r = dump(wrong);

    Lsn start = other.startLsn(WalSegments.SEGMENT_SIZE);
    assertOneLineError(r, 1, "page address", start.toString());
    assertThat(records(r)).isEmpty();
    assertReaderFails(List.of(wrong), WalFormatException.Kind.PAGE_ADDRESS_MISMATCH, start);
  }

  @Test
  void pageAddressMismatchInsideTheWalStopsThereWithTheRecordsBefore() throws IOException {
    Path dir = copyOfPristine();
    Lsn page = onePage.record().lsn().pageStart().plus(WalFormat.XLOG_BLCKSZ);
    // xlp_pageaddr (offset 8): the address of a page five segments on, as in a recycled file.
    patchLong(dir, page.plus(8), page.value() + 5L * WalSegments.SEGMENT_SIZE);

    ZenithCli.Result r = dump(dir);

    assertOneLineError(r, 1, "page address", page.toString());
    assertThat(records(r)).isEqualTo(endingBy(page));
    assertReaderFails(dir, WalFormatException.Kind.PAGE_ADDRESS_MISMATCH, page);
  }

  @Test
  void badPageMagicInsideTheWalStopsThereWithTheRecordsBefore() throws IOException {
    Path dir = copyOfPristine();
    Lsn page = onePage.record().lsn().pageStart().plus(WalFormat.XLOG_BLCKSZ);
    // PostgreSQL 14's XLOG_PAGE_MAGIC: a page of another major version.
    patchShort(dir, page, 0xD10D);

    ZenithCli.Result r = dump(dir);

    assertOneLineError(r, 1, "magic", "D10D", page.toString());
    assertThat(records(r)).isEqualTo(endingBy(page));
    assertReaderFails(dir, WalFormatException.Kind.BAD_PAGE_MAGIC, page);
  }

  @Test
  void segmentOfAnotherDatabaseSystemStopsAtItsStart() throws IOException {
    Path dir = copyOfPristine();
    Path second = dir.resolve(segments.get(1).getFileName());
    Lsn start = WalSegments.name(second).startLsn(WalSegments.SEGMENT_SIZE);
    // xlp_sysid: offset 24 of the long page header.
    patchLong(dir, start.plus(24), 0x1234_5678_9ABC_DEF0L);

    ZenithCli.Result r = dump(dir);

    assertOneLineError(r, 1, "database system", start.toString());
    assertThat(records(r)).isEqualTo(endingBy(start));
    assertReaderFails(dir, WalFormatException.Kind.SYSTEM_ID_MISMATCH, start);
  }

  /**
   * A file in the directory whose name has 24 hex digits but is no segment of this segment size
   * (the low eight digits of a 16 MiB segment's name stop at 000000FF). It follows the WAL's
   * segments, so it is not part of their consecutive run, which is dumped as usual.
   */
  @Test
  void strayFileWithASegmentLikeNameAfterTheWalIsIgnored() throws IOException {
    Path dir = copyOfPristine();
    Files.writeString(dir.resolve("000000010000000000000100"), "stray\n");

    ZenithCli.Result r = dump(dir);

    assertThat(r.exitCode()).as("%s", r).isZero();
    assertThat(r.err()).isEmpty();
    assertThat(records(r)).isEqualTo(baseline);
  }

  @Test
  void nonConsecutiveSegmentFiles() throws IOException {
    WalSegmentName first = WalSegments.name(segments.getFirst());
    Path third = work.resolve(first.next().next().fileName(WalSegments.SEGMENT_SIZE));
    Files.copy(segments.get(1), third);

    ZenithCli.Result r = dump(segments.getFirst(), third);

    assertOneLineError(r, 1, "not consecutive");
    assertReaderFails(
        List.of(segments.getFirst(), third),
        WalFormatException.Kind.BAD_SEGMENT_SEQUENCE,
        first.next().startLsn(WalSegments.SEGMENT_SIZE));
  }

  @Test
  void missingFile() {
    Path missing = work.resolve("000000010000000000000009");

    ZenithCli.Result r = dump(missing);

    assertOneLineError(r, 1, missing.toString());
  }

  // --- usage -----------------------------------------------------------------------------------

  @Test
  void unknownOptionIsAUsageError() {
    ZenithCli.Result r = ZenithCli.run("wal", "dump", "--bogus", pristine.toString());

    assertUsageError(r, "--bogus");
  }

  @ParameterizedTest
  @ValueSource(strings = {"0/XYZ", "12345", "1/2/3", "/1", "123456789/0"})
  void malformedLsnIsAUsageError(String lsn) {
    ZenithCli.Result r = ZenithCli.run("wal", "dump", "--start", lsn, pristine.toString());

    assertUsageError(r, lsn);
  }

  @Test
  void noInputIsAUsageError() {
    assertUsageError(ZenithCli.run("wal", "dump", "--json"), "SEGMENT|DIR");
  }

  // --- helpers ---------------------------------------------------------------------------------

  private static ZenithCli.Result dump(Path... inputs) {
    String[] args = new String[inputs.length + 3];
    args[0] = "wal";
    args[1] = "dump";
    args[2] = "--json";
    for (int i = 0; i < inputs.length; i++) {
      args[i + 3] = inputs[i].toString();
    }
    return ZenithCli.run(args);
  }

  private static List<DumpedRecord.Zenith> records(ZenithCli.Result r) {
    return DumpedRecord.parseZenithJson(r.out());
  }

  private static List<DumpedRecord.Zenith> before(Lsn lsn) {
    return baseline.stream().filter(z -> z.record().lsn().isBefore(lsn)).toList();
  }

  /** The records complete before the page at {@code page} is read. */
  private static List<DumpedRecord.Zenith> endingBy(Lsn page) {
    return baseline.stream().filter(z -> !z.end().isAfter(page)).toList();
  }

  private Path copyOfPristine() throws IOException {
    Path dir = Files.createDirectory(work.resolve("pg_wal"));
    for (Path segment : segments) {
      Files.copy(segment, dir.resolve(segment.getFileName()));
    }
    return dir;
  }

  private static void assertOneLineError(ZenithCli.Result r, int exitCode, String... fragments) {
    assertThat(r.exitCode()).as("%s", r).isEqualTo(exitCode);
    assertThat(r.errLines()).as("one line on stderr: %s", r).hasSize(1);
    assertThat(r.err()).startsWith("zenith wal dump: error: ").contains(fragments);
    assertNoStackTrace(r);
  }

  private static void assertUsageError(ZenithCli.Result r, String fragment) {
    assertThat(r.exitCode()).as("%s", r).isEqualTo(2);
    assertThat(r.errLines().getFirst()).startsWith("zenith wal dump: error: ").contains(fragment);
    assertNoStackTrace(r);
  }

  /** The library reports the damage with the right kind and LSN (what callers switch on). */
  private static void assertReaderFails(Path dir, WalFormatException.Kind kind, Lsn lsn) {
    assertReaderFails(listSegments(dir), kind, lsn);
  }

  private static void assertReaderFails(List<Path> files, WalFormatException.Kind kind, Lsn lsn) {
    assertThatThrownBy(() -> WalSegments.decode(files, record -> false))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> {
              assertThat(e.kind()).as("kind of %s", e.getMessage()).isEqualTo(kind);
              assertThat(e.lsn()).as("LSN of %s", e.getMessage()).isEqualTo(lsn);
            });
  }

  private static List<Path> listSegments(Path dir) {
    try {
      return WalSegmentFiles.listSegments(dir);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static void assertNoStackTrace(ZenithCli.Result r) {
    assertThat(r.err()).as("stderr has no stack trace").doesNotContain("\tat ");
    assertThat(r.err()).as("stderr names no exception class").doesNotContain("Exception");
  }

  private static void flipByte(Path dir, Lsn at) throws IOException {
    Path file = dir.resolve(WalSegments.fileName(at));
    long offset = at.segmentOffset(WalSegments.SEGMENT_SIZE);
    try (FileChannel ch =
        FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ByteBuffer b = ByteBuffer.allocate(1);
      ch.read(b, offset);
      b.put(0, (byte) ~b.get(0)).rewind();
      ch.write(b, offset);
    }
  }

  private static void patchInt(Path file, long offset, int value) throws IOException {
    write(file, offset, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, value));
  }

  private static void patchShort(Path dir, Lsn at, int value) throws IOException {
    write(
        dir.resolve(WalSegments.fileName(at)),
        at.segmentOffset(WalSegments.SEGMENT_SIZE),
        ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort(0, (short) value));
  }

  private static void patchLong(Path dir, Lsn at, long value) throws IOException {
    write(
        dir.resolve(WalSegments.fileName(at)),
        at.segmentOffset(WalSegments.SEGMENT_SIZE),
        ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value));
  }

  private static void write(Path file, long offset, ByteBuffer bytes) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
      ch.write(bytes, offset);
    }
  }
}
