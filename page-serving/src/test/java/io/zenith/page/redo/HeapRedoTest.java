package io.zenith.page.redo;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.FullPageImages;
import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentFiles;
import io.zenith.wal.WalStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * {@link HeapRedo} against PostgreSQL's own redo on real WAL: every heap page of a real cluster's
 * bulk loads ({@code COPY … FREEZE} as {@code pgbench -i} runs it, plain {@code COPY}, {@code
 * INSERT … SELECT}, TOAST), its {@code VACUUM} (all-visible) and inserts that clear all-visible is
 * rebuilt once by the redo process alone and once with the Java prefix first; the two pages must be
 * byte-identical (no masking), and Java must have applied each kind of record it claims.
 */
class HeapRedoTest {

  private static final String WORKLOAD =
      """
      CREATE TABLE plain (id int, v text) WITH (autovacuum_enabled = off);
      INSERT INTO plain SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
      INSERT INTO plain VALUES (0, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 300) i));
      BEGIN;
      CREATE TABLE frozen (aid int, bid int, abalance int, filler char(84))
          WITH (autovacuum_enabled = off);
      COPY frozen (aid) FROM PROGRAM 'seq 1 20000' WITH (FREEZE);
      COMMIT;
      CREATE TABLE loaded (aid int, bid int, filler char(84)) WITH (autovacuum_enabled = off);
      COPY loaded (aid) FROM PROGRAM 'seq 1 5000';
      VACUUM loaded;
      INSERT INTO loaded (aid) SELECT g FROM generate_series(5001, 5100) g;
      """;

  @Test
  void pagesRebuiltWithTheJavaPrefixEqualThoseOfTheRedoProcess() throws IOException {
    try (PgCluster c = RedoWorkload.startCluster()) {
      c.sql(WORKLOAD);
      Set<Integer> filenodes = new HashSet<>();
      for (String line :
          c.sql(
                  "SELECT pg_relation_filenode(r) FROM unnest(ARRAY['plain', 'frozen', 'loaded',"
                      + " (SELECT reltoastrelid FROM pg_class WHERE relname = 'plain')::regclass])"
                      + " r")
              .strip()
              .split("\n")) {
        filenodes.add(Integer.parseInt(line.strip()));
      }
      int frozen = Integer.parseInt(c.sql("SELECT pg_relation_filenode('frozen')").strip());
      c.stop();
      Map<BlockKey, History> histories = histories(readWal(c), filenodes);
      assertThat(histories.size()).isGreaterThan(100);

      SimpleMeterRegistry registry = new SimpleMeterRegistry();
      try (WalRedoManager manager =
          WalRedoManager.start(
              c.distribution(),
              WalRedoConfig.defaults().withRequestTimeout(Duration.ofSeconds(60)),
              registry)) {
        Map<String, Integer> appliedInJava = new TreeMap<>();
        int allInJava = 0;
        List<String> mismatches = new ArrayList<>();
        for (var e : histories.entrySet()) {
          BlockKey k = e.getKey();
          History h = e.getValue();
          List<WalRecord> raw = h.records.stream().map(DecodedRecord::raw).toList();
          byte[] byProcess =
              manager
                  .apply("t", new RedoRequest(k.rel(), ForkNumber.MAIN, k.block(), h.base, raw))
                  .block();
          HeapRedo.Prefix p =
              HeapRedo.applyPrefix(k.rel(), ForkNumber.MAIN, k.block(), h.base, raw, true);
          byte[] withJava =
              p.applied() == raw.size()
                  ? p.page()
                  : manager
                      .apply(
                          "t",
                          new RedoRequest(
                              k.rel(),
                              ForkNumber.MAIN,
                              k.block(),
                              p.page(),
                              raw.subList(p.applied(), raw.size())))
                      .block();
          for (int i = 0; i < p.applied(); i++) {
            appliedInJava.merge(
                h.records.get(i).typeName() + flagsOf(h.records.get(i), frozen), 1, Integer::sum);
          }
          allInJava += p.applied() == raw.size() ? 1 : 0;
          if (!Arrays.equals(byProcess, withJava)) {
            mismatches.add(k + " (" + p.applied() + " of " + raw.size() + " records in Java)");
          }
        }
        assertThat(mismatches).isEmpty();
        // every page of the COPY FREEZE table, at least, needs no process
        assertThat(allInJava).isGreaterThan(histories.size() / 2);
        assertThat(appliedInJava.keySet())
            .contains(
                "INSERT+INIT",
                "INSERT",
                "MULTI_INSERT+INIT frozen",
                "MULTI_INSERT frozen-continued",
                "MULTI_INSERT+INIT",
                "VISIBLE",
                "INSERT all-visible-cleared");
      }
    }
  }

