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
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Generations (ADR 0026) against a real directory as remote storage: the control plane's records,
 * the tenant's generation file, the index's per-layer generations, and two stores holding the same
 * tenant by mistake, the older generation's writes and deletions refused while the newer one's
 * objects stay intact.
 */
class GenerationsTest {
  @TempDir Path data;
  @TempDir Path remoteDir;

  private static final TenantId TENANT = TenantId.parse("6a1e0000000000000000000000000001");
  private static final TimelineId TL = TimelineId.parse("6a1e0000000000000000000000000002");
  private static final Lsn START = RemoteUploadsTest.START;
  private static final LayerStoreConfig SMALL = RemoteUploadsTest.SMALL;
  private static final CompactionSettings COMPACT = RemoteUploadsTest.COMPACT;
  private static final RemoteUploads.Settings FAST = RemoteUploadsTest.FAST;
  private static final Duration WAIT = RemoteUploadsTest.WAIT;

  @Test
  @SuppressWarnings("try")
  void aStaleGenerationWritesNoIndexDeletesNothingAndTheNewerOnesObjectsStayIntact()
      throws Exception {
    Path a = data.resolve("a");
    Path b = data.resolve("b");
    try (RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir))) {
      int g1 = RemoteGenerations.issue(storage, TENANT, WAIT);
      assertThat(g1).isEqualTo(1);
      try (LayerStore store = LayerStore.open(a, SMALL)) {
        store.createTenant(TENANT, g1);
        Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
        try (RemoteUploads uploads = RemoteUploads.start(store, storage, FAST)) {
          new LayerStoreTest.Workload(t, START).ingest(1200, 50, new Random(1));
          t.checkpoint();
          await(() -> t.remoteConsistentLsn().equals(t.diskConsistentLsn()), "the first upload");
        }
      }
      copyTree(a, b); // the mistake: the same tenant on a second pageserver
      int g2 = RemoteGenerations.issue(storage, TENANT, WAIT);
      assertThat(g2).isEqualTo(2);
      assertThat(RemoteGenerations.latest(storage, TENANT, WAIT)).isEqualTo(2);

      try (LayerStore older = LayerStore.open(a, SMALL);
          LayerStore newer = LayerStore.open(b, SMALL)) {
        newer.generations().raise(TENANT, g2);
        assertThat(newer.generations().of(TENANT)).isEqualTo(2);
        assertThat(older.generations().of(TENANT)).isEqualTo(1);
        Timeline to = older.timeline(TENANT, TL);
        Timeline tn = newer.timeline(TENANT, TL);
        Lsn olderRemote = to.remoteConsistentLsn();
        byte[] index1 = storage.get(RemoteIndex.indexKey(TENANT, TL, 1)).block(WAIT);
        try (RemoteUploads uo = RemoteUploads.start(older, storage, FAST);
            RemoteUploads un = RemoteUploads.start(newer, storage, FAST)) {
          // The newer generation continues from generation 1's index without uploading again.
          await(() -> exists(storage, RemoteIndex.indexKey(TENANT, TL, 2)), "index_part-2");
          RemoteIndex i2 = index(storage, 2);
          assertThat(i2.layers()).isNotEmpty().allMatch(l -> l.generation() == 1);
          assertThat(un.totals().uploads()).isZero();

          // The older one goes on ingesting and compacting: it may not write its index, advance
          // its remote-consistent LSN or delete the files its compaction retired.
          new LayerStoreTest.Workload(to, to.lastRecordLsn()).ingest(1200, 50, new Random(2));
          to.checkpoint();
          assertThat(to.compact(COMPACT, LayerStoreHistoryTest.MODEL).didSomething()).isTrue();
          RemoteTimelineClient co = uo.client(TENANT, TL).orElseThrow();
          await(
              () -> co.status().failure().orElse("").startsWith("stale: generation 1"),
              "the older generation's passes failing as stale");
          assertThat(to.remoteConsistentLsn()).isEqualTo(olderRemote);
          assertThat(storage.get(RemoteIndex.indexKey(TENANT, TL, 1)).block(WAIT))
              .isEqualTo(index1);

          // A deletion list of the older generation naming the newer one's object: refused.
          String named = i2.layers().getFirst().objectName();
          older
              .remoteDeletions()
              .enqueue(1, List.of(new DeletionList.ObjectEntry(TENANT, TL, named)));
          await(() -> uo.deletionTotals().setAside() == 1, "the stale list set aside");

          // The newer one compacts too and deletes what its own index no longer names, of
          // either generation.
          new LayerStoreTest.Workload(tn, tn.lastRecordLsn()).ingest(1200, 50, new Random(3));
          tn.checkpoint();
          assertThat(tn.compact(COMPACT, LayerStoreHistoryTest.MODEL).didSomething()).isTrue();
          await(
              () -> {
                RemoteIndex i = index(storage, 2);
                return i.diskConsistentLsn().equals(tn.diskConsistentLsn())
                    && tn.remoteConsistentLsn().equals(tn.diskConsistentLsn())
                    && i.layers().size() == tn.layerFiles().size()
                    // the pass records the remote LSN, then writes the list: wait for both
                    && un.deletionTotals().deletions() > 0
                    && newer.remoteDeletions().totals().pendingLists() == 0;
              },
              "the newer generation's upload and deletions after its compaction");
          assertThat(un.client(TENANT, TL).orElseThrow().status().failure()).isEmpty();
        }
        // Every object the newer generation's index names is there, whole.
        Map<String, Long> objects = objects(storage);
        RemoteIndex i2 = index(storage, 2);
        for (RemoteIndex.Layer l : i2.layers()) {
          assertThat(objects).containsEntry(l.objectName(), l.size());
        }
        assertThat(i2.layers()).anyMatch(l -> l.generation() == 2);
      }
    }
  }

  @Test
  void theControlPlaneIssuesIncreasingGenerationsAndTheStoreKeepsItsOwn() throws Exception {
    try (RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir))) {
      TenantId legacy = TenantId.parse("6a1e0000000000000000000000000003");
      // A tenant from before generations: objects of generation 1, no record.
      storage.put(RemoteIndex.indexKey(legacy, TL, 1), new byte[] {1}).block(WAIT);
      assertThat(RemoteGenerations.latest(storage, legacy, WAIT)).isZero();
      assertThat(RemoteGenerations.current(storage, legacy, 1, WAIT)).isTrue();
      assertThat(RemoteGenerations.issue(storage, legacy, WAIT)).isEqualTo(2);
      assertThat(RemoteGenerations.current(storage, legacy, 1, WAIT)).isFalse();
      assertThat(RemoteGenerations.current(storage, legacy, 2, WAIT)).isTrue();
      storage.put(RemoteKey.of(RemoteGenerations.prefix(legacy) + "junk"), new byte[0]).block(WAIT);
      assertThat(RemoteGenerations.issue(storage, legacy, WAIT)).isEqualTo(3);
      assertThat(RemoteGenerations.issue(storage, TENANT, WAIT)).isEqualTo(1);
      // The newest index not above a generation is the one it continues from.
      storage.put(RemoteIndex.indexKey(legacy, TL, 3), new byte[] {1}).block(WAIT);
      storage.put(RemoteIndex.indexKey(legacy, TL, 5), new byte[] {1}).block(WAIT);
      assertThat(RemoteIndex.latestIndexKey(storage, legacy, TL, 4, WAIT))
          .contains(RemoteIndex.indexKey(legacy, TL, 3));
      assertThat(RemoteIndex.latestIndexKey(storage, legacy, TL, 0, WAIT)).isEmpty();
    }

    try (LayerStore store = LayerStore.open(data, SMALL)) {
      store.createTenant(TENANT, 4);
      store.generations().raise(TENANT, 4); // the same again: nothing changes
      assertThatThrownBy(() -> store.generations().raise(TENANT, 3))
          .isInstanceOf(LayerStoreException.class)
          .hasMessageContaining("generation 3 of tenant " + TENANT + " is older than its")
          .extracting(e -> ((LayerStoreException) e).kind())
          .isEqualTo(LayerStoreException.Kind.STALE_GENERATION);
      store.generations().raise(TENANT, 6);
    }
    Path file = data.resolve("tenants").resolve(TENANT.toString()).resolve("generation");
    try (LayerStore store = LayerStore.open(data, SMALL)) {
      assertThat(store.generations().of(TENANT)).isEqualTo(6);
    }
    byte[] bytes = Files.readAllBytes(file);
    bytes[9] ^= 1;
    Files.write(file, bytes);
    try (LayerStore store = LayerStore.open(data, SMALL)) {
      assertThatThrownBy(() -> store.generations().of(TENANT))
          .hasMessageContaining("corrupt generation file " + file + ": CRC mismatch");
    }
  }

  @Test
  void aVersion1IndexIsReadWithEveryLayerInItsGeneration() {
    TimelineMetadata md =
        new TimelineMetadata(TENANT, TL, null, Lsn.INVALID, START, 42, 15, Lsn.INVALID);
    byte[] name = "a.layer".getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(124 + 2 + name.length + 12);
    b.putInt(RemoteIndex.MAGIC).putShort((short) 1).putShort((short) 0).putInt(7);
    b.put(md.toBytes()).putLong(0x2000000).putInt(1);
    b.putShort((short) name.length).put(name).putLong(10).putInt(99);
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, b.position());
    b.putInt((int) c.getValue());
    RemoteIndex i = RemoteIndex.fromBytes(b.array(), "v1");
    assertThat(i.layers()).containsExactly(new RemoteIndex.Layer("a.layer", 10, 99, 7));
    assertThat(i.layers().getFirst().objectName()).isEqualTo("a.layer-00000007");
  }

  private static RemoteIndex index(RemoteStorage storage, int generation) {
    RemoteKey k = RemoteIndex.indexKey(TENANT, TL, generation);
    return RemoteIndex.fromBytes(storage.get(k).block(WAIT), k.toString());
  }

  private static boolean exists(RemoteStorage storage, RemoteKey k) {
    try {
      storage.get(k).block(WAIT);
      return true;
    } catch (RemoteStorageException e) {
      return false;
    }
  }

  private static Map<String, Long> objects(RemoteStorage storage) {
    Map<String, Long> out = new HashMap<>();
    String prefix = RemoteIndex.timelinePrefix(TENANT, TL).path() + "/";
    for (RemoteObject o : storage.list(prefix).collectList().block(WAIT)) {
      out.put(o.key().name(), o.size());
    }
    return out;
  }

  private static void copyTree(Path from, Path to) throws Exception {
    try (Stream<Path> s = Files.walk(from)) {
      for (Path p : s.toList()) {
        Path target = to.resolve(from.relativize(p).toString());
        if (Files.isDirectory(p)) {
          Files.createDirectories(target);
        } else {
          Files.copy(p, target, StandardCopyOption.COPY_ATTRIBUTES);
        }
      }
    }
  }

  private static void await(BooleanSupplier done, String what) throws InterruptedException {
    RemoteUploadsTest.await(done, what);
  }
}
