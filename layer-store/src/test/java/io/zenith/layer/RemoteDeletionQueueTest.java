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
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The persistent remote deletion queue (ADR 0024), against a real directory (on s3proxy: {@link
 * RemoteUploadsTest#uploadsRetryWhileS3IsDownIngestGoesOnAndEverythingArrivesAfterItsRestart}):
 * after compaction and GC the timeline's prefix holds exactly what its index names, no deletion
 * ever hits an object the uploaded index names, a list left by a crash is executed at the next
 * start, a damaged list deletes nothing, and deleting a timeline or tenant empties its prefix.
 */
class RemoteDeletionQueueTest {
  @TempDir Path data;
  @TempDir Path remoteDir;

  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TenantId OTHER = TenantId.parse("fedcba9876543210fedcba9876543210");
  private static final TimelineId TL = TimelineId.parse("11111111111111111111111111111111");
  private static final TimelineId TL2 = TimelineId.parse("22222222222222222222222222222222");
  private static final Lsn START = Lsn.parse("0/1000028");
  private static final LayerStoreConfig SMALL =
      LayerStoreConfig.DEFAULT.withCheckpointDistance(64 * 1024);
  private static final CompactionSettings COMPACT = new CompactionSettings(64 * 1024, 3, 2, 2);
  private static final RemoteUploads.Settings FAST =
      RemoteUploads.Settings.DEFAULT
          .withBackoff(Duration.ofMillis(50), Duration.ofMillis(400))
          .withRescan(Duration.ofMillis(200));
  private static final Duration WAIT = Duration.ofSeconds(30);

  /**
   * The deletion hook: before every deletion, reads the timeline's index as it is in remote storage
   * and records a violation if the index names the object.
   */
  private static final class Watcher {
    final List<String> violations = new ArrayList<>();
    final List<RemoteKey> deleted = new ArrayList<>();
    volatile RemoteStorage storage;
    final AtomicBoolean crash = new AtomicBoolean();

    synchronized void deleting(RemoteKey key) {
      if (crash.get()) {
        throw new IllegalStateException("crash before deleting " + key);
      }
      deleted.add(key);
      DeletionList.ObjectEntry o = DeletionList.ObjectEntry.of(key);
      RemoteKey ik = RemoteIndex.indexKey(o.tenant(), o.id(), 1);
      byte[] b;
      try {
        b = storage.get(ik).block(WAIT);
      } catch (RemoteStorageException e) {
        return; // a deleted timeline's index goes with its prefix
      }
      for (RemoteIndex.Layer l : RemoteIndex.fromBytes(b, ik.toString()).layers()) {
        if (RemoteIndex.layerKey(o.tenant(), o.id(), l.fileName(), 1).equals(key)) {
          violations.add("deleting " + key + ", which the uploaded index names");
        }
      }
    }
  }

  @Test
  void afterCompactionAndGcThePrefixHoldsExactlyTheIndexAndNoDeletionHitsANamedObject()
      throws Exception {
    Watcher w = new Watcher();
    try (RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir));
        LayerStore store = LayerStore.open(data, SMALL)) {
      w.storage = storage;
      store.createTenant(TENANT);
      Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
      try (RemoteUploads uploads =
          RemoteUploads.start(store, storage, FAST, k -> {}, w::deleting)) {
        LayerStoreTest.Workload load = new LayerStoreTest.Workload(t, START);
        Random r = new Random(7);
        for (int round = 0; round < 4; round++) {
          load.ingest(400, 50, r);
          t.checkpoint();
          if (round == 1) {
            // compaction while passes upload: files retired before or after an index named them
            assertThat(t.compact(COMPACT, LayerStoreHistoryTest.MODEL).didSomething()).isTrue();
          }
        }
        assertThat(t.compact(COMPACT, LayerStoreHistoryTest.MODEL).didSomething()).isTrue();
        store.gc(TENANT, TL, t.diskConsistentLsn());
        t.compact(COMPACT, LayerStoreHistoryTest.MODEL);
        awaitPrefixIsTheIndex(storage, store, t);
        assertThat(uploads.deletionTotals().deletions()).isPositive();
        assertThat(uploads.deletionFailure()).isEmpty();
      }
      synchronized (w) {
        assertThat(w.violations).isEmpty();
        assertThat(w.deleted).isNotEmpty();
      }
    }
  }

  @Test
  void aListLeftByACrashIsExecutedAtTheNextStartAndADamagedListDeletesNothing() throws Exception {
    Watcher w = new Watcher();
    try (RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir))) {
      w.storage = storage;
      Set<String> before;
      try (LayerStore store = LayerStore.open(data, SMALL)) {
        store.createTenant(TENANT);
        Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
        LayerStoreTest.Workload load = new LayerStoreTest.Workload(t, START);
        try (RemoteUploads uploads =
            RemoteUploads.start(store, storage, FAST, k -> {}, w::deleting)) {
          load.ingest(1200, 50, new Random(3));
          t.checkpoint();
          awaitPrefixIsTheIndex(storage, store, t);
          w.crash.set(true); // the "process dies" after the index upload, before any deletion
          assertThat(t.compact(COMPACT, LayerStoreHistoryTest.MODEL).didSomething()).isTrue();
          await(() -> uploads.deletionTotals().failures() > 0, "a failed deletion");
          assertThat(uploads.deletionTotals().pendingLists()).isPositive();
        }
        assertThat(lists(store)).isNotEmpty();
        before = prefix(storage, TL);
        assertThat(before).hasSizeGreaterThan(indexed(storage, TL).size());
      }
      w.crash.set(false);
      try (LayerStore store = LayerStore.open(data, SMALL)) {
        Timeline t = store.timeline(TENANT, TL);
        assertThat(store.remoteDeletions().totals().pendingLists()).isPositive();
        // A damaged list, naming an object the index names: set aside, nothing deleted.
        String named = indexed(storage, TL).iterator().next();
        DeletionList bad =
            new DeletionList(
                1_000_000, 1, List.of(new DeletionList.ObjectEntry(TENANT, TL, named)));
        byte[] b = bad.toBytes();
        b[b.length - 5] ^= 1;
        Path badFile = data.resolve("deletion").resolve(RemoteDeletionQueue.fileName(1_000_000));
        Files.write(badFile, b);
        try (RemoteUploads uploads =
            RemoteUploads.start(store, storage, FAST, k -> {}, w::deleting)) {
          awaitPrefixIsTheIndex(storage, store, t);
          await(() -> uploads.deletionTotals().setAside() == 1, "the damaged list set aside");
          assertThat(uploads.deletionTotals().pendingLists()).isZero();
        }
        assertThat(prefix(storage, TL)).contains(named);
        assertThat(lists(store)).isEmpty();
        assertThat(badFile.resolveSibling(badFile.getFileName() + RemoteDeletionQueue.CORRUPT))
            .exists();
      }
      synchronized (w) {
        assertThat(w.violations).isEmpty();
      }
    }
  }

  @Test
  void aFileUploadedAndRetiredBeforeAnyIndexNamedItIsDeletedAfterTheNextIndex() throws Exception {
    Watcher w = new Watcher();
    try (RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir));
        LayerStore store = LayerStore.open(data, SMALL)) {
      w.storage = storage;
      store.createTenant(TENANT);
      Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
      new LayerStoreTest.Workload(t, START).ingest(1200, 50, new Random(13));
      t.checkpoint();
      String first = t.layerFiles().getFirst().fileName() + "-00000001";
      CountDownLatch uploaded = new CountDownLatch(1);
      CountDownLatch compacted = new CountDownLatch(1);
      // the first pass stops after its first upload, until a compaction retired that file
      Seams.install(
          seam -> {
            if (seam == Seams.Seam.REMOTE_LAYER_UPLOADED && uploaded.getCount() > 0) {
              uploaded.countDown();
              try {
                assertThat(compacted.await(30, TimeUnit.SECONDS)).isTrue();
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
            }
          });
      try (RemoteUploads uploads =
          RemoteUploads.start(store, storage, FAST, k -> {}, w::deleting)) {
        assertThat(uploaded.await(30, TimeUnit.SECONDS)).isTrue();
        assertThat(prefix(storage, TL)).containsExactly(first); // no index yet
        try {
          assertThat(t.compact(COMPACT, LayerStoreHistoryTest.MODEL).didSomething()).isTrue();
        } finally {
          compacted.countDown();
        }
        assertThat(t.layerFiles()).extracting(LayerFileInfo::fileName).doesNotContain(first);
        awaitPrefixIsTheIndex(storage, store, t);
        assertThat(uploads.deletionTotals().deletions()).isPositive();
      } finally {
        Seams.clear();
      }
      synchronized (w) {
        assertThat(w.deleted).contains(RemoteIndex.timelinePrefix(TENANT, TL).resolve(first));
        assertThat(w.violations).isEmpty();
      }
    }
  }

  @Test
  void aDeletionCutShortIsFinishedAtTheNextStart() throws Exception {
    try (RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir))) {
      Set<String> before;
      try (LayerStore store = LayerStore.open(data, SMALL)) {
        store.createTenant(TENANT);
        Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
        try (RemoteUploads uploads = RemoteUploads.start(store, storage, FAST)) {
          new LayerStoreTest.Workload(t, START).ingest(1200, 50, new Random(9));
          t.checkpoint();
          awaitPrefixIsTheIndex(storage, store, t);
          before = prefix(storage, TL);
          // the "crash": every execution stops after the list's first object
          Seams.install(
              seam -> {
                if (seam == Seams.Seam.REMOTE_DELETION_PARTIAL) {
                  throw new IllegalStateException("crash at " + seam.settingName());
                }
              });
          try {
            assertThat(t.compact(COMPACT, LayerStoreHistoryTest.MODEL).didSomething()).isTrue();
            await(() -> uploads.deletionTotals().failures() > 0, "a deletion cut short");
            assertThat(uploads.deletionFailure())
                .hasValueSatisfying(f -> assertThat(f).contains("remote-deletion-partial"));
          } finally {
            Seams.clear();
          }
        }
        assertThat(lists(store)).isNotEmpty();
        Set<String> after = prefix(storage, TL);
        Set<String> gone = new TreeSet<>(before);
        gone.removeAll(after);
        Set<String> left = new TreeSet<>(after);
        left.removeAll(indexed(storage, TL));
        left.remove("index_part-00000001");
        assertThat(gone).as("half done: some retired objects deleted").isNotEmpty();
        assertThat(left).as("half done: not all").isNotEmpty();
      }
      try (LayerStore store = LayerStore.open(data, SMALL);
          RemoteUploads uploads = RemoteUploads.start(store, storage, FAST)) {
        awaitPrefixIsTheIndex(storage, store, store.timeline(TENANT, TL));
        assertThat(uploads.deletionTotals().deletions()).isPositive();
      }
    }
  }

  @Test
  void theListFormatRoundTripsAndRefusesDamageAndForeignPaths() {
    DeletionList list =
        new DeletionList(
            5,
            1,
            List.of(
                new DeletionList.ObjectEntry(TENANT, TL, "a.layer-00000001"),
                new DeletionList.PrefixEntry(TENANT, Optional.of(TL)),
                new DeletionList.PrefixEntry(OTHER, Optional.empty())));
    byte[] b = list.toBytes();
    assertThat(DeletionList.fromBytes(b, "x")).isEqualTo(list);
    assertThat(list.entries().get(2).path()).isEqualTo("tenants/" + OTHER + "/");
    byte[] damaged = b.clone();
    damaged[30] ^= 1;
    assertThatThrownBy(() -> DeletionList.fromBytes(damaged, "l"))
        .isInstanceOf(LayerStoreException.class)
        .hasMessage("corrupt deletion list l: CRC mismatch");
    // A list with a valid CRC that names something outside a tenant's prefix is refused too.
    byte[] foreign = new DeletionList(6, 1, List.of()).toBytes();
    byte[] withEntry = new byte[foreign.length + 3 + 2];
    System.arraycopy(foreign, 0, withEntry, 0, 24);
    java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(withEntry);
    bb.putInt(20, 1).position(24);
    bb.put((byte) 2)
        .putShort((short) 2)
        .put("a/".getBytes(java.nio.charset.StandardCharsets.UTF_8));
    java.util.zip.CRC32C c = new java.util.zip.CRC32C();
    c.update(withEntry, 0, withEntry.length - 4);
    bb.putInt((int) c.getValue());
    assertThatThrownBy(() -> DeletionList.fromBytes(withEntry, "f"))
        .isInstanceOf(LayerStoreException.class)
        .hasMessageContaining("bad entry of kind 2: \"a/\"");
  }

  @Test
  void deletingATimelineOrATenantEmptiesItsPrefixAlsoAfterACrash() throws Exception {
    try (RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir))) {
      try (LayerStore store = LayerStore.open(data, SMALL)) {
        store.createTenant(TENANT);
        store.createTenant(OTHER);
        List<Timeline> all = new ArrayList<>();
        all.add(store.createRootTimeline(TENANT, TL, START, 42, 15));
        all.add(store.createRootTimeline(TENANT, TL2, START, 42, 15));
        all.add(store.createRootTimeline(OTHER, TL, START, 42, 15));
        try (RemoteUploads uploads = RemoteUploads.start(store, storage, FAST)) {
          int seed = 0;
          for (Timeline t : all) {
            new LayerStoreTest.Workload(t, START).ingest(300, 50, new Random(seed++));
            t.checkpoint();
          }
          for (Timeline t : all) {
            awaitPrefixIsTheIndex(storage, store, t);
          }
          // The deletion of TL2 "crashes" after its mark: the next start finishes it.
          assertThatThrownBy(
                  () ->
                      store.deleteTimeline(
                          TENANT,
                          TL2,
                          () -> {},
                          step -> {
                            if (step == TimelineDeletion.Step.MARKED) {
                              throw new IllegalStateException("crash");
                            }
                          }))
              .hasMessage("crash");
          store.deleteTenant(OTHER, id -> {});
          await(() -> list(storage, "tenants/" + OTHER + "/").isEmpty(), "OTHER's prefix empty");
          await(() -> uploads.deletionTotals().pendingLists() == 0, "no list left");
          assertThat(uploads.deletionTotals().deletions()).isPositive();
        }
      }
      try (LayerStore store = LayerStore.open(data, SMALL);
          RemoteUploads uploads = RemoteUploads.start(store, storage, FAST)) {
        await(() -> prefix(storage, TL2).isEmpty(), "TL2's prefix empty after the restart");
        Timeline t = store.timeline(TENANT, TL);
        awaitPrefixIsTheIndex(storage, store, t);
        store.deleteTimeline(TENANT, TL);
        await(() -> list(storage, "tenants/").isEmpty(), "every prefix empty");
        await(() -> uploads.deletionTotals().pendingLists() == 0, "no list left");
        assertThat(lists(store)).isEmpty();
      }
    }
  }

  /**
   * Waits until the timeline's prefix holds exactly its index and the objects the index names, the
   * index names the timeline's local files and the queue has nothing pending.
   */
  static void awaitPrefixIsTheIndex(RemoteStorage storage, LayerStore store, Timeline t)
      throws Exception {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (true) {
      try {
        Set<String> expected = new TreeSet<>();
        for (LayerFileInfo f : t.layerFiles()) {
          expected.add(f.fileName() + "-00000001");
        }
        assertThat(expected).isNotEmpty();
        assertThat(indexed(storage, t.tenant(), t.id())).isEqualTo(expected);
        expected.add("index_part-00000001");
        assertThat(prefix(storage, t.tenant(), t.id())).isEqualTo(expected);
        assertThat(store.remoteDeletions().totals().pendingLists()).isZero();
        return;
      } catch (AssertionError | RemoteStorageException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
        Thread.sleep(50);
      }
    }
  }

  private static Set<String> indexed(RemoteStorage storage, TimelineId tl) {
    return indexed(storage, TENANT, tl);
  }

  /** The object names the timeline's uploaded index names. */
  private static Set<String> indexed(RemoteStorage storage, TenantId tenant, TimelineId tl) {
    RemoteKey ik = RemoteIndex.indexKey(tenant, tl, 1);
    Set<String> out = new TreeSet<>();
    for (RemoteIndex.Layer l :
        RemoteIndex.fromBytes(storage.get(ik).block(WAIT), ik.toString()).layers()) {
      out.add(l.fileName() + "-00000001");
    }
    return out;
  }

  private static Set<String> prefix(RemoteStorage storage, TimelineId tl) {
    return prefix(storage, TENANT, tl);
  }

  private static Set<String> prefix(RemoteStorage storage, TenantId tenant, TimelineId tl) {
    Set<String> out = new TreeSet<>();
    for (RemoteObject o : list(storage, RemoteIndex.timelinePrefix(tenant, tl).path() + "/")) {
      out.add(o.key().name());
    }
    return out;
  }

  private static List<RemoteObject> list(RemoteStorage storage, String prefix) {
    return storage.list(prefix).collectList().block(WAIT);
  }

  private static Set<Path> lists(LayerStore store) throws Exception {
    Set<Path> out = new HashSet<>();
    try (Stream<Path> s = Files.list(store.dataDir().resolve("deletion"))) {
      s.filter(p -> p.toString().endsWith(RemoteDeletionQueue.SUFFIX)).forEach(out::add);
    }
    return out;
  }

  private static void await(BooleanSupplier done, String what) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (!done.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("waited " + WAIT + " for " + what);
      }
      Thread.sleep(20);
    }
  }
}
