package io.zenith.layer;

import static io.zenith.layer.LayerStoreTest.block;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.Serial;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.rocksdb.RocksDBException;

/** Timeline deletion: what it removes, what it refuses, crashes between its steps, and readers. */
class LayerStoreDeletionTest {
  @TempDir Path data;

  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId MAIN = TimelineId.parse("11111111111111111111111111111111");
  private static final TimelineId CHILD = TimelineId.parse("22222222222222222222222222222222");
  private static final Lsn START = Lsn.parse("0/1000028");
  private static final LayerStoreConfig SMALL =
      LayerStoreConfig.DEFAULT.withCheckpointDistance(64 * 1024);

  /** What a crash does to the deletion: it stops it where it is. */
  private static final class Crash extends RuntimeException {
    @Serial private static final long serialVersionUID = 1L;

    Crash(TimelineDeletion.Step step) {
      super("simulated crash after " + step);
    }
  }

  /** main with data, and CHILD branched from it with data of its own, all flushed. */
  private record Fixture(
      LayerStoreTest.Workload main, LayerStoreTest.Workload child, Lsn mainEnd, Lsn childEnd) {}

  private static Fixture fixture(LayerStore s) {
    s.createTenant(TENANT);
    Timeline main = s.createRootTimeline(TENANT, MAIN, START, 42, 15);
    LayerStoreTest.Workload mw = new LayerStoreTest.Workload(main, START);
    Lsn branchPoint = mw.ingest(1500, 20, new Random(1));
    Lsn mainEnd = mw.ingest(500, 20, new Random(2));
    main.checkpoint();
    Timeline child = s.branch(TENANT, CHILD, MAIN, Optional.of(branchPoint));
    LayerStoreTest.Workload cw = new LayerStoreTest.Workload(child, branchPoint);
    Lsn childEnd = cw.ingest(2000, 20, new Random(3));
    child.checkpoint();
    return new Fixture(mw, cw, mainEnd, childEnd);
  }

  private Path timelineDir(TimelineId id) {
    return data.resolve("tenants")
        .resolve(TENANT.toString())
        .resolve("timelines")
        .resolve(id.toString());
  }

  private static long bytesUnder(Path dir) {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile)
          .mapToLong(
              p -> {
                try {
                  return Files.size(p);
                } catch (IOException e) {
                  throw new UncheckedIOException(e);
                }
              })
          .sum();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The index holds nothing of the timeline: no state, no layers, no versions. */
  private static void assertIndexForgot(LayerStore s, TimelineId id) throws RocksDBException {
    assertThat(s.index().state(TENANT, id)).isNull();
    assertThat(s.index().layers(TENANT, id)).isEmpty();
    try (LayerIndex.Cursor c = s.index().cursor(TENANT, id)) {
      assertThat(c.ceilingKey(Key.MIN)).isNull();
    }
  }

  private static void assertMainIntact(LayerStore s, Fixture f) {
    Timeline main = s.timeline(TENANT, MAIN);
    for (int k = 0; k < 20; k++) {
      assertThat(main.history(block(k), f.mainEnd()))
          .isEqualTo(f.main().expected(block(k), f.mainEnd()));
    }
  }

