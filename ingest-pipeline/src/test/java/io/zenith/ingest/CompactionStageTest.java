package io.zenith.ingest;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.wal.records.TypedRecord;
import io.zenith.layer.CompactionResult;
import io.zenith.layer.CompactionSettings;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.testing.FullLayerDisk;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;

/**
 * The compaction stage: passes on their own thread, latest-wins triggers, and the gate that holds
 * flushes while the timeline has too many L0 layers, opened by a pass (or by a failed one).
 */
class CompactionStageTest {
  private static final int STALL = 3;

  /** Merges at 2 L0 layers; images at 1 delta layer (none needed: the keys hold images). */
  private static final CompactionSettings MERGE_AT_2 = new CompactionSettings(1 << 20, 2, 1, 2);

  @TempDir Path dir;
  private SyntheticTimeline t;
  private WalIngest ingest;
  private List<TypedRecord> records;
  private int next;
  private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
  private final Set<String> threads = ConcurrentHashMap.newKeySet();
  private final AtomicInteger passes = new AtomicInteger();
  private CompactionStage stage;

  @BeforeEach
  void setUp() {
    t = new SyntheticTimeline(dir, LayerStoreConfig.DEFAULT, FullLayerDisk.unlimited());
    ingest = t.ingest();
    t.append(20);
    records = t.typedRecords();
  }

  @AfterEach
  void tearDown() {
    if (stage != null) {
      stage.stop();
    }
    t.close();
  }

  private CompactionStage stage(Supplier<CompactionResult> pass) {
    stage =
        new CompactionStage(
            t.timeline,
            () -> {
              threads.add(Thread.currentThread().getName());
              passes.incrementAndGet();
              return pass.get();
            },
            STALL,
            Schedulers.newBoundedElastic(1, Integer.MAX_VALUE, "compact-test"),
            Timer.builder("c").register(meters),
            Counter.builder("s").register(meters));
    return stage;
  }

  /** Ingests a record and flushes it as an L0 layer of its own. */
  private void flushOneLayer() {
    ingest.ingest(records.get(next++));
    assertThat(t.timeline.freezeIfDue(true)).isTrue();
    assertThat(t.timeline.flushOldestFrozen()).isTrue();
  }

  @Test
  void aPassOnItsOwnThreadOpensTheGateAndBelowTheStallPointItIsOpen() {
    CompactionStage s = stage(() -> t.timeline.compact(MERGE_AT_2, (tl, k, l) -> new byte[8192]));
    flushOneLayer();
    flushOneLayer();
    assertThat(t.timeline.l0Layers()).isEqualTo(3); // the import's layer and two
    flushOneLayer();
    assertThat(t.timeline.l0Layers()).isGreaterThanOrEqualTo(STALL);
    StepVerifier.create(s.gate()).expectComplete().verify(Duration.ofSeconds(30));
    assertThat(t.timeline.l0Layers()).isZero();
    assertThat(passes.get()).isPositive();
    assertThat(threads).singleElement().asString().startsWith("compact-test-");
    assertThat(meters.get("s").counter().count()).isEqualTo(1);
    StepVerifier.create(s.gate()).expectComplete().verify(Duration.ofSeconds(1));
    assertThat(meters.get("s").counter().count()).as("no stall below the point").isEqualTo(1);
  }

  @Test
  void aHeldFlushWaitsForOnePassToFinishAndNoLonger() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    CompactionStage s =
        stage(
            () -> {
              try {
                release.await();
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
              return CompactionResult.NOTHING;
            });
    for (int i = 0; i < STALL; i++) {
      flushOneLayer();
    }
    StepVerifier.create(s.gate())
        .expectSubscription()
        .expectNoEvent(Duration.ofMillis(500))
        .then(release::countDown)
        .expectComplete()
        .verify(Duration.ofSeconds(10));
    // The pass merged nothing: the gate opened anyway, after that one pass.
    assertThat(t.timeline.l0Layers()).isGreaterThanOrEqualTo(STALL);
    assertThat(passes.get()).isEqualTo(1);
  }

  @Test
  void aFailedPassOpensTheGateSoThatIngestNeverWaitsForeverForABrokenCompaction() {
    CompactionStage s =
        stage(
            () -> {
              throw new IllegalStateException("broken on purpose");
            });
    for (int i = 0; i < STALL; i++) {
      flushOneLayer();
    }
    StepVerifier.create(s.gate()).expectComplete().verify(Duration.ofSeconds(10));
    assertThat(t.timeline.l0Layers()).isGreaterThanOrEqualTo(STALL);
    assertThat(passes.get()).isEqualTo(1);
  }

  /**
   * A pass that ends at once can finish between the gate's trigger and the moment its subscription
   * is registered; the gate must still open (it once waited forever, and ingest with it).
   */
  @Test
  void aGateNeverMissesAPassThatFinishesWhileItSubscribes() {
    CompactionStage s = stage(() -> CompactionResult.NOTHING);
    for (int i = 0; i < STALL; i++) {
      flushOneLayer();
    }
    for (int i = 0; i < 500; i++) {
      StepVerifier.create(s.gate()).expectComplete().verify(Duration.ofSeconds(10));
    }
    assertThat(passes.get()).isGreaterThanOrEqualTo(500);
  }
}
