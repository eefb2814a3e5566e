package io.zenith.it.wal;

import io.r2dbc.postgresql.PostgresqlConnectionConfiguration;
import io.r2dbc.postgresql.PostgresqlConnectionFactory;
import io.r2dbc.spi.Connection;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.RelTag;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * A stock PostgreSQL 15 workload that writes at least one record of every builtin resource manager,
 * the record types the WAL reader must get right (multi-page and multi-segment records, full-page
 * images applied and for verification only, subtransactions, two-phase commit, replication
 * origins), and a known page state for comparing full-page images. Stateless.
 */
final class WalWorkload {
  private WalWorkload() {}

  private static final Duration TIMEOUT = Duration.ofMinutes(2);

  /**
   * The next xid after {@code pg_resetwal -x}: just below both the commit-timestamp page boundary
   * at 32760 (819 xids per page) and the CLOG page boundary at 32768, so that the workload's first
   * ~100 transactions make PostgreSQL write CommitTs and CLOG ZEROPAGE records (otherwise that
   * takes 32k transactions).
   */
  static final String NEXT_XID = "32700";

  /** Server settings for the workload, with the given {@code wal_compression}. */
  static Map<String, String> settings(String walCompression) {
    Map<String, String> s = new LinkedHashMap<>();
    s.put("wal_compression", walCompression);
    // logical: Heap2 NEW_CID, Heap TRUNCATE, logged invalidations, top-level xids in records.
    s.put("wal_level", "logical");
    s.put("max_prepared_transactions", "5");
    s.put("track_commit_timestamp", "on");
    // Hint bits set after a checkpoint then write XLOG FPI_FOR_HINT (no data checksums needed).
    s.put("wal_log_hints", "on");
    // Nothing but the workload may touch pages: the full-page-image test needs a known page state.
    s.put("autovacuum", "off");
    // Only checkpoints the workload asks for; keep every segment (a logical slot pins them too).
    s.put("max_wal_size", "4GB");
    s.put("checkpoint_timeout", "1d");
    s.put("wal_keep_size", "4GB");
    // Durability is irrelevant to WAL content and costs seconds (CREATE DATABASE syncs a lot).
    s.put("fsync", "off");
    return s;
  }

  /** Runs the workload on a started cluster; {@code tablespaceDir} is empty and PostgreSQL's. */
  static void run(PgCluster c, Path tablespaceDir) {
    c.sql(script(tablespaceDir));
    concurrentSessions(c.port());
  }

