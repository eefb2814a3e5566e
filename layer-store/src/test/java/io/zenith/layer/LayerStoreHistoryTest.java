package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.layer.LayerStoreTest.Workload;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The history lifecycle of the layer store: L0 layers compacted into L1 layers, image layers, GC
 * below a cutoff. Pages are compared after a model reconstruction (a base image with the records
 * after it folded in), which is what a reader of the store depends on: compaction and GC change
 * which versions a read sees, never the page it rebuilds.
 */
class LayerStoreHistoryTest {
  @TempDir Path data;

  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId MAIN = TimelineId.parse("11111111111111111111111111111111");
  private static final Lsn START = Lsn.parse("0/1000028");
  private static final LayerStoreConfig SMALL =
      LayerStoreConfig.DEFAULT.withCheckpointDistance(64 * 1024);
  private static final int KEYS = 40;

  /** Small files, so that a few thousand records make several partitions. */
  private static final CompactionSettings AGGRESSIVE = new CompactionSettings(64 * 1024, 3, 2, 2);

  /** The model's reconstruction: the base (or a zero page), each newer record XORed in. */
  static byte[] rebuild(List<Version> newestFirst) {
    byte[] page = new byte[8192];
    for (int i = newestFirst.size() - 1; i >= 0; i--) {
      switch (newestFirst.get(i).value()) {
        case Value.Image img -> page = img.bytes().clone();
        case Value.Tombstone t -> page = new byte[8192];
        case Value.WalRecord w -> {
          byte[] r = w.record();
          for (int j = 0; j < r.length; j++) {
            page[(j * 131 + (r[0] & 0xFF)) % 8192] ^= r[j];
          }
          page[8191]++;
        }
        case Value.Patch p -> p.applyTo(page);
      }
    }
    return page;
  }

  static final ImageSource MODEL = (t, key, lsn) -> rebuild(t.history(key, lsn));

  private static Timeline root(LayerStore s) {
    s.createTenant(TENANT);
    return s.createRootTimeline(TENANT, MAIN, START, 42, 15);
  }

  /** Every key's page at {@code samples} LSNs in [from, upTo] equals the model's. */
  private static void assertPages(Timeline t, Workload w, Lsn from, Lsn upTo, int samples) {
    Random r = new Random(from.value() ^ upTo.value());
    long span = upTo.minus(from) / 64;
    for (int i = 0; i < samples; i++) {
      Lsn at = i == 0 ? upTo : from.plus(64L * r.nextLong(span + 1));
      for (int k = 0; k < KEYS; k++) {
        Key key = LayerStoreTest.block(k);
        assertThat(rebuild(t.history(key, at)))
            .as("page of %s at %s", key, at)
            .isEqualTo(rebuild(w.expected(key, at)));
      }
    }
  }

