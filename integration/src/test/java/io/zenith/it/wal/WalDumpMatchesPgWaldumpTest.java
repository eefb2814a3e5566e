package io.zenith.it.wal;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.ingest.wal.BlockImage;
import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.FullPageImages;
import io.zenith.ingest.wal.ResourceManager;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.AfterParameterizedClassInvocation;
import org.junit.jupiter.params.BeforeParameterizedClassInvocation;
import org.junit.jupiter.params.Parameter;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Acceptance test of the WAL reader against PostgreSQL's own: for each {@code wal_compression},
 * stock PostgreSQL 15 writes WAL with a workload touching every resource manager ({@link
 * WalWorkload}), and {@code zenith wal dump --json} must print exactly the records {@code
 * pg_waldump -b} prints — same LSNs, back-links, rmgrs, types, lengths, xids and block references,
 * in the same order, up to the end of the WAL. Full-page images must restore to the bytes
 * PostgreSQL holds in its buffer.
 *
 * <p>One cluster and one WAL per compression setting, shared by the tests of that setting.
 */
@ParameterizedClass(name = "wal_compression={0}")
@ValueSource(strings = {"off", "pglz", "lz4", "zstd"})
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WalDumpMatchesPgWaldumpTest {

  @Parameter String walCompression;

  private PgCluster cluster;
  private Path initdbWal;
  private WalWorkload.FpiProbe probe;
  private Dumps workload;
  private Dumps initdb;

  /** Both tools' view of one directory of WAL. */
  private record Dumps(
      Path dir, ZenithCli.Result cli, List<DumpedRecord.Zenith> zenith, PgWaldump.Result pg) {
    List<DumpedRecord> ours() {
      return zenith.stream().map(DumpedRecord.Zenith::record).toList();
    }
  }

  @BeforeParameterizedClassInvocation
  void generateWal() throws Exception {
    long started = System.nanoTime();
    cluster = PgCluster.initdb("--wal-segsize=16");
    Path base = cluster.dataDir().getParent();

    // initdb's own WAL is varied (bootstrap catalogs, CREATE DATABASE…); pg_resetwal below drops
    // it, so keep a copy PostgreSQL's user can read for pg_waldump.
    initdbWal = base.resolve("initdb-wal");
    cluster.distribution().createOwnedDirectory(initdbWal);
    for (Path segment : WalSegments.consecutive(cluster.walDir())) {
      Path copy = initdbWal.resolve(segment.getFileName());
      Files.copy(segment, copy);
      cluster.distribution().giveToPgUser(copy);
    }

    cluster.run(
        "pg_resetwal", List.of("-x", WalWorkload.NEXT_XID, "-D", cluster.dataDir().toString()));
    cluster.configure(WalWorkload.settings(walCompression));
    Path tablespace = base.resolve("tablespace");
    cluster.distribution().createOwnedDirectory(tablespace);
    cluster.start();
    WalWorkload.run(cluster, tablespace);
    probe = WalWorkload.fpiProbe(cluster);
    // A clean stop: the shutdown checkpoint is the last record, zeros follow it.
    cluster.stop();
    long generated = System.nanoTime();

    workload = dumpBoth(cluster.walDir());
    initdb = dumpBoth(initdbWal);
    System.out.printf(
        Locale.ROOT,
        "wal_compression=%s: workload WAL %d records (pg_waldump %d) in %d segments,"
            + " initdb WAL %d records (pg_waldump %d); generated in %d ms, dumped in %d ms%n",
        walCompression,
        workload.zenith().size(),
        workload.pg().records().size(),
        WalSegments.consecutive(cluster.walDir()).size(),
        initdb.zenith().size(),
        initdb.pg().records().size(),
        (generated - started) / 1_000_000,
        (System.nanoTime() - generated) / 1_000_000);
  }

  @AfterParameterizedClassInvocation
  void removeCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private Dumps dumpBoth(Path dir) throws IOException, InterruptedException {
    List<Path> segments = WalSegments.consecutive(dir);
    ZenithCli.Result cli = ZenithCli.run("wal", "dump", "--json", dir.toString());
    List<DumpedRecord.Zenith> zenith =
        cli.exitCode() == 0 ? DumpedRecord.parseZenithJson(cli.out()) : List.of();
    PgWaldump.Result pg =
        PgWaldump.dump(
            cluster.distribution(),
            dir,
            segments.getFirst().getFileName().toString(),
            segments.getLast().getFileName().toString());
    return new Dumps(dir, cli, zenith, pg);
  }

  @Test
  void workloadWalMatchesPgWaldumpRecordForRecord() {
    assertMatches(workload);
  }

  @Test
  void initdbWalMatchesPgWaldumpRecordForRecord() {
    assertMatches(initdb);
  }

  private void assertMatches(Dumps d) {
    assertThat(d.cli().exitCode()).as("zenith wal dump of %s: %s", d.dir(), d.cli()).isZero();
    assertThat(d.cli().err()).as("zenith wal dump stderr").isEmpty();
    // pg_waldump must have stopped where the written WAL ends (zeros after the shutdown
    // checkpoint), not on something it could not read: otherwise the comparison is partial.
    assertThat(d.pg().err())
        .as("pg_waldump stderr")
        .contains("invalid record length")
        .contains("got 0");
    List<DumpedRecord> ours = d.ours();
    List<DumpedRecord> theirs = d.pg().records();
    assertThat(theirs).as("pg_waldump records").isNotEmpty();

    int common = Math.min(ours.size(), theirs.size());
    List<String> diffs = new ArrayList<>();
    int mismatches = 0;
    for (int i = 0; i < common; i++) {
      if (!ours.get(i).equals(theirs.get(i))) {
        mismatches++;
        if (diffs.size() < 5) {
          diffs.add(
              "  #"
                  + i
                  + "\n    zenith:     "
                  + ours.get(i)
                  + "\n    pg_waldump: "
                  + theirs.get(i));
        }
      }
    }
    int differing = mismatches;
    assertThat(differing)
        .as(
            () ->
                String.format(
                    Locale.ROOT,
                    "wal_compression=%s, %s: %d of %d records differ; first ones:%n%s",
                    walCompression,
                    d.dir().getFileName(),
                    differing,
                    common,
                    String.join("\n", diffs)))
        .isZero();
    assertThat(ours.size())
        .as(
            () ->
                String.format(
                    Locale.ROOT,
                    "record count (zenith %d, pg_waldump %d); from the first unmatched one:%n"
                        + "  zenith:%n%s%n  pg_waldump:%n%s",
                    ours.size(),
                    theirs.size(),
                    DumpedRecord.around(ours, common, 4),
                    DumpedRecord.around(theirs, common, 4)))
        .isEqualTo(theirs.size());
    assertThat(ours.getFirst().lsn()).isEqualTo(theirs.getFirst().lsn());
    assertThat(ours.getLast().lsn()).isEqualTo(theirs.getLast().lsn());
  }

  /**
   * The human-readable output starts each line exactly as pg_waldump does (rmgr column width,
   * {@code rec/tot} lengths — so the image bytes of each record —, xid, zero-padded LSNs, type).
   */
  @Test
  void textOutputLinesStartExactlyLikePgWaldumps() {
    ZenithCli.Result text = ZenithCli.run("wal", "dump", cluster.walDir().toString());
    assertThat(text.exitCode()).as("%s", text).isZero();
    List<String> ours = text.outLines().stream().map(DumpedRecord::textHead).toList();
    List<String> theirs = workload.pg().heads();
    List<String> diffs = new ArrayList<>();
    for (int i = 0; i < Math.min(ours.size(), theirs.size()) && diffs.size() < 5; i++) {
      if (!ours.get(i).equals(theirs.get(i))) {
        diffs.add("  zenith:     " + ours.get(i) + "\n  pg_waldump: " + theirs.get(i));
      }
    }
    assertThat(diffs).as("lines that start differently").isEmpty();
    assertThat(ours).hasSameSizeAs(theirs);
  }

  /** The workload's purpose: every builtin resource manager, and the record kinds that matter. */
  @Test
  void workloadWritesEveryBuiltinResourceManagerAndTheRecordKindsThatMatter() {
    List<DumpedRecord> ours = workload.ours();
    Set<String> rmgrs = ours.stream().map(DumpedRecord::rmgr).collect(Collectors.toSet());
    Set<String> builtin =
        Arrays.stream(ResourceManager.values())
            .map(ResourceManager::pgName)
            .collect(Collectors.toCollection(TreeSet::new));
    assertThat(builtin).hasSize(WalFormat.RM_MAX_BUILTIN_ID + 1);
    assertThat(rmgrs).containsAll(builtin);

    Set<String> types =
        ours.stream().map(r -> r.rmgr() + "/" + r.type()).collect(Collectors.toSet());
    assertThat(types)
        .contains(
            "XLOG/CHECKPOINT_SHUTDOWN",
            "XLOG/CHECKPOINT_ONLINE",
            "XLOG/NEXTOID",
            "XLOG/FPI",
            "XLOG/FPI_FOR_HINT",
            "XLOG/SWITCH",
            "XLOG/PARAMETER_CHANGE",
            "XLOG/RESTORE_POINT",
            "XLOG/BACKUP_END",
            "Transaction/COMMIT",
            "Transaction/ABORT",
            "Transaction/PREPARE",
            "Transaction/COMMIT_PREPARED",
            "Transaction/ABORT_PREPARED",
            "Transaction/ASSIGNMENT",
            "Transaction/INVALIDATION",
            "Storage/CREATE",
            "Storage/TRUNCATE",
            "CLOG/ZEROPAGE",
            "Database/CREATE_FILE_COPY",
            "Database/CREATE_WAL_LOG",
            "Database/DROP",
            "Tablespace/CREATE",
            "Tablespace/DROP",
            "MultiXact/CREATE_ID",
            "RelMap/UPDATE",
            "Standby/LOCK",
            "Standby/RUNNING_XACTS",
            "Heap2/MULTI_INSERT",
            "Heap2/PRUNE",
            "Heap2/VACUUM",
            "Heap2/FREEZE_PAGE",
            "Heap2/VISIBLE",
            "Heap2/NEW_CID",
            "Heap2/REWRITE",
            "Heap/INSERT",
            "Heap/UPDATE",
            "Heap/HOT_UPDATE",
            "Heap/DELETE",
            "Heap/LOCK",
            "Heap/INPLACE",
            "Heap/TRUNCATE",
            "Heap/HEAP_CONFIRM",
            "CommitTs/ZEROPAGE",
            "ReplicationOrigin/SET",
            "ReplicationOrigin/DROP",
            "Heap2/LOCK_UPDATED",
            "Btree/DEDUP",
            "Btree/DELETE",
            "Btree/MARK_PAGE_HALFDEAD",
            "Btree/UNLINK_PAGE",
            "Btree/META_CLEANUP",
            "Hash/INIT_META_PAGE",
            "Hash/SPLIT_ALLOCATE_PAGE",
            "Gin/CREATE_PTREE",
            "Gin/INSERT_LISTPAGE",
            "Gin/VACUUM_DATA_LEAF_PAGE",
            "Gist/PAGE_SPLIT",
            "SPGist/ADD_NODE",
            "SPGist/SPLIT_TUPLE",
            "SPGist/PICKSPLIT",
            "BRIN/CREATE_INDEX",
            "BRIN/REVMAP_EXTEND",
            "BRIN/DESUMMARIZE",
            "Sequence/LOG",
            "Generic/Generic",
            "LogicalMessage/MESSAGE");

    // The 17 MiB logical message: one record larger than a segment, so it crosses at least one
    // segment boundary (two when it starts late in a segment).
    List<DumpedRecord.Zenith> huge =
        workload.zenith().stream()
            .filter(z -> z.record().length() > WalSegments.SEGMENT_SIZE)
            .toList();
    assertThat(huge).hasSize(1);
    DumpedRecord.Zenith message = huge.getFirst();
    assertThat(message.record().rmgr()).isEqualTo("LogicalMessage");
    assertThat(message.end().segmentNumber(WalSegments.SEGMENT_SIZE))
        .isGreaterThan(message.record().lsn().segmentNumber(WalSegments.SEGMENT_SIZE));

    // Images redo applies, and images that are only there for wal_consistency_checking.
    List<DumpedRecord.Block> images =
        ours.stream().flatMap(r -> r.blocks().stream()).filter(DumpedRecord.Block::image).toList();
    assertThat(images).anyMatch(DumpedRecord.Block::applyImage);
    assertThat(images).anyMatch(b -> !b.applyImage());
  }

  /**
   * {@code end} is what redo stamps on pages, so it is checked on every record: the next record
   * starts there (after the page header when {@code end} is a page boundary), and pg_waldump's
   * end-of-WAL message names the position after the last record.
   */
  @Test
  void everyRecordEndIsWhereTheNextRecordStarts() {
    assertEndsChain(workload);
    assertEndsChain(initdb);
  }

  private static void assertEndsChain(Dumps d) {
    List<DumpedRecord.Zenith> z = d.zenith();
    assertThat(z).as("zenith records of %s", d.dir()).isNotEmpty();
    List<String> wrong = new ArrayList<>();
    for (int i = 0; i + 1 < z.size(); i++) {
      Lsn expected = nextRecordStart(z.get(i).end());
      Lsn actual = z.get(i + 1).record().lsn();
      if (!actual.equals(expected) && wrong.size() < 5) {
        wrong.add(z.get(i) + " -> next record at " + actual);
      }
    }
    assertThat(wrong).as("records whose end is not where the next one starts").isEmpty();

    Matcher m =
        Pattern.compile("invalid record length at ([0-9A-F]+/[0-9A-F]+)").matcher(d.pg().err());
    assertThat(m.find()).as("pg_waldump stderr: %s", d.pg().err()).isTrue();
    assertThat(nextRecordStart(z.getLast().end())).isEqualTo(Lsn.parse(m.group(1)));
  }

  private static Lsn nextRecordStart(Lsn end) {
    if (end.segmentOffset(WalSegments.SEGMENT_SIZE) == 0) {
      return end.plus(WalFormat.LONG_PAGE_HEADER_SIZE);
    }
    return end.pageOffset() == 0 ? end.plus(WalFormat.SHORT_PAGE_HEADER_SIZE) : end;
  }

  /**
   * The image in the update's record, restored and stamped with the record's end LSN (what redo
   * does), is byte for byte the page {@code get_raw_page} read from PostgreSQL's buffer right after
   * the update. No masking: without data checksums pd_checksum stays 0 in both, and the probe keeps
   * hint bits from changing (see {@link WalWorkload#fpiProbe}).
   */
  @Test
  void fullPageImageRestoresToThePagePostgresHolds() throws IOException {
    List<DecodedRecord> touching =
        WalSegments.decode(cluster.walDir(), r -> r.blocks().stream().anyMatch(this::isProbeBlock));
    assertThat(touching).as("records touching the probe page").isNotEmpty();
    DecodedRecord last = touching.getLast();
    BlockRef block = last.blocks().stream().filter(this::isProbeBlock).findFirst().orElseThrow();
    assertThat(block.hasImage())
        .as(
            "the last record touching the page (%s/%s at %s) carries its image",
            last.rmgr(), last.typeName(), last.lsn())
        .isTrue();
    assertThat(block.appliesImage()).isTrue();
    assertThat(last.rmgr()).isEqualTo(ResourceManager.HEAP);
    assertThat(last.typeName()).isEqualTo("HOT_UPDATE");
    assertThat(block.image().compression()).isEqualTo(expectedCompression());

    byte[] page = FullPageImages.restore(last, block);
    long end = last.end().value();
    ByteBuffer.wrap(page)
        .order(ByteOrder.LITTLE_ENDIAN)
        .putInt(0, (int) (end >>> 32))
        .putInt(4, (int) end);
    int at = Arrays.mismatch(page, probe.page());
    assertThat(at)
        .as(
            () ->
                ("restored image of %s block 0 (record %s, %s) differs from get_raw_page"
                        + " at byte %d:%n  restored:     %s%n  get_raw_page: %s")
                    .formatted(
                        probe.rel(),
                        last.lsn(),
                        block.image(),
                        at,
                        hexAround(page, at),
                        hexAround(probe.page(), at)))
        .isEqualTo(-1);
  }

  private boolean isProbeBlock(BlockRef b) {
    return b.rel().equals(probe.rel())
        && b.fork() == ForkNumber.MAIN
        && b.blockNumber() == probe.block();
  }

  private BlockImage.Compression expectedCompression() {
    return Map.of(
            "off", BlockImage.Compression.NONE,
            "pglz", BlockImage.Compression.PGLZ,
            "lz4", BlockImage.Compression.LZ4,
            "zstd", BlockImage.Compression.ZSTD)
        .get(walCompression);
  }

  private static String hexAround(byte[] page, int at) {
    int from = Math.max(0, at - 8);
    int to = Math.min(page.length, at + 24);
    return "[" + from + ".." + to + ") " + HexFormat.ofDelimiter(" ").formatHex(page, from, to);
  }
}
