package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A snapshot's layer files (ADR 0028): a timeline with images, WAL records and deleted keys, a
 * branch of it, exported at an LSN and imported into another store as a root timeline, which has
 * exactly the source's keys with the source's values at that LSN (images copied, the rest
 * materialized), also after a restart; a damaged file leaves no timeline.
 */
class SnapshotLayersTest {
  @TempDir Path dir;

  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId ROOT = TimelineId.parse("11111111111111111111111111111111");
  private static final TimelineId BRANCH = TimelineId.parse("22222222222222222222222222222222");
  private static final TimelineId COPY = TimelineId.parse("33333333333333333333333333333333");
  private static final Lsn START = Lsn.parse("0/1000028");

  /** What WAL redo would make: a function of the key and the LSN, so the test can expect it. */
  private static final ImageSource REDO =
      (t, k, lsn) -> ("redo " + k + " at " + lsn).getBytes(StandardCharsets.UTF_8);

  private record Source(Timeline branch, Lsn at, List<Key> keys) {}

  /** 60 keys on the root, some deleted, some with records on top; a branch that changes more. */
  private static Source source(LayerStore s) {
    s.createTenant(TENANT);
    Timeline root = s.createRootTimeline(TENANT, ROOT, START, 42, 15);
    Random r = new Random(7);
    Lsn lsn = START;
    for (int i = 0; i < 60; i++) {
      Lsn end = lsn.plus(64);
      root.put(LayerStoreTest.block(i), end, LayerStoreTest.image(i));
      root.finishRecord(end, lsn);
      lsn = end;
    }
    for (int i = 0; i < 40; i++) {
      Lsn end = lsn.plus(64);
      int k = r.nextInt(60);
      root.put(LayerStoreTest.block(k), end, LayerStoreTest.record(i));
      root.finishRecord(end, lsn);
      lsn = end;
    }
    root.checkpoint();
    Timeline branch = s.branch(TENANT, BRANCH, ROOT, Optional.empty());
    for (int k = 0; k < 5; k++) { // deleted on the branch
      Lsn end = lsn.plus(64);
      branch.put(LayerStoreTest.block(k), end, Value.TOMBSTONE);
      branch.finishRecord(end, lsn);
      lsn = end;
    }
    Lsn end = lsn.plus(64);
    branch.put(LayerStoreTest.block(100), end, LayerStoreTest.image(100)); // new on the branch
    branch.finishRecord(end, lsn);
    branch.checkpoint();
    List<Key> keys = new ArrayList<>();
    for (int k = 5; k < 60; k++) {
      keys.add(LayerStoreTest.block(k));
    }
    keys.add(LayerStoreTest.block(100));
    return new Source(branch, end, keys);
  }

  private static byte[] expected(Timeline t, Key k, Lsn at) {
    Version v = t.newest(k, at).orElseThrow();
    return v.value() instanceof Value.Image i ? i.bytes() : REDO.image(t, k, at);
  }

  @Test
  void aSnapshotImportedIntoAnotherStoreHasTheSameKeysAndValues() throws IOException {
    Path staging = Files.createDirectories(dir.resolve("staging"));
    List<Path> files = new ArrayList<>();
    Source src;
    List<byte[]> want = new ArrayList<>();
    try (LayerStore a = LayerStore.open(dir.resolve("a"), LayerStoreConfig.DEFAULT)) {
      src = source(a);
      SnapshotLayers.Exported e =
          SnapshotLayers.export(
              src.branch(),
              src.at(),
              REDO,
              staging,
              7,
              (seq, f) -> {
                Path kept = dir.resolve("file" + seq);
                Files.move(f, kept);
                files.add(kept);
              });
      assertThat(e.keys()).isEqualTo(src.keys().size());
      assertThat(e.files()).isEqualTo((src.keys().size() + 6) / 7).isEqualTo(files.size());
      for (Key k : src.keys()) {
        want.add(expected(src.branch(), k, src.at()));
      }
    }
    SnapshotManifest m =
        new SnapshotManifest(
            src.at(), Lsn.INVALID, 42, 15, TENANT, BRANCH, "b", Instant.now(), List.of());
    Path b = dir.resolve("b");
    try (LayerStore s = LayerStore.open(b, LayerStoreConfig.DEFAULT)) {
      s.createTenant(TENANT);
      Timeline t = SnapshotLayers.importAsRoot(s, TENANT, COPY, m, files);
      check(t, src, want);
      assertThat(t.diskConsistentLsn()).isEqualTo(src.at());
      assertThat(t.layerStats().images()).isEqualTo(files.size());
    }
    try (LayerStore s = LayerStore.open(b, LayerStoreConfig.DEFAULT)) {
      Timeline t = s.timeline(TENANT, COPY);
      check(t, src, want);
      assertThat(t.metadata().ancestorId()).isEmpty();
      assertThat(t.metadata().systemId()).isEqualTo(42);
    }
  }

