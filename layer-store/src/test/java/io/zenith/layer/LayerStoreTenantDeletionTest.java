package io.zenith.layer;

import static io.zenith.layer.LayerStoreTest.block;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.Serial;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.rocksdb.RocksDBException;

/**
 * Tenant deletion: it removes every timeline of the tenant (index and files) and nothing of another
 * tenant, refuses an unknown tenant, and a crash after its mark is finished at the next start.
 */
class LayerStoreTenantDeletionTest {
  @TempDir Path data;

  private static final TenantId GONE = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TenantId KEPT = TenantId.parse("fedcba9876543210fedcba9876543210");
  private static final TimelineId MAIN = TimelineId.parse("11111111111111111111111111111111");
  private static final TimelineId CHILD = TimelineId.parse("22222222222222222222222222222222");
  private static final Lsn START = Lsn.parse("0/1000028");
  private static final LayerStoreConfig SMALL =
      LayerStoreConfig.DEFAULT.withCheckpointDistance(64 * 1024);

  private static final class Crash extends RuntimeException {
    @Serial private static final long serialVersionUID = 1L;

    Crash() {
      super("simulated crash after the mark");
    }
  }

  /**
   * Tenant GONE with main and a branch, tenant KEPT with a main of the same timeline id (ids are
   * per tenant), all flushed; returns KEPT's workload and end.
   */
  private record Kept(LayerStoreTest.Workload w, Lsn end) {}

  private static Kept fixture(LayerStore s) {
    s.createTenant(GONE);
    Timeline main = s.createRootTimeline(GONE, MAIN, START, 42, 15);
    LayerStoreTest.Workload mw = new LayerStoreTest.Workload(main, START);
    Lsn branchPoint = mw.ingest(800, 20, new Random(1));
    main.checkpoint();
    Timeline child = s.branch(GONE, CHILD, MAIN, Optional.of(branchPoint));
    new LayerStoreTest.Workload(child, branchPoint).ingest(800, 20, new Random(2));
    child.checkpoint();
    s.createTenant(KEPT);
    Timeline kept = s.createRootTimeline(KEPT, MAIN, START, 43, 15);
    LayerStoreTest.Workload kw = new LayerStoreTest.Workload(kept, START);
    Lsn end = kw.ingest(800, 20, new Random(3));
    kept.checkpoint();
    return new Kept(kw, end);
  }

  private Path tenantDir(TenantId t) {
    return data.resolve("tenants").resolve(t.toString());
  }

  private static void assertGone(LayerStore s, Path dir) throws RocksDBException {
    assertThat(s.tenants()).containsExactly(KEPT);
    assertThat(dir).doesNotExist();
    assertThat(TenantDeletion.markedDir(dir)).doesNotExist();
    for (TimelineId id : List.of(MAIN, CHILD)) {
      assertThat(s.index().state(GONE, id)).isNull();
      assertThat(s.index().layers(GONE, id)).isEmpty();
      try (LayerIndex.Cursor c = s.index().cursor(GONE, id)) {
        assertThat(c.ceilingKey(Key.MIN)).isNull();
      }
    }
  }

  private static void assertKeptIntact(LayerStore s, Kept k) {
    Timeline t = s.timeline(KEPT, MAIN);
    for (int i = 0; i < 20; i++) {
      assertThat(t.history(block(i), k.end())).isEqualTo(k.w().expected(block(i), k.end()));
    }
  }

  @Test
  void deletingATenantRemovesEveryTimelineOfItAndNothingOfAnother() throws Exception {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Kept k = fixture(s);
      Timeline main = s.timeline(GONE, MAIN);
      List<TimelineId> stopped = new ArrayList<>();
      s.deleteTenant(GONE, stopped::add);
      assertThat(stopped).containsExactlyInAnyOrder(MAIN, CHILD);
      assertGone(s, tenantDir(GONE));
      assertThatThrownBy(() -> s.timeline(GONE, MAIN))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.UNKNOWN_TENANT));
      // A reader that held the timeline is told it was deleted.
      assertThatThrownBy(() -> main.history(block(0), START))
          .isInstanceOf(LayerStoreException.class)
          .hasMessageContaining("deleted");
      assertKeptIntact(s, k);
    }
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThat(s.tenants()).containsExactly(KEPT);
      // The id is free again.
      s.createTenant(GONE);
      assertThat(s.timelines(GONE)).isEmpty();
    }
  }

  @Test
  void anUnknownTenantIsRefused() {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThatThrownBy(() -> s.deleteTenant(GONE, id -> {}))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> {
                assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.UNKNOWN_TENANT);
                assertThat(e.getMessage()).isEqualTo("tenant " + GONE + " not found");
              });
    }
  }

  @Test
  void aCrashAfterTheMarkIsFinishedAtTheNextStart() throws Exception {
    Kept k;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      k = fixture(s);
      assertThatThrownBy(
              () ->
                  s.deleteTenant(
                      GONE,
                      id -> {},
                      () -> {
                        throw new Crash();
                      }))
          .isInstanceOf(Crash.class);
      assertThat(TenantDeletion.markedDir(tenantDir(GONE))).isDirectory();
      // Until it finishes, the id cannot be taken again.
      assertThatThrownBy(() -> s.createTenant(GONE))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> assertThat(e.getMessage()).contains("is being deleted"));
    }
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertGone(s, tenantDir(GONE));
      assertKeptIntact(s, k);
    }
  }

  @Test
  void anInterruptedDeletionIsFinishedByDeletingAgain() throws Exception {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Kept k = fixture(s);
      assertThatThrownBy(
              () ->
                  s.deleteTenant(
                      GONE,
                      id -> {},
                      () -> {
                        throw new Crash();
                      }))
          .isInstanceOf(Crash.class);
      s.deleteTenant(GONE, id -> {});
      assertGone(s, tenantDir(GONE));
      assertKeptIntact(s, k);
    }
  }
}
