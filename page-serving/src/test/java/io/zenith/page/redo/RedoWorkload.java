package io.zenith.page.redo;

import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.ingest.wal.ResourceManager;
import io.zenith.ingest.wal.records.PgRecord;
import io.zenith.ingest.wal.records.PgRecords;
import io.zenith.ingest.wal.records.SmgrRecord;
import io.zenith.ingest.wal.records.VisibilityMapChange;
import io.zenith.page.PageKind;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentFiles;
import io.zenith.wal.WalStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * WAL and pages of a real PostgreSQL 15 cluster (checksums on, {@code wal_log_hints=on}, {@code
 * full_page_writes=on}) that ran a workload over heap, TOAST, btree, hash, GIN (with and without
 * the pending list), GiST, SP-GiST, BRIN, sequences and an unlogged table, with updates, deletes,
 * vacuum (pruning, freezing, truncation, index page deletion), upserts, subtransactions and several
 * commands per transaction; then stopped cleanly so that its relation files hold the final pages.
 *
 * <p>Every record is indexed by the blocks it touches: explicitly (block references) or, for heap
 * records, implicitly (the visibility-map bits they clear). A block's history starts at its last
 * full-page image or will-init reference; a relation truncation below the block ends it.
 *
 * <p>Made once per JVM (a few seconds) and shared by the test classes; the cluster's files are
 * deleted when the JVM exits. Not thread-safe while being made; read-only afterwards.
 */
final class RedoWorkload {

  /** A relation of the cluster: its files, what its pages hold, whether WAL covers its data. */
  record Relation(String name, RelTag rel, PageKind kind, boolean unlogged) {}

  record BlockKey(RelTag rel, ForkNumber fork, int block) {}

  /** A block whose history WAL covers, with the compute's final page. */
  record Target(
      Relation relation, ForkNumber fork, int block, byte[] compute, List<DecodedRecord> history) {
    PageKind kind() {
      return fork == ForkNumber.VISIBILITY_MAP ? PageKind.VISIBILITY_MAP : relation.kind();
    }

    RedoRequest request() {
      return RedoRequest.ofDecoded(relation.rel(), fork, block, null, history);
    }

    /** True when {@code page} equals the compute's page after masking. */
    boolean matches(byte[] page) {
      return io.zenith.page.PageMasking.equalMasked(page, compute, kind(), fork);
    }

    @Override
    public String toString() {
      return relation.name()
          + " "
          + fork.pgName()
          + " blk "
          + block
          + " ("
          + history.size()
          + " records)";
    }
  }

  /** One block's records from its last image or init on (indexes into {@link #records}). */
  static final class History {
    boolean started;
    final List<Integer> records = new ArrayList<>();

    void restart() {
      started = true;
      records.clear();
    }

    void reset() {
      started = false;
      records.clear();
    }

    void add(int index) {
      if (records.isEmpty() || records.getLast() != index) {
        records.add(index);
      }
    }
  }