  private static void check(Timeline t, Source src, List<byte[]> want) {
    assertThat(t.lastRecordLsn()).isEqualTo(src.at());
    assertThat(t.startLsn()).isEqualTo(src.at());
    List<Key> keys = new ArrayList<>();
    for (Optional<Key> k = t.nextKey(Key.MIN, Key.MAX, src.at());
        k.isPresent();
        k = t.nextKey(k.get().next(), Key.MAX, src.at())) {
      keys.add(k.get());
    }
    assertThat(keys).isEqualTo(src.keys());
    for (int i = 0; i < keys.size(); i++) {
      Version v = t.newest(keys.get(i), src.at()).orElseThrow();
      assertThat(v.lsn()).isEqualTo(src.at());
      assertThat(((Value.Image) v.value()).bytes()).as("%s", keys.get(i)).isEqualTo(want.get(i));
    }
  }

  @Test
  void aDamagedFileLeavesNoTimeline() throws IOException {
    Path staging = Files.createDirectories(dir.resolve("staging"));
    List<Path> files = new ArrayList<>();
    Lsn at;
    try (LayerStore a = LayerStore.open(dir.resolve("a"), LayerStoreConfig.DEFAULT)) {
      Source src = source(a);
      at = src.at();
      SnapshotLayers.export(src.branch(), at, REDO, staging, 20, (seq, f) -> files.add(f));
    }
    Path last = files.getLast();
    byte[] bytes = Files.readAllBytes(last);
    bytes[200] ^= 1; // inside the first blob
    Files.write(last, bytes);
    SnapshotManifest m =
        new SnapshotManifest(at, Lsn.INVALID, 42, 15, TENANT, BRANCH, "", Instant.now(), List.of());
    try (LayerStore s = LayerStore.open(dir.resolve("b"), LayerStoreConfig.DEFAULT)) {
      s.createTenant(TENANT);
      assertThatThrownBy(() -> SnapshotLayers.importAsRoot(s, TENANT, COPY, m, files))
          .isInstanceOf(LayerStoreException.class)
          .hasMessageStartingWith("corrupt layer file " + last)
          .extracting(e -> ((LayerStoreException) e).kind())
          .isEqualTo(LayerStoreException.Kind.CORRUPT_FILE);
      assertThat(s.findTimeline(TENANT, COPY)).isEmpty();
    }
    assertThat(dir.resolve("b/tenants/" + TENANT + "/timelines/" + COPY)).doesNotExist();
  }

  @Test
  void anLsnOutsideTheHistoryIsRefused() throws IOException {
    try (LayerStore a = LayerStore.open(dir.resolve("a"), LayerStoreConfig.DEFAULT)) {
      Source src = source(a);
      AtomicInteger files = new AtomicInteger();
      assertThatThrownBy(
              () ->
                  SnapshotLayers.export(
                      src.branch(),
                      src.at().plus(64),
                      REDO,
                      dir,
                      7,
                      (s, f) -> files.incrementAndGet()))
          .isInstanceOf(LayerStoreException.class)
          .hasMessageContaining("its history is");
      assertThat(files).hasValue(0);
    }
  }
}
