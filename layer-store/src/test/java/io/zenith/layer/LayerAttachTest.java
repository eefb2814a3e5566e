package io.zenith.layer;

import static io.zenith.layer.LayerStoreTest.block;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.testing.S3Proxy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * Attach, detach, download on demand and eviction (ADR 0027) against a real s3proxy: a tenant
 * uploaded by one store is attached by another that downloads no blob, reads fetch each layer once
 * however many readers want it, a damaged object is refused and the next read retries, eviction
 * keeps a budget by least recent use and never takes a file not uploaded, and a detach removes the
 * tenant locally only.
 */
class LayerAttachTest {
  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId TL = TimelineId.parse("11111111111111111111111111111111");
  private static final Lsn START = Lsn.parse("0/1000028");
  private static final LayerStoreConfig SMALL =
      LayerStoreConfig.DEFAULT.withCheckpointDistance(64 * 1024);
  private static final RemoteUploads.Settings FAST =
      RemoteUploads.Settings.DEFAULT.withBackoff(Duration.ofMillis(50), Duration.ofMillis(400));
  private static final Duration CALL = Duration.ofSeconds(20);

  private static S3Proxy proxy;
  private static int prefixes;
  private RemoteStorage storage;

  @TempDir Path source;
  @TempDir Path target;

  @BeforeAll
  static void startProxy() {
    proxy = S3Proxy.start();
  }

  @AfterAll
  static void stopProxy() {
    proxy.stop();
  }

  /** Each test its own prefix (RemoteUploadsTest's checks know one tenant id). */
  @BeforeEach
  void openStorage() {
    storage = RemoteStorage.open(proxy.settings("ps" + ++prefixes));
  }

  @AfterEach
  void closeStorage() {
    storage.close();
  }

  /**
   * Ingests into a fresh tenant of a store in {@code dir} and waits until all of it is uploaded.
   */
  private LayerStoreTest.Workload uploadTenant(Path dir, TenantId tenant) throws Exception {
    try (LayerStore store = LayerStore.open(dir, SMALL)) {
      store.createTenant(tenant);
      Timeline t = store.createRootTimeline(tenant, TL, START, 42, 15);
      try (RemoteUploads uploads = RemoteUploads.start(store, storage, FAST)) {
        LayerStoreTest.Workload w = new LayerStoreTest.Workload(t, START);
        Random r = new Random(3);
        for (int round = 0; round < 3; round++) {
          w.ingest(400, 40, r);
          t.checkpoint();
        }
        RemoteUploadsTest.awaitRemoteIsTheTimeline(storage, t);
        assertThat(uploads.client(tenant, TL).orElseThrow().status().failure()).isEmpty();
        return w;
      }
    }
  }

  private static void assertAllKeysMatch(Timeline t, LayerStoreTest.Workload w) {
    for (int k = 0; k < 40; k++) {
      assertThat(t.history(block(k), w.next))
          .as("key %d", k)
          .isEqualTo(w.expected(block(k), w.next));
    }
  }