  private static long layerBytes(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      long total = 0;
      for (Path p : s.filter(p -> p.toString().endsWith(".layer")).toList()) {
        total += Files.size(p);
      }
      return total;
    }
  }

  /**
   * ADR 0033: the L0 layers flushed while a pass writes an image layer (seconds of WAL redo in a
   * pageserver) are merged before the image is done, and no page changes for it.
   */
  @Test
  void l0LayersFlushedWhileAnImageLayerIsWrittenAreMergedBeforeItIsDone() throws IOException {
    int keys = 400;
    CompactionSettings oneImagePartition = new CompactionSettings(8L << 20, 3, 2, 2);
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      Workload w = new Workload(t, START);
      Lsn first = w.ingest(3000, keys, new Random(5));
      t.checkpoint();
      int l0Before = t.layerStats().l0();
      assertThat(l0Before).isGreaterThanOrEqualTo(oneImagePartition.compactionThreshold());
      java.util.concurrent.atomic.AtomicInteger flushedMeanwhile =
          new java.util.concurrent.atomic.AtomicInteger(-1);
      ImageSource source =
          (tl, key, lsn) -> {
            synchronized (flushedMeanwhile) {
              if (flushedMeanwhile.get() < 0) {
                // the writer's records arrive while the first page is materialized
                int l0 = t.layerStats().l0();
                w.ingest(3000, keys, new Random(6));
                t.checkpoint();
                flushedMeanwhile.set(t.layerStats().l0() - l0);
              }
            }
            return MODEL.image(tl, key, lsn);
          };
      CompactionResult c = t.compact(oneImagePartition, source);
      assertThat(flushedMeanwhile.get()).isGreaterThanOrEqualTo(3);
      assertThat(c.imageLayers()).isEqualTo(1);
      assertThat(c.imagePages()).isGreaterThan(MERGE_CHECK_PAGES_IN_TEST);
      assertThat(c.l0Merged())
          .as("the L0 layers before the pass and those flushed while its image was written")
          .isEqualTo(l0Before + flushedMeanwhile.get());
      assertThat(t.layerStats().l0()).isZero();
      Lsn end = w.next;
      for (Lsn at : List.of(first, end)) {
        for (int k = 0; k < keys; k++) {
          Key key = LayerStoreTest.block(k);
          assertThat(rebuild(t.history(key, at)))
              .as("page of %s at %s", key, at)
              .isEqualTo(rebuild(w.expected(key, at)));
        }
      }
    }
  }

  /** Compaction's pages between two looks for due L0 merges while writing an image. */
  private static final int MERGE_CHECK_PAGES_IN_TEST = 32;

  /**
   * ADR 0033: L0 files smaller together than {@code compaction_target_size} are merged into one L1
   * layer over all keys (without the scan that cuts key ranges), and no page changes.
   */
  @Test
  void l0LayersSmallerTogetherThanTheTargetBecomeOneL1LayerOverAllKeys() throws IOException {
    CompactionSettings large = new CompactionSettings(64L << 20, 3, 1000, 2);
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      Workload w = new Workload(t, START);
      Lsn end = w.ingest(4000, KEYS, new Random(7));
      t.checkpoint();
      LayerStats before = t.layerStats();
      assertThat(before.l0()).isGreaterThanOrEqualTo(large.compactionThreshold());
      assertThat(before.bytes()).isLessThan(large.targetSize());

      CompactionResult c = t.compact(large, MODEL);
      assertThat(c.l0Merged()).isEqualTo(before.l0());
      assertThat(c.l1Written()).isEqualTo(1);
      assertThat(t.layerStats().l0()).isZero();
      LayerFileInfo l1 =
          t.layerFiles().stream().filter(f -> f.level() == 1).findFirst().orElseThrow();
      try (LayerFile.Reader r = LayerFile.Reader.open(t.dir().resolve(l1.fileName()))) {
        assertThat(r.header().keys()).isEqualTo(KeyRange.ALL);
      }
      assertPages(t, w, START.plus(64), end, 20);
    }
  }

  @Test
  void compactionMergesL0IntoL1AndCreatesImagesWithoutChangingAnyPage() throws IOException {
    Workload w;
    Lsn end;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      w = new Workload(t, START);
      end = w.ingest(4000, KEYS, new Random(1));
      t.checkpoint();
      LayerStats before = t.layerStats();
      assertThat(before.l0()).isGreaterThanOrEqualTo(AGGRESSIVE.compactionThreshold());

      CompactionResult c = t.compact(AGGRESSIVE, MODEL);
      LayerStats after = t.layerStats();
      assertThat(c.l0Merged()).isEqualTo(before.l0());
      assertThat(after.l0()).isZero();
      assertThat(after.l1()).isEqualTo(c.l1Written()).isGreaterThan(1);
      assertThat(c.imageLayers()).isPositive();
      assertThat(after.images()).isEqualTo(c.imageLayers());
      // The newest version of every key at the image LSN is now an image: one step to read.
      for (int k = 0; k < KEYS; k++) {
        List<Version> h = t.history(LayerStoreTest.block(k), end);
        assertThat(h).hasSize(1);
        assertThat(h.getFirst().value()).isInstanceOf(Value.Image.class);
      }
      assertPages(t, w, START.plus(64), end, 20);
      assertThat(t.compact(AGGRESSIVE, MODEL).didSomething())
          .as("nothing is due right after a compaction")
          .isFalse();
    }
    // What compaction committed survives a restart, and an index rebuilt from the files.
    assertPagesAfterRestartAndRebuild(w, START.plus(64), end);
  }

  @Test
  void backgroundPassesLookForImagesEveryTwoCheckpointDistancesOrWhenTheWalStops()
      throws IOException {
    // a partition with one delta layer since its image is due for one; no L0 merge
    CompactionSettings noMerge = new CompactionSettings(64 * 1024, 1000, 1, 2);
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      Workload w = new Workload(t, START);
      Lsn end = w.ingest(400, KEYS, new Random(3));
      t.checkpoint();
      // The first background pass looks.
      assertThat(t.compact(noMerge, MODEL, false).imageLayers()).isPositive();
      assertPages(t, w, START.plus(64), end, 5);

      // 200 records are 12.5 KiB of WAL, less than two checkpoint distances (128 KiB): no look,
      // though every partition written has a delta layer since its image.
      end = w.ingest(200, KEYS, new Random(4));
      t.checkpoint();
      assertThat(t.compact(noMerge, MODEL, false).imageLayers()).isZero();
      assertThat(t.compact(noMerge, MODEL, false).imageLayers())
          .as("the WAL stopped: what came last gets its images")
          .isPositive();

      // 2,100 records are 131 KiB of WAL: a look at the first pass after them.
      end = w.ingest(2100, KEYS, new Random(5));
      t.checkpoint();
      assertThat(t.compact(noMerge, MODEL, false).imageLayers()).isPositive();
      assertPages(t, w, START.plus(64), end, 10);
    }
  }

  /** The pages in [from, upTo] after a restart, and again after an index rebuilt from the files. */
  private void assertPagesAfterRestartAndRebuild(Workload w, Lsn from, Lsn upTo)
      throws IOException {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertPages(s.timeline(TENANT, MAIN), w, from, upTo, 10);
    }
    LayerStoreTest.deleteTree(data.resolve("index"));
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThat(s.rebuiltIndex()).isTrue();
      assertPages(s.timeline(TENANT, MAIN), w, from, upTo, 10);
    }
  }

  @Test
  void gcRemovesWhatNoReadAtOrAboveTheCutoffNeedsAndRefusesReadsBelowIt() throws IOException {
    Workload w;
    Lsn cutoff;
    Lsn end;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      w = new Workload(t, START);
      Random r = new Random(2);
      w.ingest(3000, KEYS, r);
      t.checkpoint();
      t.compact(AGGRESSIVE, MODEL);
      cutoff = w.ingest(3000, KEYS, r);
      t.checkpoint();
      t.compact(AGGRESSIVE, MODEL);
      end = w.ingest(1000, KEYS, r);
      t.checkpoint();
      long bytesBefore = layerBytes(t.dir());

      GcResult gc = s.gc(TENANT, MAIN, cutoff);
      assertThat(gc.cutoff()).isEqualTo(cutoff);
      assertThat(gc.versionsRemoved()).isPositive();
      assertThat(gc.layersRemoved()).isPositive();
      assertThat(layerBytes(t.dir())).isEqualTo(bytesBefore - gc.bytesRemoved());
      assertThat(t.gcCutoff()).isEqualTo(cutoff);
      assertPages(t, w, cutoff, end, 20);
      Lsn below = cutoff.plus(-64);
      assertThatThrownBy(() -> t.history(LayerStoreTest.block(1), below))
          .isInstanceOf(LayerStoreException.class)
          .hasMessageContaining("below its GC cutoff " + cutoff)
          .extracting(e -> ((LayerStoreException) e).kind())
          .isEqualTo(LayerStoreException.Kind.INVALID_LSN);
      assertThatThrownBy(() -> s.branch(TENANT, TimelineId.generate(), MAIN, Optional.of(below)))
          .isInstanceOf(LayerStoreException.class)
          .hasMessageContaining("below the GC cutoff");
      // Never lowered; a second pass at the same cutoff finds nothing more.
      assertThat(s.gc(TENANT, MAIN, START.plus(64)).cutoff()).isEqualTo(cutoff);
      assertThat(s.gc(TENANT, MAIN, cutoff).versionsRemoved()).isZero();
    }
    // The cutoff is durable, and an index rebuilt from the files (which still hold versions the
    // index dropped) serves the same pages.
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThat(s.timeline(TENANT, MAIN).gcCutoff()).isEqualTo(cutoff);
      assertPages(s.timeline(TENANT, MAIN), w, cutoff, end, 10);
    }
    LayerStoreTest.deleteTree(data.resolve("index"));
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = s.timeline(TENANT, MAIN);
      assertThat(t.gcCutoff()).isEqualTo(cutoff);
      assertPages(t, w, cutoff, end, 10);
    }
  }

  /**
   * GC deletes a file only when none of its versions is needed; an L0 layer of which only a few
   * pages are still needed is rewritten by the next compaction instead, so its dead space comes
   * back without waiting for {@code compaction_threshold} L0 layers.
   */
  @Test
  void compactionRewritesTheLayersGcLeftMostlyDead() throws IOException {
    // Never merges L0 layers nor creates images by count: what it does here is the rewrite. The
    // smallest target size, so that the few KiB these layers hold are worth rewriting.
    CompactionSettings rewriteOnly = new CompactionSettings(8192, 1000, 1000, 2);
    Workload w;
    Lsn cutoff;
    Lsn end;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      w = new Workload(t, START);
      Random r = new Random(5);
      w.ingest(3000, KEYS, r);
      t.checkpoint();
      // A quarter of the keys are not written again: their old versions stay needed.
      cutoff = w.ingest(3000, KEYS * 3 / 4, r);
      t.checkpoint();
      end = w.ingest(200, KEYS, r);
      t.checkpoint();
      int l0Before = t.layerStats().l0();
      assertThat(t.compact(rewriteOnly, MODEL).didSomething())
          .as("nothing to rewrite before a GC")
          .isFalse();

      GcResult gc = s.gc(TENANT, MAIN, cutoff);
      assertThat(gc.versionsRemoved()).isPositive();
      long bytesBefore = layerBytes(t.dir());
      CompactionResult c = t.compact(rewriteOnly, MODEL);
      assertThat(c.rewritten()).isPositive();
      assertThat(c.l0Merged()).isZero();
      assertThat(c.l1Written()).isPositive();
      assertThat(t.layerStats().l0()).isEqualTo(l0Before - gc.layersRemoved() - c.rewritten());
      assertThat(layerBytes(t.dir()))
          .as("the rewrite returns space")
          .isLessThan(bytesBefore - c.bytesRemoved() / 2);
      assertPages(t, w, cutoff, end, 20);
      assertThat(t.compact(rewriteOnly, MODEL).rewritten())
          .as("what was rewritten is alive")
          .isZero();
    }
    assertPagesAfterRestartAndRebuild(w, cutoff, end);
  }

  @Test
  void gcStopsAtAChildsBranchPointAndAtPinnedLsns() throws Exception {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      Workload w = new Workload(t, START);
      Random r = new Random(3);
      Lsn pinned = w.ingest(1000, KEYS, r);
      Lsn branchPoint = w.ingest(1000, KEYS, r);
      TimelineId child = TimelineId.generate();
      s.branch(TENANT, child, MAIN, Optional.of(branchPoint));
      Lsn end = w.ingest(2000, KEYS, r);
      t.checkpoint();
      t.compact(AGGRESSIVE, MODEL);

      AutoCloseable pin = t.pin(pinned);
      assertThat(s.gc(TENANT, MAIN, end).cutoff()).isEqualTo(pinned);
      assertPages(t, w, pinned, end, 5);
      pin.close();
      assertThat(s.gc(TENANT, MAIN, end).cutoff()).isEqualTo(branchPoint);
      Timeline c = s.timeline(TENANT, child);
      for (int k = 0; k < KEYS; k++) {
        Key key = LayerStoreTest.block(k);
        assertThat(rebuild(c.history(key, branchPoint)))
            .isEqualTo(rebuild(w.expected(key, branchPoint)));
      }
      assertThatThrownBy(() -> t.pin(pinned))
          .isInstanceOf(LayerStoreException.class)
          .hasMessageContaining("below its GC cutoff");
    }
  }

  @Test
  void layerFilesLeftByACrashAroundACommitAreDeletedAtTheNextStart() throws IOException {
    Workload w;
    Lsn end;
    Path saved = Files.createDirectories(data.resolve("saved"));
    List<Path> l0Files = new ArrayList<>();
    try (LayerStore s = LayerStore.open(data.resolve("ps"), SMALL)) {
      Timeline t = root(s);
      w = new Workload(t, START);
      end = w.ingest(3000, KEYS, new Random(4));
      t.checkpoint();
      try (Stream<Path> files = Files.list(t.dir())) {
        for (Path f : files.filter(p -> p.toString().endsWith(".layer")).toList()) {
          l0Files.add(f);
          Files.copy(f, saved.resolve(f.getFileName()));
        }
      }
      t.compact(new CompactionSettings(64 * 1024, 3, 100, 1), MODEL);
      assertThat(l0Files).noneMatch(Files::exists);
    }
    // A crash after the commit but before the replaced files were deleted leaves them behind.
    for (Path f : l0Files) {
      Files.copy(saved.resolve(f.getFileName()), f, StandardCopyOption.REPLACE_EXISTING);
    }
    try (LayerStore s = LayerStore.open(data.resolve("ps"), SMALL)) {
      assertThat(l0Files).noneMatch(Files::exists);
      assertPages(s.timeline(TENANT, MAIN), w, START.plus(64), end, 10);
    }
  }
}
