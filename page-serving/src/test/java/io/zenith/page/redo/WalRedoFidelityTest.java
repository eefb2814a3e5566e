package io.zenith.page.redo;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.page.PageChecksum;
import io.zenith.page.PageKind;
import io.zenith.page.PageMasking;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.WalFormat;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import reactor.core.publisher.Flux;

/**
 * Pages rebuilt by the redo pool from a real cluster's WAL equal the cluster's own pages, for every
 * block of every relation whose history WAL covers: user tables and indexes of every access method,
 * TOAST, sequences, visibility maps (with the bits heap records clear implicitly), init forks of an
 * unlogged table, and the catalogs of the {@code postgres} database and the shared ones (which have
 * the same relfilenodes as the scratch cluster's own catalogs).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WalRedoFidelityTest {

  private RedoWorkload w;
  private SimpleMeterRegistry registry;
  private WalRedoManager manager;

  @BeforeAll
  void start() {
    w = RedoWorkload.get();
    registry = new SimpleMeterRegistry();
    manager = WalRedoManager.start(w.cluster.distribution(), WalRedoConfig.defaults(), registry);
  }

  @AfterAll
  void stop() {
    if (manager != null) {
      manager.close();
    }
  }

  @Test
  void pagesRebuiltFromWalEqualTheComputesPages() {
    List<RedoWorkload.Target> targets = new ArrayList<>();
    int noHistory = 0;
    int zeroNoHistory = 0;
    List<String> userNoHistory = new ArrayList<>();
    for (RedoWorkload.Relation r : w.relations) {
      for (ForkNumber fork : RedoWorkload.comparedForks(r)) {
        List<byte[]> pages = w.pages(r.rel(), fork);
        for (int b = 0; b < pages.size(); b++) {
          var h = w.history(r.rel(), fork, b);
          if (h.isPresent()) {
            targets.add(new RedoWorkload.Target(r, fork, b, pages.get(b), h.get()));
          } else {
            noHistory++;
            if (PageChecksum.isNew(pages.get(b))) {
              zeroNoHistory++;
            } else if (Integer.compareUnsigned(r.rel().relNumber(), 16384) >= 0) {
              userNoHistory.add(r.name() + " " + fork.pgName() + " blk " + b);
            }
          }
        }
      }
    }

    long t0 = System.nanoTime();
    List<byte[]> results =
        Flux.fromIterable(targets)
            .flatMapSequential(t -> manager.apply("tenant-a", t.request()), 8)
            .collectList()
            .block(Duration.ofMinutes(3));
    long wallNanos = System.nanoTime() - t0;

    Map<PageKind, Integer> byKind = new EnumMap<>(PageKind.class);
    Map<ForkNumber, Integer> byFork = new EnumMap<>(ForkNumber.class);
    Map<String, Integer> byRecordType = new TreeMap<>();
    List<String> mismatches = new ArrayList<>();
    int rawIdenticalAfterChecksum = 0;
    int catalogPages = 0;
    int sharedPages = 0;
    long recordCount = 0;
    int vmPagesWithImplicitClears = 0;
    int implicitClears = 0;
    for (int i = 0; i < targets.size(); i++) {
      RedoWorkload.Target t = targets.get(i);
      byte[] redo = results.get(i);
      recordCount += t.history().size();
      byKind.merge(t.kind(), 1, Integer::sum);
      byFork.merge(t.fork(), 1, Integer::sum);
      int implicit = 0;
      for (DecodedRecord r : t.history()) {
        byRecordType.merge(r.rmgr().pgName() + "/" + r.typeName(), 1, Integer::sum);
        if (r.blocks().stream()
            .noneMatch(b -> b.fork() == t.fork() && b.blockNumber() == t.block())) {
          implicit++;
        }
      }
      if (implicit > 0) {
        vmPagesWithImplicitClears++;
        implicitClears += implicit;
      }
      if (Integer.compareUnsigned(t.relation().rel().relNumber(), 16384) < 0) {
        catalogPages++;
        if (t.relation().rel().dbOid() == 0) {
          sharedPages++;
        }
      }
      if (!t.matches(redo)) {
        mismatches.add(describeMismatch(t, redo));
        continue;
      }
      byte[] withChecksum = redo.clone();
      PageChecksum.set(withChecksum, t.block());
      if (Arrays.equals(withChecksum, t.compute())) {
        rawIdenticalAfterChecksum++;
      }
      if (t.kind() == PageKind.SEQUENCE) {
        assertThat(PageMasking.sequenceLastValue(redo).orElseThrow())
            .as("sequence %s: WAL is never behind the page", t.relation().name())
            .isGreaterThanOrEqualTo(PageMasking.sequenceLastValue(t.compute()).orElseThrow());
      }
    }

    Timer latency = registry.get("zenith.walredo.latency").timer();
    System.out.printf(
        "WAL redo fidelity: %d pages compared (%d catalog pages, %d shared), %d mismatches,"
            + " %d byte-identical once pd_checksum is recomputed; %d pages without WAL history"
            + " skipped (%d of them all-zero)%n",
        targets.size(),
        catalogPages,
        sharedPages,
        mismatches.size(),
        rawIdenticalAfterChecksum,
        noHistory,
        zeroNoHistory);
    System.out.printf("  by kind: %s; by fork: %s%n", byKind, byFork);
    System.out.printf(
        "  %d visibility-map pages got %d heap records for the bits they clear implicitly%n",
        vmPagesWithImplicitClears, implicitClears);
    System.out.printf("  record types applied: %s%n", byRecordType);
    System.out.printf(
        "  %d requests, %d records in %.0f ms wall (2 processes, 8 in flight):"
            + " %.3f ms mean round trip per request, %.4f ms per record (wall / records)%n",
        targets.size(),
        recordCount,
        wallNanos / 1e6,
        latency.mean(TimeUnit.MILLISECONDS),
        wallNanos / 1e6 / recordCount);

    assertThat(mismatches).as("pages that differ after masking").isEmpty();
    assertThat(userNoHistory)
        .as("pages of the workload's relations that WAL does not cover from an image")
        .isEmpty();
    assertThat(targets.size()).isGreaterThanOrEqualTo(200);
    assertThat(byKind.keySet())
        .contains(
            PageKind.HEAP,
            PageKind.BTREE,
            PageKind.HASH,
            PageKind.GIN,
            PageKind.GIST,
            PageKind.SPGIST,
            PageKind.BRIN,
            PageKind.SEQUENCE,
            PageKind.VISIBILITY_MAP);
    assertThat(byFork.keySet())
        .contains(ForkNumber.MAIN, ForkNumber.VISIBILITY_MAP, ForkNumber.INIT);
    assertThat(catalogPages).isPositive();
    assertThat(vmPagesWithImplicitClears).isPositive();
    assertThat(sharedPages).isPositive();
  }

  private static String describeMismatch(RedoWorkload.Target t, byte[] redo) {
    byte[] a = PageMasking.mask(redo, t.kind(), t.fork());
    byte[] b = PageMasking.mask(t.compute(), t.kind(), t.fork());
    List<String> diffs = new ArrayList<>();
    for (int i = 0; i < WalFormat.BLCKSZ && diffs.size() < 12; i++) {
      if (a[i] != b[i]) {
        diffs.add(String.format("%d: %02x/%02x", i, a[i] & 0xFF, b[i] & 0xFF));
      }
    }
    DecodedRecord last = t.history().getLast();
    return String.format(
        "%s (%s) %s blk %d, %d records up to %s %s/%s: redo/compute bytes %s",
        t.relation().name(),
        t.relation().rel(),
        t.fork().pgName(),
        t.block(),
        t.history().size(),
        last.lsn(),
        last.rmgr().pgName(),
        last.typeName(),
        diffs);
  }

  @Test
  void computePagesCarryTheChecksumsPageChecksumComputes() {
    int verified = 0;
    for (RedoWorkload.Relation r : w.relations) {
      for (ForkNumber fork : ForkNumber.values()) {
        List<byte[]> pages = w.pages(r.rel(), fork);
        for (int b = 0; b < pages.size(); b++) {
          byte[] p = pages.get(b);
          if (PageChecksum.isNew(p)) {
            continue;
          }
          assertThat(PageChecksum.compute(p, b))
              .as("checksum of %s %s blk %d", r.name(), fork.pgName(), b)
              .isEqualTo(PageChecksum.stored(p));
          assertThat(PageChecksum.verify(p, b + 1)).isFalse();
          verified++;
        }
      }
    }
    System.out.printf("PageChecksum: %d pages written by PostgreSQL verified%n", verified);
    assertThat(verified).isGreaterThan(1000);
  }

  @Test
  void pageKindIsToldFromThePage() {
    int checked = 0;
    for (RedoWorkload.Relation r : w.relations) {
      for (ForkNumber fork : List.of(ForkNumber.MAIN, ForkNumber.INIT)) {
        List<byte[]> pages = w.pages(r.rel(), fork);
        for (int b = 0; b < pages.size(); b++) {
          byte[] p = pages.get(b);
          if (PageChecksum.isNew(p)) {
            continue;
          }
          assertThat(PageKind.detect(p, fork))
              .as("%s %s blk %d", r.name(), fork.pgName(), b)
              .isEqualTo(r.kind());
          checked++;
        }
      }
    }
    assertThat(checked).isGreaterThan(1000);
  }
}