  private static List<Path> files(Path dir, String suffix) throws Exception {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> p.getFileName().toString().endsWith(suffix)).toList();
    }
  }

  @Test
  void anAttachDownloadsNoBlobAndConcurrentReadersFetchEachLayerOnce() throws Exception {
    LayerStoreTest.Workload w = uploadTenant(source, TENANT);
    try (LayerStore store = LayerStore.open(target, SMALL)) {
      store.downloads().useStorage(storage);
      TenantAttach.Result res = TenantAttach.attach(store, storage, TENANT, 1, CALL);
      assertThat(res.timelines()).hasSize(1);
      Timeline t = store.timeline(TENANT, TL);
      int layers = t.layerFiles().size();
      assertThat(res.timelines().getFirst().layers()).isEqualTo(layers).isPositive();
      assertThat(t.diskConsistentLsn()).isEqualTo(w.next);
      assertThat(t.remoteConsistentLsn()).isEqualTo(w.next);
      assertThat(files(t.dir(), TimelineFiles.LAYER)).isEmpty();
      assertThat(files(t.dir(), LayerStub.SUFFIX)).hasSize(layers);
      assertThat(Files.readAllBytes(t.dir().resolve("metadata")))
          .isEqualTo(
              Files.readAllBytes(
                  source.resolve("tenants/" + TENANT + "/timelines/" + TL + "/metadata")));
      assertThat(LayerEviction.usage(store).residentBytes()).isZero();

      // One read that downloads what it needs, then the same read from local files.
      long t0 = System.nanoTime();
      assertThat(t.history(block(0), w.next)).isEqualTo(w.expected(block(0), w.next));
      long cold = System.nanoTime() - t0;
      t0 = System.nanoTime();
      assertThat(t.history(block(0), w.next)).isEqualTo(w.expected(block(0), w.next));
      long warm = System.nanoTime() - t0;
      System.out.printf(
          "attach %d ms; a read that downloads %d layers: %.1f ms, the same read then: %.2f ms%n",
          res.millis(), store.downloads().totals().downloads(), cold / 1e6, warm / 1e6);

      // 8 readers of every key at once: each layer is downloaded once.
      ExecutorService pool = Executors.newFixedThreadPool(8);
      try {
        CountDownLatch go = new CountDownLatch(1);
        List<Future<?>> fs = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
          fs.add(
              pool.submit(
                  () -> {
                    go.await();
                    assertAllKeysMatch(t, w);
                    return null;
                  }));
        }
        go.countDown();
        for (Future<?> f : fs) {
          f.get();
        }
      } finally {
        pool.shutdownNow();
      }
      // Reads at the newest LSN stop at the first image: older layers are never fetched.
      long fetched = store.downloads().totals().downloads();
      assertThat(fetched).isPositive().isLessThanOrEqualTo(layers);
      assertThat(files(t.dir(), TimelineFiles.LAYER)).hasSize((int) fetched);
      assertThat(store.downloads().totals().failures()).isZero();
      LayerEviction.Usage u = LayerEviction.usage(store);
      assertThat(u.residentBytes() + u.remoteOnlyBytes())
          .isEqualTo(res.timelines().getFirst().layerBytes());

      // Attached already: refused; unknown in remote storage: 404's kind.
      assertThatThrownBy(() -> TenantAttach.attach(store, storage, TENANT, 1, CALL))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.ALREADY_EXISTS));
      TenantId unknown = TenantId.parse("ffffffffffffffffffffffffffffffff");
      assertThatThrownBy(() -> TenantAttach.attach(store, storage, unknown, 1, CALL))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.UNKNOWN_TENANT));
      assertThat(store.tenants()).containsExactly(TENANT);

      // Detach: gone locally (files and index entries), every object still there.
      long objects = storage.list("tenants/" + TENANT).count().block(CALL);
      store.detachTenant(TENANT, id -> {});
      assertThat(store.tenants()).isEmpty();
      assertThat(target.resolve("tenants/" + TENANT)).doesNotExist();
      assertThat(store.index().layers(TENANT, TL)).isEmpty();
      assertThat(storage.list("tenants/" + TENANT).count().block(CALL)).isEqualTo(objects);

      // And attached again, after a restart too, from stubs only.
      TenantAttach.attach(store, storage, TENANT, 1, CALL);
    }
    try (LayerStore store = LayerStore.open(target, SMALL)) {
      assertThatThrownBy(() -> assertAllKeysMatch(store.timeline(TENANT, TL), w))
          .hasMessageContaining("only in remote storage");
      store.downloads().useStorage(storage);
      assertAllKeysMatch(store.timeline(TENANT, TL), w);
      store.detachTenant(TENANT, id -> {});
      TenantAttach.attach(store, storage, TENANT, 1, CALL); // stubs only again
    }
    // A lost RocksDB index is rebuilt from the local files only: a timeline with layers only in
    // remote storage is broken (never read with versions missing) until it is attached again.
    deleteTree(target.resolve("index"));
    try (LayerStore store = LayerStore.open(target, SMALL)) {
      assertThat(store.rebuiltIndex()).isTrue();
      assertThat(store.timeline(TENANT, TL).brokenReason())
          .hasValueSatisfying(
              r -> assertThat(r).contains("only in remote storage").contains("attach the tenant"));
      store.downloads().useStorage(storage);
      store.detachTenant(TENANT, id -> {});
      TenantAttach.attach(store, storage, TENANT, 1, CALL);
      assertAllKeysMatch(store.timeline(TENANT, TL), w);
    }
  }

  private static void deleteTree(Path dir) throws IOException {
    try (java.util.stream.Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }

  @Test
  void aDamagedDownloadIsRefusedAndTheNextReadRetriesAndAnInterruptedAttachIsCleanedUp()
      throws Exception {
    TenantId tenant = TENANT;
    LayerStoreTest.Workload w = uploadTenant(source, tenant);
    try (LayerStore store = LayerStore.open(target, SMALL)) {
      store.downloads().useStorage(storage);
      TenantAttach.attach(store, storage, tenant, 1, CALL);
      Timeline t = store.timeline(tenant, TL);
      List<RemoteKey> keys = new ArrayList<>();
      List<byte[]> originals = new ArrayList<>();
      for (LayerFileInfo f : t.layerFiles()) {
        RemoteKey k = RemoteIndex.layerKey(tenant, TL, f.fileName(), 1);
        byte[] b = storage.get(k).block(CALL);
        keys.add(k);
        originals.add(b.clone());
        b[LayerFile.HEADER_SIZE + 10] ^= 1; // a blob byte: header and footer stay valid
        storage.put(k, b).block(CALL);
      }
      assertThatThrownBy(() -> assertAllKeysMatch(t, w))
          .isInstanceOf(LayerStoreException.class)
          .hasMessageContaining("has CRC32C");
      assertThat(store.downloads().totals().failures()).isPositive();
      assertThat(files(t.dir(), TimelineFiles.LAYER)).isEmpty();
      assertThat(files(t.dir(), ".tmp")).isEmpty();
      for (int i = 0; i < keys.size(); i++) {
        storage.put(keys.get(i), originals.get(i)).block(CALL);
      }
      assertAllKeysMatch(t, w);
    }
    // A staging directory left by a crash: removed with its index entries at the next open.
    TenantId other = TenantId.parse("33333333333333333333333333333333");
    Path staged = target.resolve(TenantAttach.STAGING).resolve(other.toString());
    Files.createDirectories(staged.resolve("timelines").resolve(TL.toString()));
    try (LayerStore store = LayerStore.open(target, SMALL)) {
      assertThat(staged).doesNotExist();
      assertThat(store.tenants()).containsExactly(tenant);
    }
  }

  @Test
  void evictionKeepsTheBudgetLeastRecentlyReadFirstAndNeverTakesAFileNotUploaded()
      throws Exception {
    TenantId tenant = TENANT;
    LayerStoreTest.Workload uploaded = uploadTenant(source, tenant);
    try (LayerStore store = LayerStore.open(source, SMALL)) {
      store.downloads().useStorage(storage);
      Timeline t = store.timeline(tenant, TL);
      LayerStoreTest.Workload w = new LayerStoreTest.Workload(t, uploaded.next);
      w.model.putAll(uploaded.model);
      List<LayerFile.Reader> readers = t.layers().readers();
      long total = readers.stream().mapToLong(LayerFile.Reader::size).sum();
      // Read one layer last: with a budget of its size, it is the one that stays.
      LayerFile.Reader newest =
          readers.stream()
              .max((a, b) -> Long.compare(a.header().layerId(), b.header().layerId()))
              .orElseThrow();
      assertAllKeysMatch(t, w);
      newest.file().read(LayerFile.HEADER_SIZE, 1);
      try (LayerEviction ev =
          LayerEviction.start(store, newest.size(), Duration.ofHours(1), CALL)) {
        assertThat(ev.runOnce()).isEqualTo(total - newest.size());
        assertThat(newest.file().resident()).isTrue();
        assertThat(LayerEviction.usage(store).residentBytes()).isEqualTo(newest.size());
        assertThat(ev.totals().evictions()).isEqualTo(readers.size() - 1);
        assertThat(files(t.dir(), TimelineFiles.LAYER)).hasSize(1);
        // Fetched again, on a thread Reactor marks non-blocking, as the ingest and flush threads
        // are: a download there must work (Mono.block refused it, and ingest stopped for good).
        Scheduler ingestLike = Schedulers.newSingle("ingest-like");
        try {
          Mono.fromRunnable(() -> assertAllKeysMatch(t, w)).subscribeOn(ingestLike).block(CALL);
        } finally {
          ingestLike.dispose();
        }
        assertThat(store.downloads().totals().downloads())
            .isPositive()
            .isLessThanOrEqualTo(readers.size() - 1);

        // Layers flushed without uploads running: not in any uploaded index, never evicted.
        Random r = new Random(5);
        w.ingest(400, 40, r);
        t.checkpoint();
        try (LayerEviction zero = LayerEviction.start(store, 0, Duration.ofHours(1), CALL)) {
          zero.runOnce();
        }
        for (LayerFile.Reader x : t.layers().readers()) {
          boolean named =
              readers.stream().anyMatch(o -> o.header().layerId() == x.header().layerId());
          assertThat(x.file().resident()).as("layer %d", x.header().layerId()).isEqualTo(!named);
        }
        assertAllKeysMatch(t, w);
      }
    }
    // After a restart, evicted layers open from their stubs and are fetched on read.
    try (LayerStore store = LayerStore.open(source, SMALL)) {
      store.downloads().useStorage(storage);
      assertAllKeysMatch(store.timeline(tenant, TL), uploaded);
    }
  }
}