  private static final String WORKLOAD =
      """
      CREATE TABLE h (id int PRIMARY KEY, k int, v text, tags int[], doc tsvector, pt point,
                      pad text) WITH (fillfactor = 80, autovacuum_enabled = off);
      CREATE INDEX h_k_hash ON h USING hash (k);
      CREATE INDEX h_tags_gin ON h USING gin (tags) WITH (fastupdate = off);
      CREATE INDEX h_doc_gin ON h USING gin (doc) WITH (fastupdate = on, gin_pending_list_limit = 64);
      CREATE INDEX h_pt_gist ON h USING gist (pt);
      CREATE INDEX h_pt_spgist ON h USING spgist (pt);
      CREATE INDEX h_v_spgist ON h USING spgist (v);
      CREATE INDEX h_id_brin ON h USING brin (id) WITH (pages_per_range = 2);
      CREATE SEQUENCE s;
      CREATE SEQUENCE s2 INCREMENT BY 7;
      CREATE TABLE big (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = off);
      CREATE UNLOGGED TABLE ul (id int PRIMARY KEY, v text);
      INSERT INTO h SELECT g, g % 97, md5(g::text), ARRAY[g % 10, g % 13, g % 17],
          to_tsvector('simple', 'w' || (g % 50) || ' x' || (g % 23)), point(g % 71, g % 53),
          repeat('p', g % 40)
        FROM generate_series(1, 3000) g;
      INSERT INTO big SELECT g, (SELECT string_agg(md5((g * 1000 + i)::text), '')
                                  FROM generate_series(1, 120) i)
        FROM generate_series(1, 40) g;
      INSERT INTO ul SELECT g, md5(g::text) FROM generate_series(1, 500) g;
      SELECT count(nextval('s')) FROM generate_series(1, 75);
      SELECT count(nextval('s2')) FROM generate_series(1, 10);
      CHECKPOINT;
      UPDATE h SET k = k + 1 WHERE id % 5 = 0;
      UPDATE h SET pad = pad || 'u' WHERE id % 7 = 0;
      DELETE FROM h WHERE id % 11 = 0;
      BEGIN;
      INSERT INTO h (id, k, v, tags, pt) VALUES (100001, 1, 'a', '{1}', point(1, 1));
      UPDATE h SET v = 'b' WHERE id = 100001;
      INSERT INTO h (id, k, v, tags, pt) VALUES (100002, 2, 'c', '{2}', point(2, 2));
      SAVEPOINT sp;
      INSERT INTO h (id, k, v) VALUES (100003, 3, 'd');
      ROLLBACK TO sp;
      DELETE FROM h WHERE id = 100002;
      INSERT INTO h (id, k, v) VALUES (100004, 4, 'e');
      COMMIT;
      INSERT INTO h (id, k, v) VALUES (100004, 5, 'f'), (100005, 6, 'g')
        ON CONFLICT (id) DO UPDATE SET k = excluded.k;
      INSERT INTO h (id, k, v) VALUES (100005, 7, 'h') ON CONFLICT DO NOTHING;
      SELECT count(*) FROM h WHERE k = 3;
      SELECT count(*) FROM h WHERE doc @@ 'w7'::tsquery;
      VACUUM h;
      VACUUM big;
      SELECT count(nextval('s')) FROM generate_series(1, 40);
      INSERT INTO h SELECT g, g % 97, md5(g::text), ARRAY[g % 10],
          to_tsvector('simple', 'w' || (g % 50)), point(g % 71, g % 53), 'q'
        FROM generate_series(3001, 6000) g;
      DELETE FROM h WHERE id BETWEEN 1000 AND 2600;
      DELETE FROM h WHERE id > 5200 AND id < 100000;
      DELETE FROM big WHERE id > 30;
      VACUUM h;
      VACUUM big;
      SELECT brin_summarize_new_values('h_id_brin');
      VACUUM FREEZE h;
      UPDATE h SET k = k + 1 WHERE id % 13 = 0;
      DELETE FROM h WHERE id % 17 = 0;
      SELECT count(*) FROM (SELECT id FROM h WHERE id % 19 = 0 FOR UPDATE) x;
      SELECT count(*) FROM (SELECT id FROM h WHERE id % 23 = 0 FOR KEY SHARE) x;
      CHECKPOINT;
      UPDATE h SET v = v || 'z' WHERE id % 29 = 0;
      INSERT INTO ul SELECT g, md5(g::text) FROM generate_series(501, 700) g;
      ALTER SEQUENCE s RESTART WITH 1000;
      SELECT nextval('s');
      SELECT count(nextval('s2')) FROM generate_series(1, 50);
      INSERT INTO h SELECT g, g % 97, md5(g::text), ARRAY[g % 10], NULL, point(g % 71, g % 53), 'r'
        FROM generate_series(6001, 7000) g;
      UPDATE big SET payload = payload || 'x' WHERE id % 3 = 0;
      VACUUM h;
      SELECT count(*) FROM h WHERE k = 4;
      """;

  private static final String RELATIONS =
      """
      SELECT concat_ws('|', c.relname, pg_relation_filenode(c.oid), c.relkind::text,
                       coalesce(am.amname, ''), c.relpersistence::text, c.relisshared)
        FROM pg_class c LEFT JOIN pg_am am ON am.oid = c.relam
       WHERE c.relkind IN ('r', 'i', 'S', 't', 'm') AND c.relpersistence <> 't'
         AND pg_relation_filenode(c.oid) IS NOT NULL
       ORDER BY c.oid
      """;

  private static RedoWorkload instance;

  final PgCluster cluster;
  final List<DecodedRecord> records;
  final Map<BlockKey, History> histories;
  final List<Relation> relations;
  final int databaseOid;