  private static String script(Path tablespaceDir) {
    String copyRows =
        IntStream.rangeClosed(1, 3000)
            .mapToObj(i -> i + "\trow " + i)
            .collect(Collectors.joining("\n", "", "\n"));
    return """
        -- A logical slot pins all WAL from here on and makes VACUUM FULL of a catalog write
        -- Heap2 REWRITE (logical rewrite mapping) records.
        SELECT 'slot' FROM pg_create_logical_replication_slot('zenith_it', 'pgoutput');

        -- Burn ~150 xids (one commit each) across the CommitTs and CLOG page boundaries.
        DO $$ BEGIN FOR i IN 1..150 LOOP PERFORM txid_current(); COMMIT; END LOOP; END $$;

        -- Heap INSERT/UPDATE/HOT_UPDATE/DELETE/LOCK/HEAP_CONFIRM, Btree inserts and splits.
        CREATE TABLE heap_t (id int PRIMARY KEY, v text, n int) WITH (fillfactor = 70);
        INSERT INTO heap_t SELECT i, repeat('v', 50), i FROM generate_series(1, 5000) i;
        UPDATE heap_t SET n = n + 1 WHERE id % 10 = 0;
        UPDATE heap_t SET id = id + 100000 WHERE id % 97 = 0;
        DELETE FROM heap_t WHERE id % 7 = 0;
        BEGIN;
        SELECT count(*) FROM (SELECT * FROM heap_t WHERE id BETWEEN 1 AND 20 FOR UPDATE) s;
        COMMIT;
        INSERT INTO heap_t VALUES (1, 'x', 0) ON CONFLICT (id) DO UPDATE SET n = -1;
        INSERT INTO heap_t VALUES (200000, 'x', 0) ON CONFLICT DO NOTHING;

        -- Subtransactions (SAVEPOINT; > 64 subxacts with xids force an ASSIGNMENT record),
        -- an abort, and two-phase commit both ways.
        BEGIN;
        INSERT INTO heap_t VALUES (300001, 'a', 1);
        SAVEPOINT s1; INSERT INTO heap_t VALUES (300002, 'b', 1); RELEASE s1;
        SAVEPOINT s2; INSERT INTO heap_t VALUES (300003, 'c', 1); ROLLBACK TO s2;
        COMMIT;
        BEGIN;
        DO $$ BEGIN
          FOR i IN 1..80 LOOP
            BEGIN INSERT INTO heap_t VALUES (400000 + i, 'sub', i);
            EXCEPTION WHEN others THEN NULL; END;
          END LOOP;
        END $$;
        COMMIT;
        BEGIN; INSERT INTO heap_t VALUES (500000, 'gone', 0); ROLLBACK;
        BEGIN; INSERT INTO heap_t VALUES (600001, '2pc', 0); PREPARE TRANSACTION 'p1';
        COMMIT PREPARED 'p1';
        BEGIN; INSERT INTO heap_t VALUES (600002, '2pc', 0); PREPARE TRANSACTION 'p2';
        ROLLBACK PREPARED 'p2';

        -- Full-page images that redo must not apply (BKPIMAGE_APPLY clear).
        SET wal_consistency_checking = 'heap,btree';
        INSERT INTO heap_t VALUES (800001, 'checked', 0);
        RESET wal_consistency_checking;

        -- Heap2 PRUNE/VACUUM/VISIBLE/FREEZE_PAGE, Btree VACUUM, Heap INPLACE (pg_class stats).
        VACUUM heap_t;
        VACUUM (FREEZE) heap_t;

        CREATE SEQUENCE seq;
        SELECT count(nextval('seq')) FROM generate_series(1, 100);

        -- TOAST: uncompressed out-of-line values, records larger than a WAL page.
        CREATE TABLE toast_t (id int, big text);
        ALTER TABLE toast_t ALTER big SET STORAGE EXTERNAL;
        INSERT INTO toast_t
          SELECT i, (SELECT string_agg(md5(j::text || i::text), '') FROM generate_series(1, 300) j)
          FROM generate_series(1, 20) i;

        -- Hash, Gin, Gist, SPGist, BRIN: builds, then incremental inserts, deletes and vacuum.
        CREATE TABLE idx_t (id int, arr int[], p point, b box, t text, h int);
        INSERT INTO idx_t
          SELECT i, ARRAY[i % 100, i % 37, i % 11], point(i % 100, i / 100),
                 box(point(i % 50, i % 30), point(i % 50 + 1, i % 30 + 1)), md5(i::text), i % 1000
          FROM generate_series(1, 3000) i;
        CREATE INDEX idx_t_hash ON idx_t USING hash (h);
        CREATE INDEX idx_t_gin ON idx_t USING gin (arr) WITH (fastupdate = on);
        CREATE INDEX idx_t_gist ON idx_t USING gist (b);
        CREATE INDEX idx_t_spgist ON idx_t USING spgist (p);
        CREATE INDEX idx_t_spgist_text ON idx_t USING spgist (t);
        CREATE INDEX idx_t_brin ON idx_t USING brin (id) WITH (pages_per_range = 2);
        INSERT INTO idx_t
          SELECT i, ARRAY[i % 100, i % 37, i % 11], point(i % 100, i / 100),
                 box(point(i % 50, i % 30), point(i % 50 + 1, i % 30 + 1)), md5(i::text), i % 1000
          FROM generate_series(3001, 6000) i;
        DELETE FROM idx_t WHERE id % 3 = 0;
        VACUUM idx_t;
        SELECT brin_summarize_new_values('idx_t_brin');

        SELECT brin_desummarize_range('idx_t_brin', 0);

        -- Btree DEDUP (duplicates), DELETE (bottom-up deletion of version churn from non-HOT
        -- updates), MARK_PAGE_HALFDEAD/UNLINK_PAGE (VACUUM after a range delete), META_CLEANUP.
        CREATE TABLE bt_t (id int, k int, u int);
        CREATE INDEX bt_t_k ON bt_t (k);
        CREATE INDEX bt_t_u ON bt_t (u);
        CREATE INDEX bt_t_id ON bt_t (id);
        INSERT INTO bt_t SELECT i, i % 10, i FROM generate_series(1, 10000) i;
        UPDATE bt_t SET u = u + 1 WHERE id <= 2000;
        UPDATE bt_t SET u = u + 1 WHERE id <= 2000;
        UPDATE bt_t SET u = u + 1 WHERE id <= 2000;
        DELETE FROM bt_t WHERE id BETWEEN 3000 AND 9000;
        VACUUM bt_t;
        VACUUM bt_t;

        -- Gin CREATE_PTREE (a key in thousands of rows, inserted one by one), data-leaf vacuum.
        CREATE TABLE gin_tree_t (arr int[]);
        CREATE INDEX gin_tree_idx ON gin_tree_t USING gin (arr) WITH (fastupdate = off);
        INSERT INTO gin_tree_t SELECT ARRAY[1, i] FROM generate_series(1, 3000) i;
        DELETE FROM gin_tree_t WHERE arr[2] % 2 = 0;
        VACUUM gin_tree_t;

        -- SPGist ADD_NODE and SPLIT_TUPLE: a radix tree over strings with shared prefixes.
        CREATE TABLE radix_t (t text);
        CREATE INDEX radix_idx ON radix_t USING spgist (t);
        INSERT INTO radix_t SELECT 'prefix' || i FROM generate_series(1, 2000) i;
        INSERT INTO radix_t SELECT 'pre' || i FROM generate_series(1, 2000) i;
        INSERT INTO radix_t SELECT 'p' || (i * 7) FROM generate_series(1, 2000) i;

        -- Generic WAL (bloom writes its pages through generic_xlog).
        CREATE EXTENSION bloom;
        CREATE TABLE bloom_t (a int, b int);
        INSERT INTO bloom_t SELECT i, i * 2 FROM generate_series(1, 1000) i;
        CREATE INDEX bloom_idx ON bloom_t USING bloom (a, b);
        INSERT INTO bloom_t SELECT i, i FROM generate_series(1, 500) i;

        -- Heap2 MULTI_INSERT (COPY), then Heap TRUNCATE.
        CREATE TABLE copy_t (id int, v text);
        COPY copy_t FROM STDIN;
        {{copy rows}}\\.
        TRUNCATE copy_t;

        -- Storage TRUNCATE: VACUUM cuts the empty tail of the table; Standby LOCK on DROP.
        CREATE TABLE trunc_t (id int);
        INSERT INTO trunc_t SELECT generate_series(1, 5000);
        DELETE FROM trunc_t WHERE id > 100;
        VACUUM trunc_t;
        DROP TABLE trunc_t;

        -- Database: both CREATE strategies and DROP; Tablespace CREATE and DROP.
        CREATE DATABASE db_copy STRATEGY FILE_COPY;
        CREATE DATABASE db_wal STRATEGY WAL_LOG;
        DROP DATABASE db_copy;
        CREATE TABLESPACE ts LOCATION '{{tablespace}}';
        CREATE TABLE ts_t (a int) TABLESPACE ts;
        INSERT INTO ts_t SELECT generate_series(1, 100);
        DROP TABLE ts_t;
        DROP TABLESPACE ts;

        -- RelMap UPDATE (pg_class is a mapped relation).
        VACUUM FULL pg_class;

        -- ReplicationOrigin SET/DROP, and a commit record that carries an origin.
        SELECT pg_replication_origin_create('zenith_origin');
        SELECT pg_replication_origin_session_setup('zenith_origin');
        BEGIN;
        SELECT pg_replication_origin_xact_setup('0/1000000', now());
        INSERT INTO heap_t VALUES (700001, 'origin', 0);
        COMMIT;
        SELECT pg_replication_origin_session_reset();
        SELECT pg_replication_origin_advance('zenith_origin', '0/2000000');
        SELECT pg_replication_origin_drop('zenith_origin');

        -- LogicalMessage: a small one, and one of 17 MiB: a record larger than a segment.
        SELECT 'm' FROM pg_logical_emit_message(true, 'zenith', 'small message');
        SELECT 'm' FROM pg_logical_emit_message(false, 'zenith-big', repeat('z', 17 * 1024 * 1024));

        -- XLOG FPI_FOR_HINT: the first hint bit set on a page after a checkpoint.
        CREATE TABLE hint_t (id int, v text);
        INSERT INTO hint_t SELECT i, 'x' FROM generate_series(1, 500) i;
        CHECKPOINT;
        SELECT count(*) FROM hint_t;

        -- XLOG RESTORE_POINT, BACKUP_END (+ SWITCH), SWITCH.
        SELECT 'r' FROM pg_create_restore_point('zenith');
        SELECT 'b' FROM pg_backup_start('zenith', true);
        SELECT 'e' FROM pg_backup_stop();
        SELECT 's' FROM pg_switch_wal();
        """
        .replace("{{copy rows}}", copyRows)
        .replace("{{tablespace}}", tablespaceDir.toString().replace("'", "''"));
  }

