package io.zenith.layer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.test.StepVerifier;

class LayerStoreTest {
  @TempDir Path data;

  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final Lsn START = Lsn.parse("0/1000028");
  private static final LayerStoreConfig SMALL =
      LayerStoreConfig.DEFAULT.withCheckpointDistance(64 * 1024);

  static Key block(int blk) {
    return new Key(0, 1663, 5, 16384, 0, blk);
  }

  static Value.Image image(int seed) {
    byte[] b = new byte[8192];
    java.util.Arrays.fill(b, (byte) seed);
    b[0] = (byte) (seed >> 8);
    return new Value.Image(b);
  }

  static Value.WalRecord record(int seed) {
    return new Value.WalRecord(
        false, Lsn.of(seed), new byte[] {(byte) seed, (byte) (seed >> 8), 1, 2});
  }

  /**
   * Ingests a deterministic workload into a timeline and keeps a model: for each key, its versions.
   * Records are 64 bytes apart; every fifth version of a key is an image.
   */
  static final class Workload {
    final Timeline t;
    final Map<Key, ConcurrentSkipListMap<Lsn, Value>> model = new ConcurrentHashMap<>();
    Lsn next;

    Workload(Timeline t, Lsn from) {
      this.t = t;
      this.next = from;
    }

    Lsn ingest(int records, int keys, Random r) {
      for (int i = 0; i < records; i++) {
        Lsn start = next;
        Lsn end = start.plus(64);
        Key k = block(r.nextInt(keys));
        ConcurrentSkipListMap<Lsn, Value> versions =
            model.computeIfAbsent(k, x -> new ConcurrentSkipListMap<>());
        Value v =
            versions.isEmpty() || r.nextInt(5) == 0
                ? image(r.nextInt(1 << 16))
                : record(r.nextInt(1 << 16));
        t.put(k, end, v);
        versions.put(end, v);
        t.finishRecord(end, start);
        next = end;
        if (t.freezeIfDue(false)) {
          t.flushOldestFrozen();
        }
      }
      return next;
    }

    /** What history(key, lsn) must return per the model. */
    List<Version> expected(Key k, Lsn lsn) {
      List<Version> out = new ArrayList<>();
      ConcurrentSkipListMap<Lsn, Value> versions = model.get(k);
      if (versions == null) {
        return out;
      }
      for (Map.Entry<Lsn, Value> e : versions.headMap(lsn, true).descendingMap().entrySet()) {
        out.add(new Version(e.getKey(), e.getValue()));
        if (e.getValue().isBase()) {
          break;
        }
      }
      return out;
    }
  }

  private static Timeline root(LayerStore s) {
    s.createTenant(TENANT);
    return s.createRootTimeline(
        TENANT, TimelineId.parse("11111111111111111111111111111111"), START, 42, 15);
  }

  private static void assertMatchesModel(Timeline t, Workload w, Lsn upTo, Random r) {
    for (int i = 0; i < 300; i++) {
      Key k = block(r.nextInt(40));
      Lsn at = START.plus(64L * (1 + r.nextInt((int) (upTo.minus(START) / 64))));
      assertThat(t.history(k, at)).as("history of %s at %s", k, at).isEqualTo(w.expected(k, at));
    }
  }

