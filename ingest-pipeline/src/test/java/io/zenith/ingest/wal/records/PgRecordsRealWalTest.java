package io.zenith.ingest.wal.records;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.FullPageImages;
import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentFiles;
import io.zenith.wal.WalStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Decodes the WAL of a real PostgreSQL 15 cluster that ran a workload producing every record type
 * of {@link PgRecords}, and checks the result against pg_waldump's output for the same records and
 * against the server's own visibility map.
 *
 * <p>The cluster is prepared so that rare records appear without waiting for millions of
 * transactions: pg_resetwal puts the next xid at the start of CLOG page 32 (its first use zeroes
 * the page; freezing every database then makes CLOG segment 0 removable) and the next MultiXactId
 * at the last entry of offsets page 0 (creating it zeroes page 1). A stop and a restart as a
 * standby followed by promotion give PARAMETER_CHANGE and END_OF_RECOVERY; the WAL read is that of
 * timeline 2, whose first segment starts with a copy of timeline 1.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class PgRecordsRealWalTest {

  /** Every rmgr/type {@link PgRecords} decodes; each must occur in the workload's WAL. */
  private static final List<String> EXPECTED_KINDS =
      List.of(
          "XLOG/CHECKPOINT_SHUTDOWN",
          "XLOG/CHECKPOINT_ONLINE",
          "XLOG/NEXTOID",
          "XLOG/FPI",
          "XLOG/FPI_FOR_HINT",
          "XLOG/SWITCH",
          "XLOG/PARAMETER_CHANGE",
          "XLOG/END_OF_RECOVERY",
          "Transaction/COMMIT",
          "Transaction/ABORT",
          "Transaction/COMMIT_PREPARED",
          "Transaction/ABORT_PREPARED",
          "Transaction/PREPARE",
          "Transaction/ASSIGNMENT",
          "Storage/CREATE",
          "Storage/TRUNCATE",
          "Database/CREATE_FILE_COPY",
          "Database/CREATE_WAL_LOG",
          "Database/DROP",
          "Heap/INSERT",
          "Heap/INSERT+INIT",
          "Heap/DELETE",
          "Heap/UPDATE",
          "Heap/UPDATE+INIT",
          "Heap/HOT_UPDATE",
          "Heap/LOCK",
          "Heap/INPLACE",
          "Heap2/MULTI_INSERT",
          "Heap2/MULTI_INSERT+INIT",
          "Heap2/LOCK_UPDATED",
          "Heap2/VISIBLE",
          "Heap2/FREEZE_PAGE",
          "Heap2/PRUNE",
          "Heap2/VACUUM",
          "CLOG/ZEROPAGE",
          "CLOG/TRUNCATE",
          "MultiXact/ZERO_OFF_PAGE",
          "MultiXact/ZERO_MEM_PAGE",
          "MultiXact/CREATE_ID",
          "MultiXact/TRUNCATE_ID",
          "RelMap/UPDATE",
          "Standby/RUNNING_XACTS");

  private static final String WORKLOAD =
      """
      CREATE EXTENSION pg_visibility;
      CREATE TABLE t (id int PRIMARY KEY, v int, pad text)
        WITH (fillfactor = 70, autovacuum_enabled = off);
      INSERT INTO t SELECT g, g, repeat('x', 100) FROM generate_series(1, 3000) g;
      CHECKPOINT;
      SELECT count(*) FROM t;
      VACUUM t;
      UPDATE t SET v = v + 1 WHERE id % 100 = 0;
      UPDATE t SET id = id + 100000 WHERE id % 250 = 0;
      DELETE FROM t WHERE id % 333 = 0;
      INSERT INTO t VALUES (5000, 1, 'a');
      VACUUM FREEZE t;
      SELECT id FROM t WHERE id IN (7, 207, 1007) FOR SHARE;
      SELECT id FROM t WHERE id IN (8, 408, 1208) FOR UPDATE;
      BEGIN;
      SELECT id FROM t WHERE id = 9 FOR KEY SHARE;
      SAVEPOINT a;
      UPDATE t SET v = 0 WHERE id = 9;
      COMMIT;
      BEGIN;
      SELECT id FROM t WHERE id = 10 FOR SHARE;
      SAVEPOINT a;
      SELECT id FROM t WHERE id = 10 FOR UPDATE;
      COMMIT;
      DELETE FROM t WHERE id > 2500;
      VACUUM t;
      CREATE TABLE u (id int, pad text) WITH (fillfactor = 100, autovacuum_enabled = off);
      INSERT INTO u SELECT g, repeat('u', 1500) FROM generate_series(1, 20) g;
      UPDATE u SET id = id + 1000;
      CREATE TABLE c (a int, b text) WITH (autovacuum_enabled = off);
      COPY c FROM STDIN;
      1\tone
      2\ttwo
      3\tthree
      \\.
      VACUUM c;
      COPY c FROM STDIN;
      4\tfour
      5\tfive
      \\.
      BEGIN;
      CREATE TABLE cf (a int, b text) WITH (autovacuum_enabled = off);
      COPY cf FROM STDIN WITH (FREEZE);
      1\tone
      2\ttwo
      \\.
      COMMIT;
      BEGIN;
      INSERT INTO c VALUES (10, 'p');
      SAVEPOINT s1;
      INSERT INTO c VALUES (11, 'q');
      PREPARE TRANSACTION 'p1';
      COMMIT PREPARED 'p1';
      BEGIN;
      CREATE TABLE gone (x int);
      INSERT INTO gone VALUES (1);
      SAVEPOINT s;
      INSERT INTO gone VALUES (2);
      PREPARE TRANSACTION 'p2';
      ROLLBACK PREPARED 'p2';
      CREATE TABLE dropped_when_prepared (x int);
      BEGIN;
      DROP TABLE dropped_when_prepared;
      PREPARE TRANSACTION 'p3';
      COMMIT PREPARED 'p3';
      BEGIN;
      CREATE TABLE gone2 (x int);
      ROLLBACK;
      CREATE TABLE dropme (x int);
      INSERT INTO dropme VALUES (1);
      DROP TABLE dropme;
      DO $$ BEGIN
        FOR i IN 1..70 LOOP
          BEGIN INSERT INTO c VALUES (i, 'sub'); EXCEPTION WHEN others THEN NULL; END;
        END LOOP;
      END $$;
      SELECT pg_replication_origin_create('zenith_origin');
      SELECT pg_replication_origin_session_setup('zenith_origin');
      BEGIN;
      SELECT pg_replication_origin_xact_setup('0/ABCDEF', '2024-01-02 03:04:05.678901+00');
      INSERT INTO c VALUES (99, 'origin');
      COMMIT;
      BEGIN;
      SELECT pg_replication_origin_xact_setup('0/ABCDF0', '2024-01-02 03:04:06+00');
      INSERT INTO c VALUES (100, 'origin');
      PREPARE TRANSACTION 'with origin';
      COMMIT PREPARED 'with origin';
      SELECT pg_replication_origin_session_reset();
      CREATE DATABASE d1 STRATEGY FILE_COPY;
      CREATE DATABASE d2 STRATEGY WAL_LOG;
      DROP DATABASE d1;
      VACUUM FULL pg_class;
      VACUUM FULL pg_database;
      SELECT pg_switch_wal();
      CHECKPOINT;
      """;

  /**
   * Run after every database was frozen, so that the final visibility map is a mix of states. The
   * two ~2 KB updates do not both fit in their page: the second moves to another all-visible page.
   */
  private static final String FINAL_CHANGES =
      """
      UPDATE t SET v = v + 1 WHERE id = 100;
      DELETE FROM t WHERE id = 400;
      INSERT INTO t VALUES (7000, 1, 'z');
      SELECT id FROM t WHERE id = 1501 FOR KEY SHARE;
      UPDATE u SET pad = 'short' WHERE id = 1001;
      DELETE FROM cf WHERE a = 1;
      UPDATE t SET pad = (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 62) g)
        WHERE id IN (1801, 1802);
      COPY c FROM STDIN;
      6	six
      \\.
      """;

  private static final List<String> VM_TABLES = List.of("t", "u", "c", "cf");

  private PgCluster cluster;
  private List<DecodedRecord> decoded;
  private List<PgRecord> parsed;
  private Map<Lsn, PgWaldumpOracle.Line> waldump;
  private final Map<String, RelTag> tables = new LinkedHashMap<>();
  private final Map<String, Map<Integer, Integer>> serverVm = new LinkedHashMap<>();

  @BeforeAll
  void runWorkloadAndDecode() throws Exception {
    cluster = PgCluster.initdb();
    Path data = cluster.dataDir();
    cluster.run("pg_resetwal", List.of("-x", "1048576", "-m", "2047,2047", "-D", data.toString()));
    cluster.configure(
        Map.of(
            "wal_level", "logical",
            "max_prepared_transactions", "5",
            "track_commit_timestamp", "on",
            "wal_log_hints", "on",
            "wal_keep_size", "1GB",
            "autovacuum", "off",
            "fsync", "off",
            "synchronous_commit", "off"));
    cluster.start();
    cluster.stop();
    Path signal = data.resolve("standby.signal");
    Files.createFile(signal);
    cluster.distribution().giveToPgUser(signal);
    cluster.start();
    cluster.run("pg_ctl", List.of("-D", data.toString(), "-w", "-t", "120", "promote"));

    cluster.sql(WORKLOAD);
    lockUpdatedFromASecondSession();
    cluster.sql("ALTER DATABASE template0 ALLOW_CONNECTIONS true");
    for (String db : List.of("template0", "template1", "d2", "postgres")) {
      cluster.sql(db, "VACUUM FREEZE");
    }
    cluster.sql(FINAL_CHANGES);
    readServerVisibilityMaps();
    cluster.stop();

    decoded = readTimeline2(cluster.walDir());
    parsed = decoded.stream().map(PgRecords::parse).toList();
    waldump = new HashMap<>();
    for (PgWaldumpOracle.Line l :
        PgWaldumpOracle.parse(
            pgWaldump(decoded.getFirst().lsn(), decoded.getLast().end(), cluster.walDir()))) {
      waldump.put(l.lsn(), l);
    }
  }

  @AfterAll
  void closeCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  /**
   * A key-share lock taken while another session's non-key update of the row is still open does not
   * wait: it follows the update chain and locks the new version too (LOCK_UPDATED), and the old
   * version's xmax becomes a MultiXact of both.
   */
  private void lockUpdatedFromASecondSession() throws Exception {
    ProcessBuilder pb =
        cluster
            .distribution()
            .processBuilder(
                "psql",
                List.of(
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    Integer.toString(cluster.port()),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-f",
                    "-"))
            .redirectErrorStream(true);
    Process p = pb.start();
    try (Writer in = new OutputStreamWriter(p.getOutputStream(), StandardCharsets.UTF_8);
        BufferedReader out =
            new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      in.write("BEGIN;\nUPDATE t SET v = v + 7 WHERE id = 20;\nSELECT 'updated';\n");
      in.flush();
      assertThat(out.readLine()).isEqualTo("updated");
      cluster.sql("SELECT id FROM t WHERE id = 20 FOR KEY SHARE");
      in.write("COMMIT;\n");
    } finally {
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        fail("the second psql session did not end");
      }
    }
    assertThat(p.exitValue()).isZero();
  }

  private void readServerVisibilityMaps() {
    for (String table : VM_TABLES) {
      String[] row =
          cluster
              .sql(
                  "SELECT pg_relation_filenode('"
                      + table
                      + "'), (SELECT oid FROM pg_database WHERE datname = current_database())")
              .strip()
              .split("\\|");
      tables.put(
          table,
          new RelTag(
              RelTag.DEFAULT_TABLESPACE, Integer.parseInt(row[1]), Integer.parseInt(row[0])));
      Map<Integer, Integer> bits = new TreeMap<>();
      for (String line :
          cluster
              .sql(
                  "SELECT blkno || ':' || (all_visible::int + 2 * all_frozen::int)"
                      + " FROM pg_visibility_map('"
                      + table
                      + "') ORDER BY blkno")
              .strip()
              .split("\n")) {
        String[] kv = line.split(":");
        bits.put(Integer.parseInt(kv[0]), Integer.parseInt(kv[1]));
      }
      serverVm.put(table, bits);
    }
  }

  private static List<DecodedRecord> readTimeline2(Path walDir) throws IOException {
    List<Path> files =
        WalSegmentFiles.listSegments(walDir).stream()
            .filter(f -> f.getFileName().toString().startsWith("00000002"))
            .toList();
    WalSegmentFiles.Sequence seq = WalSegmentFiles.sequence(files);
    List<WalRecord> records =
        WalStream.records(
                WalSegmentFiles.read(seq, seq.startLsn()),
                seq.startLsn(),
                WalRecordAssembler.Options.DEFAULT.withSegmentSize(seq.segmentSize()))
            .collectList()
            .block();
    assertThat(records).isNotEmpty();
    return records.stream().map(RecordDecoder::decode).toList();
  }

  /** pg_waldump over exactly the records we read, with timestamps printed in UTC. */
  private String pgWaldump(Lsn start, Lsn end, Path walDir) throws Exception {
    Path out = Files.createTempFile("zenith-waldump-", ".txt");
    Path err = Files.createTempFile("zenith-waldump-", ".err");
    try {
      ProcessBuilder pb =
          cluster
              .distribution()
              .processBuilder(
                  "pg_waldump",
                  List.of(
                      "-p",
                      walDir.toString(),
                      "-t",
                      "2",
                      "-s",
                      start.toString(),
                      "-e",
                      end.toString()))
              .redirectOutput(out.toFile())
              .redirectError(err.toFile());
      pb.environment().put("TZ", "UTC");
      Process p = pb.start();
      assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
      assertThat(p.exitValue()).as(Files.readString(err)).isZero();
      return Files.readString(out);
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  private static String kind(PgRecord r) {
    return r.rmgrName() + "/" + r.typeName();
  }

  @Test
  void everyDecodedRecordTypeOccursInTheWorkload() {
    Set<String> typed =
        parsed.stream()
            .filter(r -> !(r instanceof PgRecord.Other))
            .map(PgRecordsRealWalTest::kind)
            .collect(Collectors.toCollection(TreeSet::new));
    assertThat(typed).containsAll(EXPECTED_KINDS);
    // HOT_UPDATE+INIT cannot happen: a HOT update stays on the page that holds the old tuple.
    assertThat(typed).isSubsetOf(new TreeSet<>(concat(EXPECTED_KINDS, "Heap/HOT_UPDATE+INIT")));
    assertThat(PgWaldumpOracle.kinds()).containsAll(EXPECTED_KINDS);
  }

  @Test
  void recordsNotDecodedAreOtherWithPgWaldumpsNames() {
    Set<String> others = new TreeSet<>();
    for (int i = 0; i < parsed.size(); i++) {
      if (parsed.get(i) instanceof PgRecord.Other o) {
        others.add(kind(o));
        assertThat(EXPECTED_KINDS).doesNotContain(kind(o));
      }
    }
    assertThat(others)
        .contains(
            "Btree/INSERT_LEAF",
            "Heap2/NEW_CID",
            "Standby/LOCK",
            "Standby/INVALIDATIONS",
            "Transaction/INVALIDATION");
  }

  @Test
  void typeNamesDescriptionsAndFieldsAgreeWithPgWaldumpForEveryRecord() {
    assertThat(waldump).hasSize(decoded.size());
    List<String> failures = new ArrayList<>();
    Map<String, Integer> checked = new TreeMap<>();
    for (int i = 0; i < decoded.size(); i++) {
      DecodedRecord r = decoded.get(i);
      PgRecord p = parsed.get(i);
      PgWaldumpOracle.Line line = waldump.get(r.lsn());
      if (line == null) {
        failures.add(r.lsn() + ": not in pg_waldump's output");
        continue;
      }
      if (!line.rmgr().equals(p.rmgrName()) || !line.type().equals(p.typeName())) {
        failures.add(
            r.lsn() + ": " + kind(p) + " but pg_waldump says " + line.rmgr() + "/" + line.type());
        continue;
      }
      if (p instanceof PgRecord.Other) {
        continue;
      }
      if (!p.describe().equals(line.desc())) {
        failures.add(
            r.lsn()
                + " "
                + kind(p)
                + ": describe() is\n  "
                + p.describe()
                + "\npg_waldump says\n  "
                + line.desc());
      }
      Map<String, String> expected = PgWaldumpOracle.fields(line);
      expected.putAll(pgBlocks(p, line));
      Map<String, String> actual = RecordFields.of(p);
      if (!actual.equals(expected)) {
        failures.add(
            r.lsn() + " " + kind(p) + ": fields " + actual + "\n  pg_waldump: " + expected);
      }
      checked.merge(kind(p), 1, Integer::sum);
    }
    assertThat(failures.stream().limit(20).toList()).isEmpty();
    assertThat(checked.keySet()).containsAll(EXPECTED_KINDS);
  }

  /** Block references pg_waldump prints, for the kinds whose records expose theirs. */
  private static Map<String, String> pgBlocks(PgRecord p, PgWaldumpOracle.Line line) {
    Map<String, String> out = new LinkedHashMap<>();
    boolean withImage = p instanceof XlogRecord.Fpi;
    if (p instanceof HeapRecord || withImage) {
      for (PgWaldumpOracle.BlockText b : line.blocks()) {
        out.put(
            "blkref" + b.id(),
            b.rel() + " " + b.fork() + " " + b.blk() + (withImage && b.image() ? " FPW" : ""));
      }
    }
    return out;
  }

  @Test
  void visibleRecordsNameTheVmPageThatHoldsTheirHeapBlock() {
    int n = 0;
    for (int i = 0; i < parsed.size(); i++) {
      if (parsed.get(i) instanceof HeapRecord.Visible v) {
        BlockRef vm = decoded.get(i).block(0);
        assertThat(vm.fork()).isEqualTo(ForkNumber.VISIBILITY_MAP);
        assertThat(vm.rel()).isEqualTo(v.rel());
        assertThat(v.visibilityMapChanges())
            .singleElement()
            .satisfies(c -> assertThat(c.vmBlock()).isEqualTo(vm.blockNumber()));
        n++;
      }
    }
    assertThat(n).isPositive();
  }

  /**
   * Replays the visibility-map effects of the WAL the way redo does, byte by byte on simulated VM
   * pages: full-page images of VM pages replace the page; otherwise each record's {@link
   * VisibilityMapChange}s are applied at their {@code pageByteOffset()} with their {@code mask()}.
   * Every VISIBLE record that carries an image of the VM page (PostgreSQL takes it after setting
   * the bits) must equal our page at that point, and at the end every heap block's bits must be
   * what pg_visibility reported.
   */
  @Test
  void visibilityMapChangesReplayToThePagesAndBitsOfTheServer() {
    Set<RelTag> rels = new LinkedHashSet<>(tables.values());
    Map<RelTag, Map<Integer, byte[]>> vm = new HashMap<>();
    Map<String, Integer> applied = new TreeMap<>();
    int imagesCompared = 0;
    for (int i = 0; i < parsed.size(); i++) {
      DecodedRecord r = decoded.get(i);
      PgRecord p = parsed.get(i);
      BlockRef vmImage = null;
      for (BlockRef b : r.blocks()) {
        if (b.fork() == ForkNumber.VISIBILITY_MAP && rels.contains(b.rel()) && b.appliesImage()) {
          vmImage = b;
        }
      }
      if (p instanceof HeapRecord.Visible && vmImage != null) {
        // Redo restores the image and skips visibilitymap_set; our change must give the same map.
        byte[] ours = page(vm, vmImage.rel(), vmImage.blockNumber()).clone();
        for (VisibilityMapChange c : p.visibilityMapChanges()) {
          apply(ours, c);
        }
        byte[] image = FullPageImages.restore(r, vmImage);
        assertThat(Arrays.copyOfRange(ours, VisibilityMapChange.MAP_OFFSET, 8192))
            .as("VM page of %s at %s", vmImage.rel(), r.lsn())
            .isEqualTo(Arrays.copyOfRange(image, VisibilityMapChange.MAP_OFFSET, 8192));
        imagesCompared++;
      }
      for (BlockRef b : r.blocks()) {
        if (b.fork() == ForkNumber.VISIBILITY_MAP && rels.contains(b.rel()) && b.appliesImage()) {
          vm.computeIfAbsent(b.rel(), k -> new HashMap<>())
              .put(b.blockNumber(), FullPageImages.restore(r, b));
        }
      }
      for (VisibilityMapChange c : p.visibilityMapChanges()) {
        if (rels.contains(c.rel())) {
          boolean restored = vmImage != null && p instanceof HeapRecord.Visible;
          if (!restored) {
            apply(page(vm, c.rel(), c.vmBlock()), c);
          }
          applied.merge(c.action() + " " + c.bits(), 1, Integer::sum);
        }
      }
      if (p instanceof SmgrRecord.Truncate t
          && rels.contains(t.rel())
          && t.truncatesVisibilityMap()) {
        truncate(vm.getOrDefault(t.rel(), Map.of()), t.blkno());
      }
    }
    for (String table : VM_TABLES) {
      Map<Integer, byte[]> pages = vm.getOrDefault(tables.get(table), Map.of());
      Map<Integer, Integer> ours = new TreeMap<>();
      for (int blk : serverVm.get(table).keySet()) {
        ours.put(blk, bits(pages, blk));
      }
      assertThat(ours).as("VM of %s", table).isEqualTo(serverVm.get(table));
    }
    // The workload exercised sets, full clears and frozen-only clears, and left mixed states.
    assertThat(applied).containsKeys("SET 3", "CLEAR 3", "CLEAR 2");
    RelTag t = tables.get("t");
    assertThat(
            parsed.stream()
                .anyMatch(
                    r ->
                        r instanceof HeapRecord.Update u
                            && u.rel().equals(t)
                            && u.oldBlock() != u.newBlock()
                            && u.visibilityMapChanges().stream()
                                .anyMatch(c -> c.heapBlock() == u.newBlock())))
        .as("an update moved a row to another all-visible page")
        .isTrue();
    assertThat(
            parsed.stream()
                .anyMatch(
                    r ->
                        r instanceof HeapRecord.MultiInsert m
                            && m.rel().equals(tables.get("c"))
                            && !m.visibilityMapChanges().isEmpty()))
        .as("COPY cleared all-visible")
        .isTrue();
    assertThat(imagesCompared).isPositive();
    assertThat(serverVm.get("t").values()).contains(0, 1, 3);
  }

  private static byte[] page(Map<RelTag, Map<Integer, byte[]>> vm, RelTag rel, int vmBlock) {
    return vm.computeIfAbsent(rel, k -> new HashMap<>())
        .computeIfAbsent(vmBlock, k -> new byte[8192]);
  }

  private static void apply(byte[] page, VisibilityMapChange c) {
    int off = c.pageByteOffset();
    if (c.action() == VisibilityMapChange.Action.SET) {
      page[off] = (byte) (page[off] | c.mask());
    } else {
      page[off] = (byte) (page[off] & ~c.mask());
    }
  }

  /** {@code visibilitymap_prepare_truncate}: bits of heap blocks at or past the new end go. */
  private static void truncate(Map<Integer, byte[]> pages, int nblocks) {
    for (Map.Entry<Integer, byte[]> e : pages.entrySet()) {
      int first = e.getKey() * VisibilityMapChange.HEAPBLOCKS_PER_PAGE;
      for (int b = Math.max(first, nblocks);
          b < first + VisibilityMapChange.HEAPBLOCKS_PER_PAGE;
          b++) {
        apply(
            e.getValue(),
            new VisibilityMapChange(
                new RelTag(0, 0, 0),
                b,
                VisibilityMapChange.Action.CLEAR,
                VisibilityMapChange.VALID_BITS));
      }
    }
  }

  /** A heap block's two bits, read with visibilitymap.c's arithmetic written out here. */
  private static int bits(Map<Integer, byte[]> pages, int heapBlock) {
    byte[] page = pages.get(heapBlock / 32672);
    if (page == null) {
      return 0;
    }
    int b = page[24 + (heapBlock % 32672) / 4] & 0xFF;
    return (b >> (2 * (heapBlock % 4))) & 3;
  }

  @Test
  void truncatedMainDataIsBadRecordContentNamingTypeAndLsn() {
    Map<String, DecodedRecord> samples = samples(3);
    assertThat(samples.keySet().stream().map(k -> k.substring(0, k.lastIndexOf('#'))))
        .containsAll(EXPECTED_KINDS);
    for (Map.Entry<String, DecodedRecord> e : samples.entrySet()) {
      DecodedRecord r = e.getValue();
      String kind = e.getKey().substring(0, e.getKey().lastIndexOf('#'));
      for (int len = 0; len < r.mainDataLength(); len++) {
        DecodedRecord cut =
            new DecodedRecord(
                r.raw(), r.blocks(), r.mainDataOffset(), len, r.origin(), r.toplevelXid());
        boolean mustFail = len == 0 || len < minimumLength(kind, r);
        try {
          PgRecord p = PgRecords.parse(cut);
          assertThat(mustFail).as("%s cut to %d bytes parsed as %s", kind, len, p).isFalse();
          assertThat(kind(p)).isEqualTo(kind);
          p.describe();
          p.visibilityMapChanges();
        } catch (WalFormatException x) {
          assertThat(x.kind()).isEqualTo(WalFormatException.Kind.BAD_RECORD_CONTENT);
          assertThat(x.lsn()).isEqualTo(r.lsn());
          assertThat(x.getMessage())
              .contains(kind.replace("+INIT", ""))
              .contains(r.lsn().toString());
        }
      }
    }
  }

  @Test
  void corruptedMainDataParsesOrFailsAsBadRecordContentOnly() {
    Random random = new Random(20240501);
    int failures = 0;
    for (DecodedRecord r : samples(5).values()) {
      if (r.mainDataLength() == 0) {
        continue;
      }
      for (int round = 0; round < 300; round++) {
        byte[] bytes = r.raw().array().clone();
        int flips = 1 + random.nextInt(4);
        for (int f = 0; f < flips; f++) {
          int at = r.mainDataOffset() + random.nextInt(r.mainDataLength());
          bytes[at] = (byte) (random.nextBoolean() ? random.nextInt(256) : 0xFF);
        }
        WalRecord raw = new WalRecord(r.lsn(), r.end(), r.raw().header(), bytes, r.raw().offset());
        DecodedRecord corrupt =
            new DecodedRecord(
                raw,
                r.blocks(),
                r.mainDataOffset(),
                r.mainDataLength(),
                r.origin(),
                r.toplevelXid());
        try {
          PgRecord p = PgRecords.parse(corrupt);
          p.describe();
          p.visibilityMapChanges();
        } catch (WalFormatException x) {
          assertThat(x.kind()).isEqualTo(WalFormatException.Kind.BAD_RECORD_CONTENT);
          assertThat(x.lsn()).isEqualTo(r.lsn());
          failures++;
        }
      }
    }
    assertThat(failures).as("corruptions detected").isPositive();
  }

  /**
   * The main data length below which a kind must be rejected: everything PostgreSQL writes is
   * needed, except the state records after a PREPARE's arrays and the old tuple (after its header)
   * that logical decoding gets from DELETE and UPDATE records.
   */
  private static int minimumLength(String kind, DecodedRecord r) {
    int flags = r.mainDataLength() >= 8 ? r.mainData().get(7) & 0xFF : 0;
    return switch (kind) {
      case "Transaction/PREPARE" -> 72;
      case "Heap/DELETE" -> (flags & 0x06) != 0 ? 8 + 5 : 8;
      case "Heap/UPDATE", "Heap/UPDATE+INIT", "Heap/HOT_UPDATE" ->
          (flags & 0x0C) != 0 ? 14 + 5 : 14;
      default -> r.mainDataLength();
    };
  }

  /** Up to {@code perKind} records of each decoded kind, keyed {@code rmgr/type#n}. */
  private Map<String, DecodedRecord> samples(int perKind) {
    Map<String, DecodedRecord> out = new LinkedHashMap<>();
    Map<String, Integer> count = new HashMap<>();
    for (int i = 0; i < parsed.size(); i++) {
      PgRecord p = parsed.get(i);
      if (p instanceof PgRecord.Other) {
        continue;
      }
      int n = count.merge(kind(p), 1, Integer::sum);
      if (n <= perKind) {
        out.put(kind(p) + "#" + n, decoded.get(i));
      }
    }
    return out;
  }

  private static List<String> concat(List<String> list, String more) {
    List<String> out = new ArrayList<>(list);
    out.add(more);
    return out;
  }
}