  /** The record type, with the flag this test wants to see applied at least once. */
  private static String flagsOf(DecodedRecord r, int frozen) {
    if (!r.typeName().contains("INSERT")) {
      return "";
    }
    ByteBuffer m = r.mainData();
    // xl_heap_multi_insert has its flags first, xl_heap_insert after the offset
    int flags = r.typeName().startsWith("MULTI") ? m.get(0) : m.get(2);
    if ((flags & 0x01) != 0) {
      return " all-visible-cleared";
    }
    return switch (r.typeName()) {
      case "MULTI_INSERT+INIT" -> (flags & 0x20) != 0 ? " frozen" : "";
      case "MULTI_INSERT" -> frozenRelation(r, frozen) ? " frozen-continued" : "";
      default -> "";
    };
  }

  private static boolean frozenRelation(DecodedRecord r, int frozen) {
    return r.block(0) != null && r.block(0).rel().relNumber() == frozen;
  }

  private record BlockKey(RelTag rel, int block) {}

  /** A main-fork block's history from its last will-init reference or image on. */
  private static final class History {
    byte[] base;
    boolean started;
    final List<DecodedRecord> records = new ArrayList<>();
  }

  private static Map<BlockKey, History> histories(List<DecodedRecord> recs, Set<Integer> nodes) {
    Map<BlockKey, History> out = new HashMap<>();
    for (DecodedRecord r : recs) {
      for (BlockRef b : r.blocks()) {
        if (b.fork() != ForkNumber.MAIN || !nodes.contains(b.rel().relNumber())) {
          continue;
        }
        History h = out.computeIfAbsent(new BlockKey(b.rel(), b.blockNumber()), x -> new History());
        if (b.appliesImage()) {
          // as ingest stores it: the restored image, stamped with the record's end LSN
          h.started = true;
          h.records.clear();
          h.base = stamp(FullPageImages.restore(r, b), r.end().value());
        } else {
          if (b.willInit()) {
            h.started = true;
            h.records.clear();
            h.base = null;
          }
          if (h.records.isEmpty() || h.records.getLast() != r) {
            h.records.add(r);
          }
        }
      }
    }
    out.values().removeIf(h -> !h.started || h.records.isEmpty());
    return out;
  }

  private static byte[] stamp(byte[] page, long lsn) {
    if (!PageLayout.isNew(page)) {
      ByteBuffer.wrap(page)
          .order(ByteOrder.LITTLE_ENDIAN)
          .putInt(PageLayout.PD_LSN, (int) (lsn >>> 32))
          .putInt(PageLayout.PD_LSN + 4, (int) lsn);
    }
    return page;
  }

  private static List<DecodedRecord> readWal(PgCluster c) throws IOException {
    WalSegmentFiles.Sequence seq =
        WalSegmentFiles.sequence(WalSegmentFiles.listSegments(c.walDir()));
    List<WalRecord> recs =
        WalStream.records(
                WalSegmentFiles.read(seq, seq.startLsn()),
                seq.startLsn(),
                WalRecordAssembler.Options.DEFAULT.withSegmentSize(seq.segmentSize()))
            .collectList()
            .block();
    return recs.stream().map(RecordDecoder::decode).toList();
  }
}
