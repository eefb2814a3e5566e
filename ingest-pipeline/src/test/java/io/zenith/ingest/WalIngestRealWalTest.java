package io.zenith.ingest;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.CheckPointData;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.ingest.pg.PgControl;
import io.zenith.layer.Key;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
import io.zenith.layer.TimelineView;
import io.zenith.layer.Value;
import io.zenith.layer.Version;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalSegmentFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;

/**
 * Imports a freshly initdb'd PostgreSQL 15 cluster, runs a workload on the same cluster, ingests
 * all of its WAL after the import point through the {@link IngestPipeline}, and checks that the
 * layer store then describes exactly the files the cluster itself has after a clean shutdown:
 * databases, relation forks and sizes, relation maps, CLOG and multixact SLRUs, two-phase state
 * files and the final checkpoint. (Page contents that need WAL redo are checked where redo lives.)
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WalIngestRealWalTest {
  private static final TenantId TENANT = TenantId.generate();
  private static final TimelineId MAIN = TimelineId.generate();

  @TempDir static Path storeDir;
  private PgCluster cluster;
  private LayerStore store;
  private Timeline timeline;
  private DatadirImport.Result imported;
  private final AtomicLong maxFrozenSeen = new AtomicLong();

  @BeforeAll
  void ingestAWorkload() throws Exception {
    cluster = PgCluster.initdb("--data-checksums", "--wal-segsize=16");
    cluster.configure(
        Map.of(
            "max_prepared_transactions", "5",
            "fsync", "off",
            "synchronous_commit", "off",
            "wal_keep_size", "2GB",
            "max_wal_size", "2GB",
            "checkpoint_timeout", "1h",
            "autovacuum", "off"));
    store = LayerStore.open(storeDir, LayerStoreConfig.DEFAULT.withCheckpointDistance(2 << 20));
    store.createTenant(TENANT);
    imported = DatadirImport.run(store, TENANT, MAIN, cluster.dataDir());
    timeline = imported.timeline();
    assertThat(imported.relations()).isGreaterThan(100);
    assertThat(imported.lsn()).isEqualTo(timeline.diskConsistentLsn());

    cluster.start();
    cluster.sql(WORKLOAD);
    cluster.sql("CREATE DATABASE copied TEMPLATE template1 STRATEGY FILE_COPY");
    cluster.sql("CREATE DATABASE logged TEMPLATE template1 STRATEGY WAL_LOG");
    cluster.sql(
        "logged",
        "CREATE TABLE l(i int primary key); INSERT INTO l SELECT generate_series(1, 5000)");
    cluster.sql("CREATE DATABASE doomed; DROP DATABASE doomed");
    cluster.sql(MANY_XACTS);
    cluster.sql("CALL many_xacts(40000)");
    cluster.sql(PREPARED);
    cluster.stop();

    WalIngest ingest = new WalIngest(timeline, JavaOnlyPages::page);
    try (IngestPipeline pipeline =
        new IngestPipeline(
            timeline, ingest, IngestPipeline.Options.DEFAULT, new SimpleMeterRegistry())) {
      pipeline
          .run(
              walFrom(imported.lsn()),
              16 << 20,
              imported.systemId(),
              (ingested, disk) -> maxFrozenSeen.accumulateAndGet(timeline.frozenCount(), Math::max))
          .block(Duration.ofMinutes(5));
    }
  }

  /** The cluster's WAL segments from the one holding {@code from}, read from {@code from}. */
  private Flux<ByteBuffer> walFrom(Lsn from) throws IOException {
    return WalSegmentFiles.read(
        WalSegmentFiles.sequence(WalSegmentFiles.consecutiveFrom(cluster.walDir(), from, 16 << 20)),
        from);
  }

  @AfterAll
  void close() {
    if (store != null) {
      store.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  private static final String WORKLOAD =
      """
      CREATE TABLE t(id int PRIMARY KEY, v int, pad text);
      INSERT INTO t SELECT g, g, repeat('x', 200) FROM generate_series(1, 20000) g;
      CREATE INDEX t_v ON t(v);
      UPDATE t SET v = v + 1 WHERE id % 7 = 0;
      DELETE FROM t WHERE id > 15000;
      VACUUM t;
      CREATE TABLE gone(i int); INSERT INTO gone VALUES (1); DROP TABLE gone;
      CREATE TABLE emptied(i int); INSERT INTO emptied SELECT generate_series(1, 1000); TRUNCATE emptied;
      BEGIN; CREATE TABLE rolled_back(i int); INSERT INTO rolled_back VALUES (1); ROLLBACK;
      BEGIN; INSERT INTO t VALUES (30001, 1, 'a'); SAVEPOINT s; INSERT INTO t VALUES (30002, 2, 'b');
        ROLLBACK TO s; INSERT INTO t VALUES (30003, 3, 'c'); COMMIT;
      CREATE TABLE shrink(i int); INSERT INTO shrink SELECT generate_series(1, 50000);
      DELETE FROM shrink WHERE i > 100; VACUUM shrink;
      CREATE TABLE m(id int PRIMARY KEY, v int); INSERT INTO m VALUES (1, 0), (2, 0);
      BEGIN; SELECT * FROM m WHERE id = 1 FOR KEY SHARE; SAVEPOINT a; UPDATE m SET v = 1 WHERE id = 1; COMMIT;
      BEGIN; SELECT * FROM m WHERE id = 2 FOR KEY SHARE; SAVEPOINT a; UPDATE m SET v = 2 WHERE id = 2; COMMIT;
      VACUUM FULL pg_class;
      VACUUM FREEZE t;
      CHECKPOINT;
      """;

  private static final String MANY_XACTS =
      """
      CREATE PROCEDURE many_xacts(n int) LANGUAGE plpgsql AS $$
      BEGIN
        FOR i IN 1..n LOOP
          PERFORM txid_current();
          COMMIT;
        END LOOP;
      END $$;
      """;

  private static final String PREPARED =
      """
      BEGIN; INSERT INTO t VALUES (40001, 1, 'p'); PREPARE TRANSACTION 'kept';
      BEGIN; INSERT INTO t VALUES (40002, 1, 'q'); PREPARE TRANSACTION 'committed';
      COMMIT PREPARED 'committed';
      BEGIN; CREATE TABLE in_2pc(i int); PREPARE TRANSACTION 'aborted';
      ROLLBACK PREPARED 'aborted';
      """;

  private Lsn end() {
    return timeline.lastRecordLsn();
  }

  @Test
  void theWholeWalWasIngestedAndMadeDurable() {
    assertThat(end()).isGreaterThan(imported.lsn().plus(20 << 20));
    assertThat(timeline.diskConsistentLsn()).isEqualTo(end());
    assertThat(maxFrozenSeen.get()).as("frozen layers stay bounded").isLessThanOrEqualTo(3);
  }

  @Test
  void finalCheckpointEqualsTheClustersControlFile() throws IOException {
    PgControl control =
        PgControl.parse(Files.readAllBytes(cluster.dataDir().resolve("global/pg_control")));
    byte[] ours = Catalog.image(timeline, KeySpace.CHECKPOINT, end()).orElseThrow();
    assertThat(CheckPointData.decode(ours).encode()).isEqualTo(control.checkPointCopy().encode());
    assertThat(Lsn.of(control.checkPoint())).isLessThan(end());
  }

  @Test
  void databasesAndRelationMapsMatch() throws IOException {
    List<Integer> dirs = new ArrayList<>();
    try (Stream<Path> s = Files.list(cluster.dataDir().resolve("base"))) {
      s.forEach(p -> dirs.add(Integer.parseInt(p.getFileName().toString())));
    }
    assertThat(Catalog.databases(timeline, end()))
        .extracting(Catalog.Database::dbOid)
        .containsExactlyInAnyOrderElementsOf(dirs);
    assertThat(Catalog.image(timeline, KeySpace.relmap(1664, 0), end()).orElseThrow())
        .isEqualTo(Files.readAllBytes(cluster.dataDir().resolve("global/pg_filenode.map")));
    for (int db : dirs) {
      assertThat(Catalog.image(timeline, KeySpace.relmap(1663, db), end()).orElseThrow())
          .as("relmap of database %d", db)
          .isEqualTo(
              Files.readAllBytes(cluster.dataDir().resolve("base/" + db + "/pg_filenode.map")));
    }
  }

  private static final Pattern REL_FILE =
      Pattern.compile("(\\d+)(?:_(fsm|vm|init))?(?:\\.(\\d+))?");

  /** Relation forks and block counts of a directory, keyed "rel/fork". */
  private static Map<String, Integer> forksIn(Path dir) throws IOException {
    Map<String, Integer> out = new TreeMap<>();
    try (Stream<Path> s = Files.list(dir)) {
      for (Path f : s.toList()) {
        Matcher m = REL_FILE.matcher(f.getFileName().toString());
        if (!m.matches()) {
          continue;
        }
        String fork = m.group(2) == null ? "main" : m.group(2);
        int segno = m.group(3) == null ? 0 : Integer.parseInt(m.group(3));
        int blocks = (int) (Files.size(f) / WalFormat.BLCKSZ) + segno * PageLayout.RELSEG_SIZE;
        out.merge(m.group(1) + "/" + fork, blocks, Math::max);
      }
    }
    return out;
  }

  @Test
  void relationForksAndSizesMatchExceptTheUnloggedFreeSpaceMap() throws IOException {
    List<String> mismatches = new ArrayList<>();
    Map<String, Path> dirs = new TreeMap<>();
    dirs.put("1664/0", cluster.dataDir().resolve("global"));
    try (Stream<Path> s = Files.list(cluster.dataDir().resolve("base"))) {
      s.forEach(p -> dirs.put("1663/" + p.getFileName(), p));
    }
    int compared = 0;
    for (Map.Entry<String, Path> d : dirs.entrySet()) {
      String[] sd = d.getKey().split("/");
      int spc = Integer.parseInt(sd[0]);
      int db = Integer.parseInt(sd[1]);
      Map<String, Integer> theirs = forksIn(d.getValue());
      Map<String, Integer> ours = new TreeMap<>();
      for (Catalog.RelFork rf : Catalog.relationsOf(timeline, spc, db, end())) {
        ours.put(
            Integer.toUnsignedString(rf.rel().relNumber()) + "/" + rf.fork().pgName(), rf.blocks());
      }
      // The FSM is never WAL-logged: PostgreSQL creates and extends it without WAL records.
      theirs.keySet().removeIf(k -> k.endsWith("/fsm"));
      ours.keySet().removeIf(k -> k.endsWith("/fsm"));
      for (String k : theirs.keySet()) {
        Integer o = ours.get(k);
        int t = theirs.get(k);
        if (o == null) {
          mismatches.add(d.getKey() + "/" + k + ": missing (they have " + t + " blocks)");
        } else if (o != t && !trailingZeroPages(d.getValue(), k, o, t)) {
          mismatches.add(d.getKey() + "/" + k + ": " + o + " blocks, they have " + t);
        }
        compared++;
      }
      for (String k : ours.keySet()) {
        if (!theirs.containsKey(k)) {
          mismatches.add(d.getKey() + "/" + k + ": we have it, they do not");
        }
      }
    }
    assertThat(mismatches).isEmpty();
    assertThat(compared).isGreaterThan(300);
  }

  /** PostgreSQL extends relations in bulk without WAL; those new pages stay zero until used. */
  private static boolean trailingZeroPages(Path dir, String relFork, int ours, int theirs)
      throws IOException {
    if (ours > theirs) {
      return false;
    }
    String[] p = relFork.split("/");
    String name = p[0] + (p[1].equals("main") ? "" : "_" + p[1]);
    byte[] content = Files.readAllBytes(dir.resolve(name));
    byte[] zero = new byte[WalFormat.BLCKSZ];
    for (int b = ours; b < theirs; b++) {
      if (!Arrays.equals(
          content, b * WalFormat.BLCKSZ, (b + 1) * WalFormat.BLCKSZ, zero, 0, WalFormat.BLCKSZ)) {
        return false;
      }
    }
    return true;
  }

  @Test
  void slruSegmentsMatchByteForByte() throws IOException {
    int pages = 0;
    for (KeySpace.Slru slru : KeySpace.Slru.values()) {
      Path dir = cluster.dataDir().resolve(slru.dir());
      Map<Integer, byte[]> theirs = new TreeMap<>();
      try (Stream<Path> s = Files.list(dir)) {
        for (Path f : s.toList()) {
          theirs.put(Integer.parseInt(f.getFileName().toString(), 16), Files.readAllBytes(f));
        }
      }
      List<int[]> ours = Catalog.slruSegments(timeline, slru, end());
      assertThat(ours)
          .extracting(s -> s[0])
          .as(slru.dir())
          .containsExactlyElementsOf(theirs.keySet());
      for (int[] seg : ours) {
        byte[] file = theirs.get(seg[0]);
        assertThat(seg[1] * WalFormat.BLCKSZ)
            .as("%s/%04X size", slru.dir(), seg[0])
            .isEqualTo(file.length);
        for (int blk = 0; blk < seg[1]; blk++) {
          byte[] page = JavaOnlyPages.page(timeline, KeySpace.slruBlock(slru, seg[0], blk), end());
          assertThat(page)
              .as("%s/%04X page %d", slru.dir(), seg[0], blk)
              .isEqualTo(
                  Arrays.copyOfRange(file, blk * WalFormat.BLCKSZ, (blk + 1) * WalFormat.BLCKSZ));
          pages++;
        }
      }
    }
    assertThat(pages).as("CLOG crossed a page, multixacts exist").isGreaterThanOrEqualTo(4);
  }

  @Test
  void twoPhaseStateFilesMatch() throws IOException {
    Map<Integer, byte[]> theirs = new TreeMap<>();
    try (Stream<Path> s = Files.list(cluster.dataDir().resolve("pg_twophase"))) {
      for (Path f : s.toList()) {
        theirs.put(Integer.parseUnsignedInt(f.getFileName().toString(), 16), Files.readAllBytes(f));
      }
    }
    assertThat(theirs).hasSize(1);
    List<Integer> ours = Catalog.twoPhaseXids(timeline, end());
    assertThat(ours).containsExactlyElementsOf(theirs.keySet());
    for (int xid : ours) {
      assertThat(Catalog.image(timeline, KeySpace.twoPhase(xid), end()).orElseThrow())
          .isEqualTo(theirs.get(xid));
    }
  }

  @Test
  void droppedAndRolledBackRelationsAreGoneButVisibleInThePast() {
    List<Catalog.RelFork> before =
        Catalog.relations(timeline, KeySpace.ALL_RELATIONS, imported.lsn());
    List<Catalog.RelFork> after = Catalog.relations(timeline, KeySpace.ALL_RELATIONS, end());
    assertThat(before).hasSizeGreaterThan(100);
    // Reading in the past is unaffected by later drops: the import's relations are all there.
    assertThat(before)
        .allSatisfy(
            rf ->
                assertThat(Catalog.relSize(timeline, rf.rel(), rf.fork(), imported.lsn()))
                    .hasValue(rf.blocks()));
    assertThat(after.size()).isNotEqualTo(before.size());
  }

  /**
   * Reconstructs pages whose history holds only images and patches (SLRUs, relation maps, template
   * databases before they are changed by WAL): no WAL redo needed.
   */
  static final class JavaOnlyPages {
    static byte[] page(TimelineView t, Key key, Lsn lsn) {
      List<Version> history = t.history(key, lsn);
      byte[] page = new byte[WalFormat.BLCKSZ];
      for (int i = history.size() - 1; i >= 0; i--) {
        Value v = history.get(i).value();
        switch (v) {
          case Value.Image img -> page = img.bytes().clone();
          case Value.Tombstone ts -> page = new byte[WalFormat.BLCKSZ];
          case Value.Patch p -> {
            if (p.initPageIfNew() && isZero(page)) {
              page = PageLayout.emptyPage();
            }
            p.applyTo(page);
          }
          case Value.WalRecord w ->
              throw new IllegalStateException(
                  "page " + key + " needs WAL redo at " + history.get(i).lsn());
        }
      }
      return page;
    }

    private static boolean isZero(byte[] p) {
      for (byte b : p) {
        if (b != 0) {
          return false;
        }
      }
      return true;
    }
  }
}
