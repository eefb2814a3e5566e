package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.layer.testing.FullLayerDisk;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A flush on a full disk ({@link FullLayerDisk}, the {@link LayerDisk} seam): it fails with
 * NO_SPACE and leaves the store exactly as it was — RocksDB's entries and the timeline's state, the
 * files of the timeline directory (no temporary file), the disk-consistent LSN, the frozen layer
 * and its versions — and, once space is back, the same flush works and writes the same versions,
 * also as a restart reads them.
 */
class LayerStoreFullDiskTest {
  @TempDir Path data;

  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId MAIN = TimelineId.parse("11111111111111111111111111111111");
  private static final Lsn START = Lsn.parse("0/1000028");
  private static final LayerStoreConfig SMALL =
      LayerStoreConfig.DEFAULT.withCheckpointDistance(64 * 1024);

  /** Everything RocksDB holds for the timeline: state, layer registry, every version's ref. */
  private static List<String> indexOf(LayerStore s) throws Exception {
    LayerIndex index = s.index();
    List<String> out = new ArrayList<>();
    out.add("state " + index.state(TENANT, MAIN));
    index.layers(TENANT, MAIN).forEach(l -> out.add("layer " + l));
    try (LayerIndex.Cursor c = index.cursor(TENANT, MAIN)) {
      for (Key k = c.ceilingKey(Key.MIN);
          k != null;
          k = k.next() == null ? null : c.ceilingKey(k.next())) {
        Key key = k;
        c.history(key, Lsn.MAX, (at, ref) -> out.add(key + "@" + at + " " + ref));
      }
    }
    return out;
  }

  private static List<String> filesIn(Path dir) {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Every version of the workload's keys as the timeline reads them at {@code lsn}. */
  private static List<Version> read(Timeline t, LayerStoreTest.Workload w, Lsn lsn) {
    List<Version> out = new ArrayList<>();
    w.model.keySet().stream().sorted().forEach(k -> out.addAll(t.history(k, lsn)));
    return out;
  }

  @Test
  void aFlushOnAFullDiskChangesNothingAndTheSameFlushWorksOnceSpaceIsBack() throws Exception {
    FullLayerDisk disk = FullLayerDisk.unlimited();
    Lsn flushed;
    Lsn end;
    List<Version> expected;
    LayerStoreTest.Workload w;
    try (LayerStore s = LayerStore.open(data, SMALL, disk)) {
      s.createTenant(TENANT);
      Timeline t = s.createRootTimeline(TENANT, MAIN, START, 42, 15);
      w = new LayerStoreTest.Workload(t, START);
      Random r = new Random(11);
      flushed = w.ingest(1000, 30, r); // some layers flushed while there is space
      t.checkpoint();
      assertThat(t.diskConsistentLsn()).isEqualTo(flushed);

      end = w.ingest(150, 30, r);
      assertThat(t.freezeIfDue(true)).isTrue();
      expected = read(t, w, end);
      Lsn durable = t.diskConsistentLsn();
      assertThat(durable).isLessThan(end);
      List<String> indexBefore = indexOf(s);
      List<String> filesBefore = filesIn(t.dir());

      // Full before the end of the layer file's header: a write fails part-way.
      disk.setFree(100);
      for (int attempt = 1; attempt <= 3; attempt++) {
        assertThatThrownBy(t::flushOldestFrozen)
            .isInstanceOf(LayerStoreException.class)
            .hasMessageContaining("No space left on device")
            .satisfies(
                e ->
                    assertThat(((LayerStoreException) e).kind())
                        .isEqualTo(LayerStoreException.Kind.NO_SPACE));
        assertThat(indexOf(s)).as("RocksDB after attempt %d", attempt).isEqualTo(indexBefore);
        assertThat(filesIn(t.dir()))
            .as("the timeline directory after attempt %d (no temp file)", attempt)
            .isEqualTo(filesBefore)
            .noneMatch(f -> f.endsWith(".tmp"));
        assertThat(t.diskConsistentLsn()).isEqualTo(durable);
        assertThat(t.frozenCount()).as("the frozen layer stays queued").isEqualTo(1);
        assertThat(read(t, w, end)).as("its versions still readable").isEqualTo(expected);
        assertThat(t.flushFailure()).contains("No space left on device");
        assertThat(t.flushFailures()).isEqualTo(attempt);
        disk.setFree(0);
      }
      assertThat(disk.refusals()).isEqualTo(3);

      disk.setFree(Long.MAX_VALUE);
      assertThat(t.flushOldestFrozen()).isTrue();
      assertThat(t.flushFailure()).isEmpty();
      assertThat(t.flushFailures()).isEqualTo(3);
      assertThat(t.frozenCount()).isZero();
      assertThat(t.diskConsistentLsn()).isEqualTo(end);
      assertThat(read(t, w, end)).isEqualTo(expected);
      List<String> added = new ArrayList<>(filesIn(t.dir()));
      added.removeAll(filesBefore);
      assertThat(added).as("one new layer file").hasSize(1).allMatch(f -> f.endsWith(".layer"));
    }

    // A restart reads the same versions from the layer files.
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = s.timeline(TENANT, MAIN);
      assertThat(t.diskConsistentLsn()).isEqualTo(end);
      assertThat(read(t, w, end)).isEqualTo(expected);
    }
  }

  @Test
  void aCheckpointOnAFullDiskFailsAndLeavesEverythingFrozen() {
    FullLayerDisk disk = FullLayerDisk.withFree(0);
    try (LayerStore s = LayerStore.open(data, SMALL, disk)) {
      s.createTenant(TENANT);
      Timeline t = s.createRootTimeline(TENANT, MAIN, START, 42, 15);
      LayerStoreTest.Workload w = new LayerStoreTest.Workload(t, START);
      Random r = new Random(12);
      // Each ingest freezes a layer or more and tries to flush it: they all stay queued.
      assertThatThrownBy(() -> w.ingest(3000, 30, r))
          .isInstanceOf(LayerStoreException.class)
          .hasMessageContaining("No space left on device");
      int frozen = t.frozenCount();
      assertThat(frozen).isEqualTo(1);
      w.ingest(3, 30, r); // into a new open layer, which the checkpoint freezes
      assertThat(t.diskConsistentLsn()).isEqualTo(Lsn.INVALID);
      assertThatThrownBy(t::checkpoint)
          .isInstanceOf(LayerStoreException.class)
          .hasMessageContaining("No space left on device");
      assertThat(t.frozenCount()).isEqualTo(frozen + 1);
      assertThat(filesIn(t.dir())).noneMatch(f -> f.endsWith(".layer") || f.endsWith(".tmp"));

      disk.setFree(Long.MAX_VALUE);
      Lsn last = t.lastRecordLsn();
      t.checkpoint();
      assertThat(t.frozenCount()).isZero();
      assertThat(t.diskConsistentLsn()).isEqualTo(last);
    }
  }
}