  private RedoWorkload(
      PgCluster cluster,
      List<DecodedRecord> records,
      Map<BlockKey, History> histories,
      List<Relation> relations,
      int databaseOid) {
    this.cluster = cluster;
    this.records = records;
    this.histories = histories;
    this.relations = relations;
    this.databaseOid = databaseOid;
  }

  static synchronized RedoWorkload get() {
    if (instance == null) {
      instance = create();
      Runtime.getRuntime().addShutdownHook(new Thread(instance.cluster::close));
    }
    return instance;
  }

  /**
   * A started cluster whose WAL the redo tests replay: data checksums and {@code wal_log_hints} as
   * the redo processes' scratch cluster, no autovacuum, no checkpoint and no WAL removed meanwhile.
   */
  static PgCluster startCluster() {
    PgCluster c = PgCluster.initdb("--data-checksums");
    try {
      Map<String, String> s = new LinkedHashMap<>();
      s.put("wal_level", "replica");
      s.put("wal_log_hints", "on");
      s.put("full_page_writes", "on");
      s.put("autovacuum", "off");
      s.put("fsync", "off");
      s.put("max_wal_size", "4GB");
      s.put("checkpoint_timeout", "1d");
      s.put("wal_keep_size", "4GB");
      return c.configure(s).start();
    } catch (RuntimeException | Error e) {
      c.close();
      throw e;
    }
  }