  /**
   * Two sessions at once. MultiXact: both share-lock the same rows, so each row's xmax becomes a
   * multixact (ZERO_MEM_PAGE, CREATE_ID). Heap2 LOCK_UPDATED: one updates a row without committing,
   * the other key-share-locks it, which does not conflict and also locks the new row version along
   * the update chain.
   */
  private static void concurrentSessions(int port) {
    PostgresqlConnectionFactory factory =
        new PostgresqlConnectionFactory(
            PostgresqlConnectionConfiguration.builder()
                .host("127.0.0.1")
                .port(port)
                .username("postgres")
                .database("postgres")
                .build());
    Connection a = Mono.from(factory.create()).block(TIMEOUT);
    try {
      Connection b = Mono.from(factory.create()).block(TIMEOUT);
      try {
        String lock = "SELECT id FROM heap_t WHERE id <= 50 FOR SHARE";
        Mono.from(a.beginTransaction()).block(TIMEOUT);
        execute(a, lock);
        Mono.from(b.beginTransaction()).block(TIMEOUT);
        execute(b, lock);
        Mono.from(a.commitTransaction()).block(TIMEOUT);
        Mono.from(b.commitTransaction()).block(TIMEOUT);

        Mono.from(a.beginTransaction()).block(TIMEOUT);
        execute(a, "UPDATE heap_t SET n = n + 1 WHERE id = 60");
        Mono.from(b.beginTransaction()).block(TIMEOUT);
        execute(b, "SELECT id FROM heap_t WHERE id = 60 FOR KEY SHARE");
        Mono.from(a.commitTransaction()).block(TIMEOUT);
        Mono.from(b.commitTransaction()).block(TIMEOUT);
      } finally {
        Mono.from(b.close()).block(TIMEOUT);
      }
    } finally {
      Mono.from(a.close()).block(TIMEOUT);
    }
  }