  /**
   * The ingest thread asks whether to freeze after every record; when nothing is due, that must not
   * wait for reads in flight (it took the write lock each time, and ingest went at the pace of
   * image creation and basebackups).
   */
  @Test
  void aRecordThatNeedsNoFreezeDoesNotWaitForReaders() throws Exception {
    try (LayerStore s = LayerStore.open(data, LayerStoreConfig.DEFAULT)) {
      Timeline t = root(s);
      Workload w = new Workload(t, START);
      Lsn end = w.ingest(10, 4, new Random(7));
      java.util.concurrent.CountDownLatch reading = new java.util.concurrent.CountDownLatch(1);
      java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
      Thread reader =
          Thread.ofPlatform()
              .start(
                  () ->
                      t.layers()
                          .visitOwn(
                              block(0),
                              end,
                              (at, v) -> {
                                reading.countDown();
                                try {
                                  release.await();
                                } catch (InterruptedException e) {
                                  Thread.currentThread().interrupt();
                                }
                                return false;
                              }));
      try {
        assertThat(reading.await(10, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
        Boolean froze =
            reactor.core.publisher.Mono.fromCallable(() -> t.freezeIfDue(false))
                .subscribeOn(reactor.core.scheduler.Schedulers.boundedElastic())
                .block(Duration.ofSeconds(5));
        assertThat(froze).isFalse();
      } finally {
        release.countDown();
        reader.join();
      }
      assertThat(t.freezeIfDue(true)).as("a forced freeze still happens").isTrue();
    }
  }

  @Test
  void historyIsRightAcrossOpenFrozenAndFlushedLayers() {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      Workload w = new Workload(t, START);
      Random r = new Random(5);
      Lsn end = w.ingest(3000, 30, r);
      t.freezeIfDue(true); // leave one frozen, unflushed layer, and open a new one
      end = w.ingest(200, 30, r);
      assertThat(t.frozenCount()).isEqualTo(1);
      assertThat(t.diskConsistentLsn()).isLessThan(end);
      assertMatchesModel(t, w, end, new Random(6));
      t.checkpoint();
      assertThat(t.diskConsistentLsn()).isEqualTo(end);
      assertThat(t.frozenCount()).isZero();
      assertMatchesModel(t, w, end, new Random(7));
      try (Stream<Path> files = Files.list(t.dir())) {
        assertThat(files.filter(p -> p.toString().endsWith(".layer")).count()).isGreaterThan(3);
      } catch (IOException e) {
        throw new AssertionError(e);
      }
    }
  }

  @Test
  void aTimelineUsedAfterItsStoreClosedFailsWithAnError() {
    Timeline t;
    Workload w;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      t = root(s);
      w = new Workload(t, START);
      w.ingest(500, 30, new Random(12));
      t.checkpoint();
    }
    // Late calls (a flush racing a shutdown) must not reach freed RocksDB handles: that is a JVM
    // crash, not an exception.
    Key k = w.model.keySet().iterator().next();
    Lsn end = t.lastRecordLsn();
    assertThatThrownBy(() -> t.history(k, end))
        .isInstanceOf(LayerStoreException.class)
        .hasMessageContaining("closed");
    assertThatThrownBy(t::checkpoint)
        .isInstanceOf(LayerStoreException.class)
        .hasMessageContaining("is closed");
    assertThatThrownBy(() -> t.put(k, end.plus(8), new Value.Image(new byte[8192])))
        .isInstanceOf(LayerStoreException.class)
        .hasMessageContaining("is closed");
  }