  private static RedoWorkload create() {
    PgCluster c = startCluster();
    try {
      c.sql(WORKLOAD);
      int db =
          Integer.parseInt(c.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'").strip());
      List<Relation> rels = new ArrayList<>();
      for (String line : c.sql(RELATIONS).strip().split("\n")) {
        String[] f = line.split("\\|", -1);
        int filenode = Integer.parseInt(f[1]);
        boolean shared = f[5].equals("t");
        RelTag rel =
            shared
                ? new RelTag(RelTag.GLOBAL_TABLESPACE, 0, filenode)
                : new RelTag(RelTag.DEFAULT_TABLESPACE, db, filenode);
        rels.add(new Relation(f[0], rel, kindOf(f[2], f[3]), f[4].equals("u")));
      }
      c.stop();
      List<DecodedRecord> recs = readWal(c.walDir());
      return new RedoWorkload(c, recs, index(recs), List.copyOf(rels), db);
    } catch (IOException e) {
      c.close();
      throw new UncheckedIOException(e);
    } catch (RuntimeException e) {
      c.close();
      throw e;
    }
  }

  private static PageKind kindOf(String relkind, String am) {
    if (relkind.equals("S")) {
      return PageKind.SEQUENCE;
    }
    if (!relkind.equals("i")) {
      return PageKind.HEAP;
    }
    return switch (am) {
      case "btree" -> PageKind.BTREE;
      case "hash" -> PageKind.HASH;
      case "gin" -> PageKind.GIN;
      case "gist" -> PageKind.GIST;
      case "spgist" -> PageKind.SPGIST;
      case "brin" -> PageKind.BRIN;
      default -> throw new IllegalStateException("unexpected index access method " + am);
    };
  }

  private static List<DecodedRecord> readWal(Path walDir) throws IOException {
    WalSegmentFiles.Sequence seq = WalSegmentFiles.sequence(WalSegmentFiles.listSegments(walDir));
    List<WalRecord> recs =
        WalStream.records(
                WalSegmentFiles.read(seq, seq.startLsn()),
                seq.startLsn(),
                WalRecordAssembler.Options.DEFAULT.withSegmentSize(seq.segmentSize()))
            .collectList()
            .block();
    return recs.stream().map(RecordDecoder::decode).toList();
  }

  private static Map<BlockKey, History> index(List<DecodedRecord> recs) {
    Map<BlockKey, History> h = new HashMap<>();
    for (int i = 0; i < recs.size(); i++) {
      DecodedRecord r = recs.get(i);
      for (BlockRef b : r.blocks()) {
        History hist =
            h.computeIfAbsent(new BlockKey(b.rel(), b.fork(), b.blockNumber()), k -> new History());
        if (b.appliesImage() || b.willInit()) {
          hist.restart();
        }
        hist.add(i);
      }
      ResourceManager rm = r.rmgr();
      if (rm == ResourceManager.HEAP
          || rm == ResourceManager.HEAP2
          || rm == ResourceManager.STORAGE) {
        PgRecord parsed = PgRecords.parse(r);
        for (VisibilityMapChange c : parsed.visibilityMapChanges()) {
          if (c.action() == VisibilityMapChange.Action.CLEAR) {
            h.computeIfAbsent(
                    new BlockKey(c.rel(), ForkNumber.VISIBILITY_MAP, c.vmBlock()),
                    k -> new History())
                .add(i);
          }
        }
        if (parsed instanceof SmgrRecord.Truncate t) {
          long vmBlocks =
              (Integer.toUnsignedLong(t.blkno()) + VisibilityMapChange.HEAPBLOCKS_PER_PAGE - 1)
                  / VisibilityMapChange.HEAPBLOCKS_PER_PAGE;
          h.forEach(
              (k, hist) -> {
                if (!k.rel().equals(t.rel())) {
                  return;
                }
                long b = Integer.toUnsignedLong(k.block());
                if ((k.fork() == ForkNumber.MAIN && t.truncatesHeap() && b >= t.blkno())
                    || (k.fork() == ForkNumber.VISIBILITY_MAP
                        && t.truncatesVisibilityMap()
                        && b >= vmBlocks)) {
                  hist.reset();
                }
              });
        }
      }
    }
    return h;
  }

  /**
   * The forks compared for a relation: main and vm, or only init for an unlogged relation (its main
   * fork is not WAL-logged). FSM forks are not WAL-logged either.
   */
  static List<ForkNumber> comparedForks(Relation r) {
    return r.unlogged()
        ? List.of(ForkNumber.INIT)
        : List.of(ForkNumber.MAIN, ForkNumber.VISIBILITY_MAP);
  }

  private List<Target> targets;

  /** Every block of a compared fork whose history WAL covers. */
  synchronized List<Target> targets() {
    if (targets == null) {
      List<Target> out = new ArrayList<>();
      for (Relation r : relations) {
        for (ForkNumber fork : comparedForks(r)) {
          List<byte[]> pages = pages(r.rel(), fork);
          for (int b = 0; b < pages.size(); b++) {
            int blk = b;
            history(r.rel(), fork, b)
                .ifPresent(h -> out.add(new Target(r, fork, blk, pages.get(blk), h)));
          }
        }
      }
      targets = List.copyOf(out);
    }
    return targets;
  }

  /** The first target satisfying {@code p}. */
  Target target(java.util.function.Predicate<Target> p) {
    return targets().stream().filter(p).findFirst().orElseThrow();
  }

  /** The records of a block's history, or empty if WAL does not cover the block from an image. */
  Optional<List<DecodedRecord>> history(RelTag rel, ForkNumber fork, int block) {
    History h = histories.get(new BlockKey(rel, fork, block));
    if (h == null || !h.started) {
      return Optional.empty();
    }
    return Optional.of(h.records.stream().map(records::get).toList());
  }

  /** The relation's file for a fork (first segment), under the stopped cluster's data dir. */
  Path file(RelTag rel, ForkNumber fork) {
    String name =
        Integer.toUnsignedString(rel.relNumber())
            + (fork == ForkNumber.MAIN ? "" : "_" + fork.pgName());
    Path dir =
        rel.spcOid() == RelTag.GLOBAL_TABLESPACE
            ? cluster.dataDir().resolve("global")
            : cluster.dataDir().resolve("base").resolve(Integer.toUnsignedString(rel.dbOid()));
    return dir.resolve(name);
  }

  /** All pages of a fork as the compute left them (empty list if the fork has no file). */
  List<byte[]> pages(RelTag rel, ForkNumber fork) {
    Path f = file(rel, fork);
    List<byte[]> out = new ArrayList<>();
    for (int seg = 0; ; seg++) {
      Path p = seg == 0 ? f : f.resolveSibling(f.getFileName() + "." + seg);
      if (!Files.exists(p)) {
        return out;
      }
      try (RandomAccessFile raf = new RandomAccessFile(p.toFile(), "r")) {
        long n = raf.length() / WalFormat.BLCKSZ;
        for (long i = 0; i < n; i++) {
          byte[] page = new byte[WalFormat.BLCKSZ];
          raf.readFully(page);
          out.add(page);
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }
}