  private static void execute(Connection c, String sql) {
    Flux.from(c.createStatement(sql).execute())
        .concatMap(r -> r.map((row, meta) -> 1))
        .then()
        .block(TIMEOUT);
  }

  /** A heap page as PostgreSQL holds it right after a record that carries its full-page image. */
  record FpiProbe(RelTag rel, int block, byte[] page) {}

  /**
   * Puts block 0 of a fresh table into a known state, checkpoints, updates one row (the update's
   * record carries the page's first full-page image since the checkpoint) and reads the page back
   * at once with pageinspect.
   *
   * <p>Hint bits: VACUUM sets them (and the all-visible flag) on every tuple before the checkpoint,
   * so neither the update's scan nor anything after it sets a hint bit, and no FPI_FOR_HINT or
   * later change lands on the page. Nothing reads the table between the update and {@code
   * get_raw_page}; autovacuum is off.
   */
  static FpiProbe fpiProbe(PgCluster c) {
    c.sql(
        """
        CREATE EXTENSION pageinspect;
        CREATE TABLE fpi_t (id int PRIMARY KEY, v text) WITH (fillfactor = 90);
        INSERT INTO fpi_t SELECT i, repeat('compressible ', 8) FROM generate_series(1, 400) i;
        VACUUM fpi_t;
        CHECKPOINT;
        """);
    String out =
        c.sql(
                """
                UPDATE fpi_t SET v = 'changed' WHERE id = 3;
                SELECT (SELECT oid FROM pg_database WHERE datname = current_database())
                       || ' ' || pg_relation_filenode('fpi_t')
                       || ' ' || encode(get_raw_page('fpi_t', 0), 'hex');
                """)
            .trim();
    List<String> parts = List.of(out.split(" "));
    if (parts.size() != 3) {
      throw new IllegalStateException("unexpected pageinspect output: " + out);
    }
    RelTag rel =
        new RelTag(
            RelTag.DEFAULT_TABLESPACE,
            Integer.parseUnsignedInt(parts.get(0)),
            Integer.parseUnsignedInt(parts.get(1)));
    return new FpiProbe(rel, 0, HexFormat.of().parseHex(parts.get(2)));
  }
}