  @Test
  void restartKeepsWhatWasFlushedAndResumesAtTheDiskConsistentLsn() {
    Random r = new Random(8);
    Workload w;
    Lsn durable;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      w = new Workload(t, START);
      w.ingest(2000, 30, r);
      t.checkpoint();
      w.ingest(100, 30, r);
      // Whatever the last records' layer did not flush is lost on restart.
      durable = t.diskConsistentLsn();
      assertThat(t.lastRecordLsn()).isGreaterThan(durable);
    }
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThat(s.rebuiltIndex()).isFalse();
      Timeline t = s.timelines(TENANT).getFirst();
      assertThat(t.diskConsistentLsn()).isEqualTo(durable);
      assertThat(t.lastRecordLsn()).isEqualTo(durable);
      assertThat(t.position().prev()).isEqualTo(durable.plus(-64));
      assertMatchesModel(t, w, durable, new Random(9));
    }
  }

  @Test
  void aLostIndexIsRebuiltFromTheLayerFiles() throws IOException {
    Random r = new Random(10);
    Workload w;
    Lsn durable;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      w = new Workload(t, START);
      w.ingest(2500, 30, r);
      t.checkpoint();
      durable = t.diskConsistentLsn();
    }
    deleteTree(data.resolve("index"));
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThat(s.rebuiltIndex()).isTrue();
      Timeline t = s.timelines(TENANT).getFirst();
      assertThat(t.diskConsistentLsn()).isEqualTo(durable);
      assertMatchesModel(t, w, durable, new Random(11));
    }
  }

  @Test
  void layersFlushedAfterARebuildGetIdsOfTheirOwn() throws IOException {
    Random r = new Random(12);
    Workload w;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      w = new Workload(t, START);
      w.ingest(1500, 30, r);
      t.checkpoint();
    }
    deleteTree(data.resolve("index"));
    Lsn end;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThat(s.rebuiltIndex()).isTrue();
      Timeline t = s.timelines(TENANT).getFirst();
      // The id counter lived in the lost index: new layers must not reuse the files' ids.
      Workload before = w;
      w = new Workload(t, t.lastRecordLsn());
      w.model.putAll(before.model);
      end = w.ingest(1500, 30, r);
      t.checkpoint();
      assertMatchesModel(t, w, end, new Random(13));
    }
    try (LayerStore s = LayerStore.open(data, SMALL);
        Stream<Path> files = Files.list(s.timelines(TENANT).getFirst().dir())) {
      List<String> ids =
          files
              .map(p -> p.getFileName().toString())
              .filter(n -> n.endsWith(".layer"))
              .map(n -> n.substring(0, n.indexOf("__")))
              .toList();
      assertThat(ids).doesNotHaveDuplicates();
      assertMatchesModel(s.timelines(TENANT).getFirst(), w, end, new Random(14));
    }
  }

  @Test
  void layersFlushedAfterARebuildGetNewIdsAndTheOldOnesSurviveTheNextRestart() throws IOException {
    Random r = new Random(12);
    Workload w;
    Lsn end;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      w = new Workload(root(s), START);
      w.ingest(1500, 30, r);
      w.t.checkpoint();
    }
    deleteTree(data.resolve("index"));
    List<Path> before;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThat(s.rebuiltIndex()).isTrue();
      Timeline t = s.timelines(TENANT).getFirst();
      before = layerFilesOf(t);
      Workload more = new Workload(t, w.next);
      more.model.putAll(w.model);
      end = more.ingest(1500, 30, r);
      t.checkpoint();
      w = more;
    }
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThat(s.rebuiltIndex()).isFalse();
      Timeline t = s.timelines(TENANT).getFirst();
      List<Path> after = layerFilesOf(t);
      assertThat(after).containsAll(before).hasSizeGreaterThan(before.size());
      assertThat(after.stream().map(p -> p.getFileName().toString().substring(0, 16)).distinct())
          .as("layer ids are unique")
          .hasSameSizeAs(after);
      assertMatchesModel(t, w, end, new Random(13));
    }
  }

  private static List<Path> layerFilesOf(Timeline t) throws IOException {
    try (Stream<Path> files = Files.list(t.dir())) {
      return files.filter(p -> p.toString().endsWith(".layer")).sorted().toList();
    }
  }

  @Test
  void anUncommittedLayerFileIsDeletedOnRestart() throws IOException {
    Path stray;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      new Workload(t, START).ingest(500, 10, new Random(1));
      t.checkpoint();
      stray = t.dir().resolve(TimelineFiles.layerFileName(999, Lsn.of(1), Lsn.of(2)));
      try (Stream<Path> files = Files.list(t.dir())) {
        Files.copy(
            files.filter(p -> p.toString().endsWith(".layer")).findFirst().orElseThrow(), stray);
      }
      Files.writeString(t.dir().resolve("half-written.layer.tmp"), "x");
    }
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = s.timelines(TENANT).getFirst();
      assertThat(stray).doesNotExist();
      assertThat(t.dir().resolve("half-written.layer.tmp")).doesNotExist();
      assertThat(t.history(block(1), t.lastRecordLsn())).isNotEmpty();
    }
  }

  @Test
  void aCorruptLayerFileBreaksOnlyItsTimeline() throws IOException {
    TimelineId other = TimelineId.generate();
    Path victim;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      new Workload(t, START).ingest(500, 10, new Random(1));
      t.checkpoint();
      Timeline o = s.createRootTimeline(TENANT, other, START, 42, 15);
      new Workload(o, START).ingest(500, 10, new Random(2));
      o.checkpoint();
      try (Stream<Path> files = Files.list(t.dir())) {
        victim = files.filter(p -> p.toString().endsWith(".layer")).findFirst().orElseThrow();
      }
    }
    byte[] b = Files.readAllBytes(victim);
    b[b.length - 3] ^= 1; // the footer
    Files.write(victim, b);
    deleteTree(data.resolve("index"));
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline broken = s.timeline(TENANT, TimelineId.parse("11111111111111111111111111111111"));
      assertThat(broken.brokenReason())
          .hasValueSatisfying(m -> assertThat(m).contains(victim.toString()));
      assertThatThrownBy(() -> broken.history(block(1), broken.lastRecordLsn()))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> {
                assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.CORRUPT_FILE);
                assertThat(e.getMessage()).contains(victim.toString());
              });
      Timeline fine = s.timeline(TENANT, other);
      assertThat(fine.history(block(1), fine.lastRecordLsn())).isNotEmpty();
    }
  }

  @Test
  void branchesSeeTheirAncestorUpToTheBranchPointOnly() {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline main = root(s);
      Workload w = new Workload(main, START);
      Random r = new Random(12);
      Lsn branchPoint = w.ingest(1000, 20, r);
      Map<Key, List<Version>> atBranch = new TreeMap<>();
      for (int k = 0; k < 20; k++) {
        atBranch.put(block(k), main.history(block(k), branchPoint));
      }
      Lsn mainEnd = w.ingest(1000, 20, r);

      TimelineId childId = TimelineId.generate();
      Timeline child = s.branch(TENANT, childId, main.id(), Optional.of(branchPoint));
      assertThat(child.lastRecordLsn()).isEqualTo(branchPoint);
      for (int k = 0; k < 20; k++) {
        assertThat(child.history(block(k), mainEnd)).isEqualTo(atBranch.get(block(k)));
      }
      // Writes on the child are the child's alone.
      Lsn childEnd = branchPoint.plus(64);
      child.put(block(3), childEnd, image(777));
      child.finishRecord(childEnd, branchPoint);
      assertThat(child.newest(block(3), childEnd).orElseThrow().value()).isEqualTo(image(777));
      assertThat(main.history(block(3), mainEnd)).isEqualTo(w.expected(block(3), mainEnd));
      // A grandchild at the child's head sees the child's write.
      Timeline grandchild = s.branch(TENANT, TimelineId.generate(), childId, Optional.empty());
      assertThat(grandchild.newest(block(3), grandchild.lastRecordLsn()).orElseThrow().value())
          .isEqualTo(image(777));
      assertThat(grandchild.position().prev()).isEqualTo(branchPoint);
    }
  }

  @Test
  void branchingOutsideTheHistoryIsRefused() {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline main = root(s);
      Lsn end = new Workload(main, START).ingest(100, 5, new Random(1));
      record Bad(Lsn at, String message) {}
      for (Bad b :
          List.of(
              new Bad(Lsn.parse("0/10"), "starts at " + START),
              new Bad(end.plus(64), "only up to " + end),
              new Bad(end.plus(-60), "not a record boundary"))) {
        assertThatThrownBy(
                () -> s.branch(TENANT, TimelineId.generate(), main.id(), Optional.of(b.at())))
            .isInstanceOfSatisfying(
                LayerStoreException.class,
                e -> {
                  assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.INVALID_LSN);
                  assertThat(e.getMessage()).contains(b.message());
                });
      }
      assertThatThrownBy(() -> s.branch(TENANT, main.id(), main.id(), Optional.empty()))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.ALREADY_EXISTS));
      assertThatThrownBy(() -> s.timeline(TenantId.generate(), main.id()))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.UNKNOWN_TENANT));
      assertThatThrownBy(() -> s.timeline(TENANT, TimelineId.generate()))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.UNKNOWN_TIMELINE));
    }
  }

  @Test
  void branchesSurviveRestartAndIndexRebuild() throws IOException {
    TimelineId childId = TimelineId.generate();
    Lsn branchPoint;
    List<Version> expected;
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline main = root(s);
      Workload w = new Workload(main, START);
      branchPoint = w.ingest(800, 10, new Random(2));
      expected = main.history(block(4), branchPoint);
      w.ingest(800, 10, new Random(3));
      main.checkpoint();
      s.branch(TENANT, childId, main.id(), Optional.of(branchPoint));
    }
    deleteTree(data.resolve("index"));
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline child = s.timeline(TENANT, childId);
      assertThat(child.ancestor()).isPresent();
      assertThat(child.diskConsistentLsn()).isEqualTo(branchPoint);
      assertThat(child.history(block(4), branchPoint)).isEqualTo(expected);
    }
  }

  @Test
  void tombstonesHideKeysFromNewestAndNextKey() {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      Lsn l1 = START.plus(64);
      for (int k = 0; k < 10; k++) {
        t.put(block(k), l1, image(k));
      }
      t.finishRecord(l1, START);
      Lsn l2 = l1.plus(64);
      t.put(block(0), l2, Value.TOMBSTONE);
      t.put(block(5), l2, Value.TOMBSTONE);
      t.finishRecord(l2, l1);
      t.checkpoint();
      List<Integer> atL1 = keysAt(t, l1);
      List<Integer> atL2 = keysAt(t, l2);
      assertThat(atL1).containsExactly(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
      assertThat(atL2).containsExactly(1, 2, 3, 4, 6, 7, 8, 9);
      assertThat(t.newest(block(5), l2)).isEmpty();
      assertThat(t.newest(block(5), l1)).isPresent();
      assertThat(t.history(block(5), l2))
          .extracting(Version::value)
          .containsExactly(Value.TOMBSTONE);
    }
  }

  private static List<Integer> keysAt(Timeline t, Lsn lsn) {
    List<Integer> out = new ArrayList<>();
    Key cur = block(0);
    Optional<Key> k;
    while ((k = t.nextKey(cur, block(100), lsn)).isPresent()) {
      out.add(k.get().field6());
      cur = k.get().next();
    }
    return out;
  }

  @Test
  void waitForLsnCompletesWhenTheRecordArrivesOrTimesOut() {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Timeline t = root(s);
      Lsn target = START.plus(128);
      StepVerifier.create(t.waitForLsn(target, Duration.ofSeconds(30)))
          .then(() -> t.finishRecord(START.plus(64), START))
          .expectNoEvent(Duration.ofMillis(50))
          .then(() -> t.finishRecord(target, START.plus(64)))
          .verifyComplete();
      StepVerifier.create(t.waitForLsn(target, Duration.ofSeconds(1))).verifyComplete();
      StepVerifier.create(t.waitForLsn(target.plus(64), Duration.ofMillis(100)))
          .expectErrorSatisfies(
              e ->
                  assertThat(e)
                      .isInstanceOfSatisfying(
                          LayerStoreException.class,
                          x -> {
                            assertThat(x.kind()).isEqualTo(LayerStoreException.Kind.LSN_TIMEOUT);
                            assertThat(x.getMessage()).contains(target.plus(64).toString());
                          }))
          .verify();
    }
  }

  @Test
  void readersStayCorrectWhileTheWriterFreezesAndFlushes() throws Exception {
    try (LayerStore s =
        LayerStore.open(data, LayerStoreConfig.DEFAULT.withCheckpointDistance(16 * 1024))) {
      Timeline t = root(s);
      Workload w = new Workload(t, START);
      AtomicBoolean done = new AtomicBoolean();
      AtomicReference<Throwable> failure = new AtomicReference<>();
      List<Thread> readers = new ArrayList<>();
      for (int i = 0; i < 2; i++) {
        Random r = new Random(100 + i);
        readers.add(
            Thread.ofPlatform()
                .start(
                    () -> {
                      try {
                        while (!done.get()) {
                          Lsn last = t.lastRecordLsn();
                          if (!last.isAfter(START)) {
                            continue;
                          }
                          Key k = block(r.nextInt(20));
                          List<Version> got = t.history(k, last);
                          List<Version> want = w.expected(k, last);
                          if (!got.equals(want)) {
                            throw new AssertionError(
                                "history of " + k + " at " + last + ": " + got + " != " + want);
                          }
                        }
                      } catch (Throwable e) {
                        failure.set(e);
                      }
                    }));
      }
      w.ingest(4000, 20, new Random(13));
      done.set(true);
      for (Thread th : readers) {
        th.join();
      }
      assertThat(failure.get()).isNull();
      assertThat(t.diskConsistentLsn()).isGreaterThan(START);
    }
  }

  static void deleteTree(Path p) throws IOException {
    try (Stream<Path> walk = Files.walk(p)) {
      for (Path f : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.delete(f);
      }
    }
  }
}
