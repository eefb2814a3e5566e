package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageException;
import io.zenith.wal.remote.RemoteStorageSettings;
import io.zenith.wal.testing.S3Proxy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Uploads of layer files and of the timeline index (ADR 0023), against a real directory and a real
 * s3proxy: every committed layer file arrives with equal bytes, the index names exactly those with
 * their sizes and CRC32Cs, no index is uploaded before a file it names, the remote-consistent LSN
 * moves only after its index and survives a restart, and a stopped S3 delays uploads without
 * stopping ingest. Deletions are {@link RemoteDeletionQueueTest}'s.
 */
class RemoteUploadsTest {
  @TempDir Path data;
  @TempDir Path remoteDir;

  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId TL = TimelineId.parse("11111111111111111111111111111111");
  static final Lsn START = Lsn.parse("0/1000028");
  static final LayerStoreConfig SMALL = LayerStoreConfig.DEFAULT.withCheckpointDistance(64 * 1024);
  static final CompactionSettings COMPACT = new CompactionSettings(64 * 1024, 3, 2, 2);
  static final RemoteUploads.Settings FAST =
      RemoteUploads.Settings.DEFAULT.withBackoff(Duration.ofMillis(50), Duration.ofMillis(400));
  static final Duration WAIT = Duration.ofSeconds(30);

  /** What the upload hook saw: the keys in upload order, and a violation if one happened. */
  private static final class Recorder {
    final List<RemoteKey> order = new ArrayList<>();
    final List<String> violations = new ArrayList<>();
    int indexes;
    RemoteStorage storage;
    Timeline timeline;

    /** Runs on the upload thread, after the object's upload and before anything else of it. */
    synchronized void uploaded(RemoteKey key) {
      order.add(key);
      if (!key.name().startsWith("index_part")) {
        return;
      }
      indexes++;
      RemoteIndex index =
          RemoteIndex.fromBytes(storage.get(key).block(Duration.ofSeconds(10)), key.toString());
      for (RemoteIndex.Layer l : index.layers()) {
        RemoteKey lk = RemoteIndex.layerKey(TENANT, TL, l.fileName(), l.generation());
        if (!order.contains(lk)) {
          violations.add("index " + indexes + " names " + lk + " before its upload");
        }
      }
      // set after this hook returns: never ahead of the index just uploaded
      if (timeline.remoteConsistentLsn().isAfter(index.diskConsistentLsn())) {
        violations.add("remote-consistent LSN ahead of index " + indexes);
      }
    }
  }

