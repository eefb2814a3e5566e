package io.zenith.ingest;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.wal.records.TypedRecord;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.testing.FullLayerDisk;
import io.zenith.wal.Lsn;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.Disposable;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;
import reactor.test.publisher.TestPublisher;

/**
 * The flush stage: bounds the frozen layers in flight to {@code maxFrozenLayers} waiting plus one
 * being flushed, retries a full disk with backoff, and ends a retry on cancel or close.
 */
class FlushStageTest {
  private static final int MAX_FROZEN = 2;

  @TempDir Path dir;
  private final FullLayerDisk disk = FullLayerDisk.unlimited();
  private SyntheticTimeline t;
  private WalIngest ingest;
  private List<TypedRecord> records;
  private int next;
  private Scheduler flushThread;
  private final Sinks.Empty<Void> closing = Sinks.empty();
  private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
  private final AtomicLong requested = new AtomicLong();
  private final List<Lsn> durable = new CopyOnWriteArrayList<>();
  private final Set<String> threads = ConcurrentHashMap.newKeySet();

  @BeforeEach
  void setUp() {
    t = new SyntheticTimeline(dir, LayerStoreConfig.DEFAULT, disk);
    ingest = t.ingest();
    t.append(20);
    records = t.typedRecords();
    flushThread = Schedulers.newSingle("flush-test");
  }

  @AfterEach
  void tearDown() {
    closing.tryEmitEmpty();
    flushThread.disposeGracefully().timeout(Duration.ofSeconds(20)).onErrorComplete().block();
    t.close();
  }

  private FlushStage stage() {
    return new FlushStage(
        t.timeline,
        flushThread,
        MAX_FROZEN,
        Timer.builder("f").register(meters),
        closing.asMono(),
        null);
  }

  /** Ingests a record and freezes it into a layer of its own, as the freeze stage would. */
  private FlushRequest freezeOne(CheckpointRequest... checkpoints) {
    ingest.ingest(records.get(next++));
    assertThat(t.timeline.freezeIfDue(true)).isTrue();
    return new FlushRequest(t.timeline.lastRecordLsn(), List.of(checkpoints));
  }

  private static void await(String what, BooleanSupplier cond) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
    while (!cond.getAsBoolean()) {
      assertThat(System.nanoTime()).as("waiting for " + what).isLessThan(deadline);
      Thread.sleep(5);
    }
  }

  @Test
  void boundsTheFrozenLayersInFlightAndFlushesThemOnceThereIsSpace() throws Exception {
    disk.setFree(0);
    TestPublisher<FlushRequest> up = TestPublisher.create();
    CheckpointRequest cp = new CheckpointRequest();
    StepVerifier.create(
            stage()
                .apply(
                    up.flux().doOnRequest(requested::addAndGet),
                    (ingested, d) -> {
                      durable.add(d);
                      threads.add(Thread.currentThread().getName());
                    }))
        .expectSubscription()
        .then(() -> assertThat(requested).as("maxFrozenLayers up front").hasValue(MAX_FROZEN))
        .then(() -> up.next(freezeOne()))
        .then(() -> assertThat(requested).as("one taken, one more asked").hasValue(MAX_FROZEN + 1))
        .then(
            () -> {
              up.next(freezeOne());
              up.next(freezeOne(cp));
            })
        .expectNoEvent(Duration.ofMillis(300))
        .then(
            () -> {
              assertThat(disk.refusals()).as("the first flush fails").isPositive();
              assertThat(requested)
                  .as("nothing more while the flush fails")
                  .hasValue(MAX_FROZEN + 1);
              assertThat(t.timeline.frozenCount()).isEqualTo(MAX_FROZEN + 1);
              assertThat(cp.finished()).isFalse();
              disk.setFree(Long.MAX_VALUE);
            })
        .then(() -> cp.done().block(Duration.ofSeconds(15)))
        .then(
            () -> {
              assertThat(t.timeline.frozenCount()).isZero();
              assertThat(t.timeline.diskConsistentLsn()).isEqualTo(t.timeline.lastRecordLsn());
              assertThat(requested).as("one more per layer taken").hasValue(MAX_FROZEN + 3);
              up.complete();
            })
        .verifyComplete();
    assertThat(durable).hasSize(3).isSorted().last().isEqualTo(t.timeline.lastRecordLsn());
    assertThat(threads).singleElement().asString().startsWith("flush-test-");
    assertThat(meters.get("f").timer().count()).isEqualTo(3);
  }

  @Test
  void cancelEndsTheRetryAndKeepsTheFrozenLayer() throws Exception {
    disk.setFree(0);
    TestPublisher<FlushRequest> up = TestPublisher.create();
    Disposable run = stage().apply(up.flux(), (a, b) -> {}).subscribe();
    up.next(freezeOne());
    await("a failed flush", () -> disk.refusals() > 0);
    run.dispose();
    long refusals = disk.refusals();
    Thread.sleep(IngestPipeline.RETRY_MIN.toMillis() + 500);
    assertThat(disk.refusals()).as("no attempt after the cancel").isEqualTo(refusals);
    assertThat(t.timeline.frozenCount()).isEqualTo(1);
    up.assertCancelled();
  }

  @Test
  void closingEndsTheRetryWithTheFailure() throws Exception {
    disk.setFree(0);
    freezeOne();
    StepVerifier.create(stage().flushUpTo(t.timeline.lastRecordLsn(), (a, b) -> {}))
        .expectSubscription()
        .then(
            () -> {
              try {
                await("a failed flush", () -> disk.refusals() > 0);
              } catch (InterruptedException e) {
                throw new AssertionError(e);
              }
              closing.tryEmitEmpty();
            })
        .expectErrorSatisfies(
            e ->
                assertThat(((LayerStoreException) e).kind())
                    .isEqualTo(LayerStoreException.Kind.NO_SPACE))
        .verify(Duration.ofSeconds(2));
    assertThat(t.timeline.frozenCount()).isEqualTo(1);
  }

  @Test
  void backoffDoublesFromOneToTenSeconds() {
    assertThat(
            List.of(0L, 1L, 2L, 3L, 4L, 5L, 100L).stream()
                .map(FlushStage::backoff)
                .map(Duration::toSeconds)
                .toList())
        .containsExactly(1L, 2L, 4L, 8L, 10L, 10L, 10L);
  }
}