  @Test
  void deletingABranchRemovesItsEntriesAndFilesAndReturnsItsSpace() throws Exception {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Fixture f = fixture(s);
      long childBytes = bytesUnder(timelineDir(CHILD));
      long before = bytesUnder(data.resolve("tenants"));
      assertThat(childBytes).isGreaterThan(100_000); // layer files of its own

      s.deleteTimeline(TENANT, CHILD);

      assertThat(timelineDir(CHILD)).doesNotExist();
      assertThat(TimelineDeletion.markedDir(timelineDir(CHILD))).doesNotExist();
      assertThat(bytesUnder(data.resolve("tenants"))).isEqualTo(before - childBytes);
      assertIndexForgot(s, CHILD);
      assertThat(s.findTimeline(TENANT, CHILD)).isEmpty();
      assertThat(s.timelines(TENANT)).extracting(Timeline::id).containsExactly(MAIN);
      assertThatThrownBy(() -> s.deleteTimeline(TENANT, CHILD))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> {
                assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.UNKNOWN_TIMELINE);
                assertThat(e.getMessage()).contains(CHILD.toString());
              });
      assertMainIntact(s, f);
      // Its parent has no children now: it can go too.
      s.deleteTimeline(TENANT, MAIN);
      assertThat(s.timelines(TENANT)).isEmpty();
      // what is left is the tenant's own: its generation file
      assertThat(bytesUnder(data.resolve("tenants"))).isEqualTo(TenantGenerations.SIZE);
    }
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThat(s.timelines(TENANT)).isEmpty();
      assertIndexForgot(s, MAIN);
    }
  }

  @Test
  void aTimelineWithChildrenOrAnUnknownOneIsRefused() {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Fixture f = fixture(s);
      TimelineId second = TimelineId.parse("33333333333333333333333333333333");
      s.branch(TENANT, second, MAIN, Optional.empty());
      assertThatThrownBy(() -> s.deleteTimeline(TENANT, MAIN))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> {
                assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.HAS_CHILDREN);
                assertThat(e.getMessage())
                    .contains(MAIN.toString())
                    .contains(CHILD + ", " + second)
                    .contains("delete them first");
              });
      AtomicBoolean writerStopped = new AtomicBoolean();
      assertThatThrownBy(() -> s.deleteTimeline(TENANT, MAIN, () -> writerStopped.set(true)))
          .isInstanceOf(LayerStoreException.class);
      assertThat(writerStopped).as("a refused deletion leaves the writer running").isFalse();
      assertThatThrownBy(() -> s.deleteTimeline(TENANT, TimelineId.generate()))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.UNKNOWN_TIMELINE));
      assertThatThrownBy(() -> s.deleteTimeline(TenantId.generate(), MAIN))
          .isInstanceOfSatisfying(
              LayerStoreException.class,
              e -> assertThat(e.kind()).isEqualTo(LayerStoreException.Kind.UNKNOWN_TENANT));
      assertMainIntact(s, f);
      assertThat(s.timeline(TENANT, CHILD).history(block(1), f.childEnd()))
          .isEqualTo(f.child().expected(block(1), f.childEnd()));
    }
  }

  /**
   * A crash after each step: before the mark the timeline comes back whole; after it, the next
   * start finishes the deletion (and the index is never left naming files that are gone).
   */
  @ParameterizedTest
  @EnumSource(TimelineDeletion.Step.class)
  void aCrashBetweenStepsIsFinishedOrUndoneAtTheNextStart(TimelineDeletion.Step crashAt)
      throws Exception {
    Fixture f;
    AtomicInteger filesDeleted = new AtomicInteger();
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      f = fixture(s);
      assertThatThrownBy(
              () ->
                  s.deleteTimeline(
                      TENANT,
                      CHILD,
                      () -> {},
                      step -> {
                        if (step == TimelineDeletion.Step.FILE_DELETED) {
                          filesDeleted.incrementAndGet();
                        }
                        // Crash after the second file: the metadata may be gone, layers not.
                        if (step == crashAt
                            && (step != TimelineDeletion.Step.FILE_DELETED
                                || filesDeleted.get() == 2)) {
                          throw new Crash(step);
                        }
                      }))
          .isInstanceOf(Crash.class);
      if (crashAt != TimelineDeletion.Step.CLOSED) {
        // Until it finishes, the id cannot be taken again.
        assertThatThrownBy(() -> s.branch(TENANT, CHILD, MAIN, Optional.empty()))
            .isInstanceOfSatisfying(
                LayerStoreException.class,
                e -> assertThat(e.getMessage()).contains("is being deleted"));
      }
    }
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertMainIntact(s, f);
      if (crashAt == TimelineDeletion.Step.CLOSED) {
        Timeline child = s.timeline(TENANT, CHILD);
        assertThat(child.diskConsistentLsn()).isEqualTo(f.childEnd());
        for (int k = 0; k < 20; k++) {
          // The child's own versions come first (its model does not know the ancestor's).
          assertThat(child.history(block(k), f.childEnd()))
              .startsWith(f.child().expected(block(k), f.childEnd()).toArray(new Version[0]));
        }
        s.deleteTimeline(TENANT, CHILD);
      }
      assertThat(s.findTimeline(TENANT, CHILD)).isEmpty();
      assertThat(timelineDir(CHILD)).doesNotExist();
      assertThat(TimelineDeletion.markedDir(timelineDir(CHILD))).doesNotExist();
      assertIndexForgot(s, CHILD);
    }
  }

  @Test
  void anInterruptedDeletionIsFinishedByDeletingAgain() throws Exception {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Fixture f = fixture(s);
      assertThatThrownBy(
              () ->
                  s.deleteTimeline(
                      TENANT,
                      CHILD,
                      () -> {},
                      step -> {
                        if (step == TimelineDeletion.Step.INDEX_DELETED) {
                          throw new Crash(step);
                        }
                      }))
          .isInstanceOf(Crash.class);
      assertThat(TimelineDeletion.markedDir(timelineDir(CHILD))).isDirectory();
      s.deleteTimeline(TENANT, CHILD);
      assertThat(TimelineDeletion.markedDir(timelineDir(CHILD))).doesNotExist();
      assertIndexForgot(s, CHILD);
      assertMainIntact(s, f);
    }
  }

  @Test
  void aLostIndexIsRebuiltWithoutTheDeletedTimeline() throws Exception {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      fixture(s);
      s.deleteTimeline(TENANT, CHILD);
    }
    LayerStoreTest.deleteTree(data.resolve("index"));
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      assertThat(s.rebuiltIndex()).isTrue();
      assertThat(s.timelines(TENANT)).extracting(Timeline::id).containsExactly(MAIN);
      assertIndexForgot(s, CHILD);
    }
  }

  /**
   * Readers on the timeline while it is deleted: each read returns the right versions or fails with
   * UNKNOWN_TIMELINE "was deleted"; nothing else (no missing layer, no native crash), and a waiter
   * for an LSN is failed.
   */
  @Test
  void readersRacingTheDeletionGetTheRightAnswerOrAClearError() throws Exception {
    try (LayerStore s = LayerStore.open(data, SMALL)) {
      Fixture f = fixture(s);
      Timeline child = s.timeline(TENANT, CHILD);
      // Unflushed versions too, so that in-memory layers are closed under the readers.
      f.child().ingest(300, 20, new Random(4));
      Lsn at = child.lastRecordLsn();
      java.util.Map<Key, List<Version>> want = new java.util.HashMap<>();
      java.util.Map<Key, Optional<Key>> wantNext = new java.util.HashMap<>();
      for (int k = 0; k < 20; k++) {
        want.put(block(k), child.history(block(k), at));
        wantNext.put(block(k), child.nextKey(block(k), Key.MAX, at));
      }
      AtomicBoolean stop = new AtomicBoolean();
      AtomicReference<Throwable> failure = new AtomicReference<>();
      AtomicInteger answered = new AtomicInteger();
      AtomicInteger refused = new AtomicInteger();
      List<Thread> readers = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        Random r = new Random(50 + i);
        readers.add(
            Thread.ofPlatform()
                .start(
                    () -> {
                      try {
                        while (!stop.get()) {
                          Key k = block(r.nextInt(20));
                          try {
                            if (r.nextBoolean()) {
                              List<Version> got = child.history(k, at);
                              if (!got.equals(want.get(k))) {
                                throw new AssertionError("history of " + k + ": " + got);
                              }
                            } else {
                              Optional<Key> got = child.nextKey(k, Key.MAX, at);
                              if (!got.equals(wantNext.get(k))) {
                                throw new AssertionError("next key after " + k + ": " + got);
                              }
                            }
                            answered.incrementAndGet();
                          } catch (LayerStoreException e) {
                            if (e.kind() != LayerStoreException.Kind.UNKNOWN_TIMELINE
                                || !e.getMessage().contains("was deleted")) {
                              throw e;
                            }
                            refused.incrementAndGet();
                          }
                        }
                      } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                      }
                    }));
      }
      var waiter = child.waitForLsn(at.plus(1 << 20), Duration.ofMinutes(1)).toFuture();
      long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      while (answered.get() < 200 && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      s.deleteTimeline(TENANT, CHILD);
      int refusedAtDelete = refused.get();
      while (refused.get() < refusedAtDelete + 100 && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      stop.set(true);
      for (Thread th : readers) {
        th.join(Duration.ofSeconds(30));
      }
      assertThat(failure.get()).isNull();
      assertThat(answered.get()).isGreaterThanOrEqualTo(200);
      assertThat(refused.get()).isGreaterThanOrEqualTo(100);
      assertThat(waiter).failsWithin(Duration.ofSeconds(10));
      assertThatThrownBy(() -> child.history(block(1), at))
          .hasMessageContaining("was deleted")
          .hasMessageContaining(CHILD.toString());
      assertMainIntact(s, f);
    }
  }
}