  @Test
  void everyLayerFileArrivesBeforeTheIndexThatNamesItAndARestartUploadsNothingAgain()
      throws Exception {
    Recorder rec = new Recorder();
    try (RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir))) {
      rec.storage = storage;
      Lsn remoteBefore;
      try (LayerStore store = LayerStore.open(data, SMALL)) {
        store.createTenant(TENANT);
        Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
        rec.timeline = t;
        try (RemoteUploads uploads =
            RemoteUploads.start(store, storage, FAST, rec::uploaded, k -> {})) {
          LayerStoreTest.Workload w = new LayerStoreTest.Workload(t, START);
          Random r = new Random(7);
          for (int round = 0; round < 3; round++) {
            w.ingest(400, 50, r);
            t.checkpoint();
            awaitRemoteIsTheTimeline(storage, t);
          }
          assertThat(t.compact(COMPACT, LayerStoreHistoryTest.MODEL).didSomething()).isTrue();
          awaitRemoteIsTheTimeline(storage, t);
          RemoteTimelineClient.Status s = uploads.client(TENANT, TL).orElseThrow().status();
          assertThat(s.queueLength()).isZero();
          assertThat(s.failure()).isEmpty();
          assertThat(s.uploads()).isGreaterThanOrEqualTo(t.layerFiles().size());
          assertThat(uploads.totals().indexUploads()).isEqualTo(rec.indexes);
        }
        remoteBefore = t.remoteConsistentLsn();
        assertThat(remoteBefore).isEqualTo(t.diskConsistentLsn());
      }
      synchronized (rec) {
        assertThat(rec.violations).isEmpty();
        assertThat(rec.indexes).isGreaterThanOrEqualTo(4);
      }

      // After a restart: the remote-consistent LSN was durable, and only the index goes up again.
      try (LayerStore store = LayerStore.open(data, SMALL)) {
        Timeline t = store.timeline(TENANT, TL);
        rec.timeline = t;
        assertThat(t.remoteConsistentLsn()).isEqualTo(remoteBefore);
        int before;
        synchronized (rec) {
          before = rec.order.size();
        }
        try (RemoteUploads uploads =
            RemoteUploads.start(store, storage, FAST, rec::uploaded, k -> {})) {
          await(() -> uploads.totals().indexUploads() == 1, "the index uploaded after the restart");
          assertThat(uploads.totals().uploads()).isZero();
          synchronized (rec) {
            assertThat(rec.order.subList(before, rec.order.size()))
                .containsExactly(RemoteIndex.indexKey(TENANT, TL, 1));
          }
          assertRemoteIsTheTimeline(storage, t);
        }
      }
    }
  }

  @Test
  void uploadsRetryWhileS3IsDownIngestGoesOnAndEverythingArrivesAfterItsRestart() throws Exception {
    try (S3Proxy proxy = S3Proxy.start();
        RemoteStorage storage =
            RemoteStorage.open(
                proxy.settings("ps").withRetries(2, Duration.ofSeconds(1), Duration.ofSeconds(2)));
        LayerStore store = LayerStore.open(data, SMALL)) {
      store.createTenant(TENANT);
      Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
      try (RemoteUploads uploads = RemoteUploads.start(store, storage, FAST)) {
        LayerStoreTest.Workload w = new LayerStoreTest.Workload(t, START);
        Random r = new Random(11);
        w.ingest(400, 50, r);
        t.checkpoint();
        awaitRemoteIsTheTimeline(storage, t);
        Lsn uploadedBefore = t.remoteConsistentLsn();
        RemoteTimelineClient client = uploads.client(TENANT, TL).orElseThrow();

        proxy.stop();
        w.ingest(400, 50, r); // flushes go on: the local disk buffers
        t.checkpoint();
        await(() -> client.status().retries() >= 2, "retries while S3 is down");
        RemoteTimelineClient.Status down = client.status();
        assertThat(down.failure()).hasValueSatisfying(f -> assertThat(f).startsWith("transient"));
        assertThat(down.queueLength()).isPositive();
        assertThat(uploads.totals().queueLength()).isEqualTo(down.queueLength());
        assertThat(t.diskConsistentLsn()).isGreaterThan(uploadedBefore);
        assertThat(t.remoteConsistentLsn()).isEqualTo(uploadedBefore);

        proxy.restart();
        awaitRemoteIsTheTimeline(storage, t);
        assertThat(client.status().failure()).isEmpty();
        assertThat(client.status().queueLength()).isZero();

        // Deletions on S3 (ADR 0024): compaction's retired objects go, then the tenant's prefix.
        assertThat(t.compact(COMPACT, LayerStoreHistoryTest.MODEL).didSomething()).isTrue();
        RemoteDeletionQueueTest.awaitPrefixIsTheIndex(storage, store, t);
        assertThat(uploads.deletionTotals().deletions()).isPositive();
        store.deleteTenant(TENANT, id -> {});
        await(
            () -> storage.list("tenants/").collectList().block(WAIT).isEmpty(),
            "the tenant's prefix empty");
      }
    }
  }

  @Test
  void aTimelineDeletedWhileItUploadsStaysDeletedAndItsObjectsGo() throws Exception {
    try (RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir));
        LayerStore store = LayerStore.open(data, SMALL)) {
      store.createTenant(TENANT);
      Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
      RemoteUploads.Settings often = FAST.withRescan(Duration.ofMillis(100));
      try (RemoteUploads uploads = RemoteUploads.start(store, storage, often)) {
        LayerStoreTest.Workload w = new LayerStoreTest.Workload(t, START);
        w.ingest(400, 50, new Random(3));
        t.checkpoint();
        await(() -> uploads.client(TENANT, TL).isPresent(), "a queue for the timeline");
        store.deleteTimeline(TENANT, TL); // while its first passes upload
        await(() -> uploads.totals().queueLength() == 0, "the queue dropped");
        // the prefix's deletion waits for the pass in progress: nothing uploads into it later
        await(
            () ->
                storage
                    .list(RemoteIndex.timelinePrefix(TENANT, TL).path() + "/")
                    .collectList()
                    .block(WAIT)
                    .isEmpty(),
            "the timeline's prefix empty");
        Thread.sleep(300); // a few rescans and passes later
        assertThat(uploads.client(TENANT, TL)).isEmpty();
        assertThat(store.index().state(TENANT, TL)).as("the deleted state stays deleted").isNull();
        assertThat(storage.list("tenants/").collectList().block(WAIT)).isEmpty();
      }
    }
  }

  @Test
  void aCommittedFileMissingLocallyIsAFailureAndNoIndexNamesIt() throws Exception {
    try (RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir));
        LayerStore store = LayerStore.open(data, SMALL)) {
      store.createTenant(TENANT);
      Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
      new LayerStoreTest.Workload(t, START).ingest(200, 50, new Random(5));
      t.checkpoint();
      Path lost = t.dir().resolve(t.layerFiles().getFirst().fileName());
      byte[] bytes = Files.readAllBytes(lost);
      Files.delete(lost);
      try (RemoteUploads uploads = RemoteUploads.start(store, storage, FAST)) {
        await(
            () ->
                uploads
                    .client(TENANT, TL)
                    .flatMap(c -> c.status().failure())
                    .filter(f -> f.contains("committed but missing"))
                    .isPresent(),
            "the missing file in the status");
        assertThat(storage.list("tenants/").collectList().block(WAIT))
            .extracting(o -> o.key().name())
            .doesNotContain("index_part-00000001");
        assertThat(t.remoteConsistentLsn()).isEqualTo(Lsn.INVALID);
        Files.write(lost, bytes); // back: the next retry uploads everything
        awaitRemoteIsTheTimeline(storage, t);
      }
    }
  }

  @Test
  void theIndexFormatRoundTripsAndRefusesDamage() {
    TimelineMetadata md =
        new TimelineMetadata(TENANT, TL, null, Lsn.INVALID, START, 42, 15, Lsn.INVALID);
    RemoteIndex index =
        new RemoteIndex(
            1,
            md,
            Lsn.parse("0/2000000"),
            List.of(new RemoteIndex.Layer("a", 10, 7, 1), new RemoteIndex.Layer("b", 20, -1, 3)));
    byte[] b = index.toBytes();
    assertThat(RemoteIndex.fromBytes(b, "x")).isEqualTo(index);
    b[130] ^= 1;
    assertThatThrownBy(() -> RemoteIndex.fromBytes(b, "idx"))
        .isInstanceOf(LayerStoreException.class)
        .hasMessageContaining("corrupt remote index idx: CRC mismatch");
    assertThat(RemoteIndex.layerKey(TENANT, TL, "f", 1).path())
        .isEqualTo("tenants/" + TENANT + "/timelines/" + TL + "/f-00000001");
  }

  /**
   * Waits until {@link #assertRemoteIsTheTimeline} holds (a compaction changes the files, not the
   * disk-consistent LSN) and the remote-consistent LSN is the disk-consistent one.
   */
  static void awaitRemoteIsTheTimeline(RemoteStorage storage, Timeline t) throws Exception {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (true) {
      try {
        assertThat(t.remoteConsistentLsn()).isEqualTo(t.diskConsistentLsn());
        assertRemoteIsTheTimeline(storage, t);
        return;
      } catch (AssertionError | RemoteStorageException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
        Thread.sleep(50);
      }
    }
  }

  static void await(BooleanSupplier done, String what) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (!done.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("waited " + WAIT + " for " + what);
      }
      Thread.sleep(20);
    }
  }

  /**
   * The remote index names exactly the timeline's layer files with their sizes and CRC32Cs, its
   * metadata and disk-consistent LSN, and every named object holds the local file's bytes.
   */
  private static void assertRemoteIsTheTimeline(RemoteStorage storage, Timeline t)
      throws Exception {
    RemoteKey ik = RemoteIndex.indexKey(TENANT, TL, 1);
    RemoteIndex index = RemoteIndex.fromBytes(storage.get(ik).block(WAIT), ik.toString());
    assertThat(index.diskConsistentLsn()).isEqualTo(t.diskConsistentLsn());
    assertThat(index.metadata()).isEqualTo(t.metadata());
    List<RemoteIndex.Layer> expected = new ArrayList<>();
    for (LayerFileInfo f : t.layerFiles()) {
      Path p = t.dir().resolve(f.fileName());
      expected.add(
          new RemoteIndex.Layer(f.fileName(), f.size(), RemoteTimelineClient.crc32c(p), 1));
      RemoteKey k = RemoteIndex.layerKey(TENANT, TL, f.fileName(), 1);
      assertThat(storage.get(k).block(WAIT)).as(k.toString()).isEqualTo(Files.readAllBytes(p));
    }
    assertThat(index.layers()).containsExactlyElementsOf(expected);
    assertThat(expected).isNotEmpty();
    Set<String> remote = new HashSet<>();
    for (RemoteObject o :
        storage
            .list(RemoteIndex.timelinePrefix(TENANT, TL).path() + "/")
            .collectList()
            .block(WAIT)) {
      remote.add(o.key().name());
    }
    assertThat(remote).contains("index_part-00000001");
  }
}
