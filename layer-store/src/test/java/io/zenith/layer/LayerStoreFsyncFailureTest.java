package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Fsync;
import io.zenith.wal.FsyncFailedException;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.testing.FsyncSpy;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.rocksdb.RocksDBException;
import org.rocksdb.Status;

/**
 * A failed fsync of a layer file, of the timeline metadata or of a synced RocksDB commit (through
 * the {@link Fsync} seam) is the fatal {@link FsyncFailedException} naming the path; it is not
 * retried, and the timeline's disk-consistent LSN stays where the last commit left it, also after a
 * restart.
 */
@SuppressWarnings("try") // installed devices are held, not used
class LayerStoreFsyncFailureTest {
  @TempDir Path data;

  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId TIMELINE = TimelineId.parse("11111111111111111111111111111111");
  private static final Lsn START = Lsn.parse("0/1000028");

  private static Timeline root(LayerStore s) {
    s.createTenant(TENANT);
    return s.createRootTimeline(TENANT, TIMELINE, START, 42, 15);
  }

  /** Ingests a few versions and freezes them: one frozen layer waits for its flush. */
  private static Lsn ingestAndFreeze(Timeline t) {
    Lsn at = START;
    for (int i = 0; i < 10; i++) {
      Lsn end = at.plus(64);
      t.put(LayerStoreTest.block(i), end, LayerStoreTest.image(i));
      t.finishRecord(end, at);
      at = end;
    }
    assertThat(t.freezeIfDue(true)).isTrue();
    return at;
  }

  private static boolean isLayerTemp(Path p) {
    return p.getFileName().toString().endsWith(TimelineFiles.LAYER + ".tmp");
  }

  @Test
  void aFailedLayerFileFsyncIsFatalNotRetriedAndNothingIsCommitted() {
    FsyncSpy spy = FsyncSpy.failing(1, LayerStoreFsyncFailureTest::isLayerTemp);
    try (LayerStore s = LayerStore.open(data, LayerStoreConfig.DEFAULT)) {
      Timeline t = root(s);
      ingestAndFreeze(t);
      Lsn before = t.diskConsistentLsn();
      try (Fsync.Installed i = spy.install()) {
        assertThatThrownBy(t::flushOldestFrozen)
            .isInstanceOfSatisfying(
                FsyncFailedException.class,
                e -> {
                  assertThat(isLayerTemp(e.path())).as("%s", e.path()).isTrue();
                  assertThat(e.getMessage()).contains(FsyncSpy.EIO);
                });
      }
      assertThat(spy.calls().stream().filter(LayerStoreFsyncFailureTest::isLayerTemp)).hasSize(1);
      assertThat(t.diskConsistentLsn()).isEqualTo(before);
      assertThat(t.frozenCount()).isEqualTo(1);
    }
    try (LayerStore s = LayerStore.open(data, LayerStoreConfig.DEFAULT)) {
      // nothing was ever committed for the new root timeline
      assertThat(s.timeline(TENANT, TIMELINE).diskConsistentLsn()).isEqualTo(Lsn.INVALID);
    }
  }

  @Test
  void aFailedSyncedIndexCommitIsFatalAndTheDiskConsistentLsnStays() {
    Path index = data.resolve("index");
    // the flush's synced writes: the layer id, then the commit of layer and state
    FsyncSpy spy = FsyncSpy.failing(2, index::equals);
    try (LayerStore s = LayerStore.open(data, LayerStoreConfig.DEFAULT)) {
      Timeline t = root(s);
      ingestAndFreeze(t);
      Lsn before = t.diskConsistentLsn();
      try (Fsync.Installed i = spy.install()) {
        assertThatThrownBy(t::flushOldestFrozen)
            .isInstanceOfSatisfying(
                FsyncFailedException.class, e -> assertThat(e.path()).isEqualTo(index));
      }
      assertThat(spy.count(index)).isEqualTo(2);
      assertThat(t.diskConsistentLsn()).isEqualTo(before);
    }
    try (LayerStore s = LayerStore.open(data, LayerStoreConfig.DEFAULT)) {
      // nothing was ever committed for the new root timeline
      assertThat(s.timeline(TENANT, TIMELINE).diskConsistentLsn()).isEqualTo(Lsn.INVALID);
    }
  }

  @Test
  void aFailedTimelineMetadataFsyncIsFatal() {
    FsyncSpy spy = FsyncSpy.failingName(1, TimelineMetadata.FILE_NAME + ".tmp");
    try (LayerStore s = LayerStore.open(data, LayerStoreConfig.DEFAULT)) {
      s.createTenant(TENANT);
      try (Fsync.Installed i = spy.install()) {
        assertThatThrownBy(() -> s.createRootTimeline(TENANT, TIMELINE, START, 42, 15))
            .isInstanceOfSatisfying(
                FsyncFailedException.class,
                e ->
                    assertThat(e.path().getFileName().toString())
                        .isEqualTo(TimelineMetadata.FILE_NAME + ".tmp"));
      }
      assertThat(
              spy.calls().stream()
                  .filter(p -> p.getFileName().toString().startsWith(TimelineMetadata.FILE_NAME)))
          .hasSize(1);
    }
  }

  @Test
  void rocksDbIoErrorsOfSyncedWritesAreFailedFsyncsButNoSpaceIsNot() {
    assertThat(
            LayerIndex.isSyncFailure(
                new RocksDBException(
                    "While fsync: a file: Input/output error",
                    new Status(Status.Code.IOError, Status.SubCode.None, "fsync"))))
        .isTrue();
    assertThat(
            LayerIndex.isSyncFailure(
                new RocksDBException(
                    "No space left on device",
                    new Status(Status.Code.IOError, Status.SubCode.NoSpace, "append"))))
        .isFalse();
    assertThat(
            LayerIndex.isSyncFailure(
                new RocksDBException(
                    "busy", new Status(Status.Code.Busy, Status.SubCode.None, "busy"))))
        .isFalse();
    assertThat(LayerIndex.isSyncFailure(new RocksDBException("no status"))).isFalse();
  }
}
