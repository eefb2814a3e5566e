package io.zenith.ingest;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.ingest.wal.records.TypedRecord;
import io.zenith.layer.LayerDisk;
import io.zenith.layer.LayerStoreConfig;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;
import reactor.test.publisher.TestPublisher;

/**
 * The freeze stage: a filter that requests only what the flush stage asked for, emits an item when
 * it froze a layer (distance, idle, checkpoint, end), and hands requests it could not serve back.
 * The test plays the ingest stage: it writes each record before passing it on.
 */
class FreezeStageTest {
  /** About 40 records (one ~100-byte version each) fill a layer. */
  private static final long DISTANCE = 4096;

  @TempDir Path dir;
  private SyntheticTimeline t;
  private WalIngest ingest;
  private Scheduler ingestThread;
  private final AtomicLong requested = new AtomicLong();
  private final TestPublisher<IngestEvent> up = TestPublisher.create();

  /**
   * The upstream, counting requests. {@code hide()} makes it deliver with plain {@code onNext}, so
   * that every event the filter drops shows as a request for one more (with Reactor's conditional
   * protocol, which the stage gets in the pipeline, a dropped event consumes no demand at all).
   */
  private reactor.core.publisher.Flux<IngestEvent> counted() {
    return up.flux().doOnRequest(requested::addAndGet).hide();
  }

  @BeforeEach
  void setUp() {
    t =
        new SyntheticTimeline(
            dir, LayerStoreConfig.DEFAULT.withCheckpointDistance(DISTANCE), LayerDisk.DIRECT);
    ingest = t.ingest();
    ingestThread = Schedulers.newSingle("ingest-test");
  }

  @AfterEach
  void tearDown() {
    ingestThread.dispose();
    t.close();
  }

  private FreezeStage stage(Duration idleFlush) {
    return new FreezeStage(t.timeline, idleFlush, ingestThread);
  }

  /** Writes records and passes them on while the stage requests them; returns how many. */
  private int feedWhileRequested(List<TypedRecord> records) {
    int i = 0;
    while (requested.get() > i && i < records.size()) {
      ingest.ingest(records.get(i));
      up.next(new IngestEvent.Decoded(records.get(i)));
      i++;
    }
    return i;
  }

  @Test
  void requestsOnlyWhatTheFlushStageAskedForAndEmitsOnlyWhenItFreezes() {
    t.append(200);
    List<TypedRecord> records = t.typedRecords();
    FreezeStage stage = stage(Duration.ofHours(1));
    int[] fed = new int[1];
    StepVerifier.create(stage.apply(counted()), 0)
        .expectSubscription()
        .then(() -> assertThat(requested).as("no demand, no request").hasValue(0))
        .thenRequest(1)
        .then(() -> assertThat(requested).hasValue(1))
        .then(() -> fed[0] = feedWhileRequested(records))
        .assertNext(
            r -> {
              // Emitted while the freezing record is passed on: the last one ingested.
              assertThat(r.upTo()).isEqualTo(t.timeline.lastRecordLsn());
              assertThat(r.checkpoints()).isEmpty();
            })
        .then(
            () -> {
              // Every record but the one that froze was dropped and replaced by a request.
              assertThat(fed[0]).isGreaterThan(10).isLessThan(records.size());
              assertThat(requested).as("no demand left, nothing requested").hasValue(fed[0]);
              assertThat(t.timeline.frozenCount()).isEqualTo(1);
            })
        .expectNoEvent(Duration.ofMillis(50))
        .thenCancel()
        .verify(Duration.ofSeconds(5));
  }

  @Test
  void idleTicksCheckpointsAndTheEndFreeze() {
    t.append(5);
    List<TypedRecord> records = t.typedRecords();
    FreezeStage stage = stage(Duration.ofMillis(20));
    CheckpointRequest cp = new CheckpointRequest();
    StepVerifier.create(stage.apply(up.flux()), 0)
        .thenRequest(10)
        .then(
            () -> {
              ingest.ingest(records.get(0));
              up.next(new IngestEvent.Decoded(records.get(0)));
              up.next(IngestEvent.TICK); // too early: no record for 20 ms yet
            })
        .expectNoEvent(Duration.ofMillis(60))
        .then(() -> up.next(IngestEvent.TICK))
        .assertNext(r -> assertThat(r.upTo()).isEqualTo(records.get(0).end()))
        .then(
            () -> {
              assertThat(t.timeline.frozenCount()).isEqualTo(1);
              ingest.ingest(records.get(1));
              up.next(new IngestEvent.Decoded(records.get(1)));
              assertThat(stage.offer(cp)).isTrue();
              up.next(IngestEvent.TICK);
            })
        .assertNext(
            r -> {
              assertThat(r.upTo()).isEqualTo(records.get(1).end());
              assertThat(r.checkpoints()).containsExactly(cp);
              assertThat(t.timeline.frozenCount()).isEqualTo(2);
            })
        .then(
            () -> {
              ingest.ingest(records.get(2));
              up.next(new IngestEvent.Decoded(records.get(2)));
              up.next(IngestEvent.END);
              up.complete();
            })
        .assertNext(r -> assertThat(r.upTo()).isEqualTo(records.get(2).end()))
        .verifyComplete();
    assertThat(t.timeline.frozenCount()).isEqualTo(3);

    // The run ended before a flush completed the checkpoint: it goes to the fallback, and so
    // does a request that arrives after the end.
    List<CheckpointRequest> fallback = new ArrayList<>();
    stage.end(fallback::add);
    assertThat(fallback).containsExactly(cp);
    CheckpointRequest late = new CheckpointRequest();
    assertThat(stage.offer(late)).as("served by the caller").isFalse();
  }

  @Test
  void leftoverFrozenLayersGetAFirstRequest() {
    t.append(1);
    ingest.ingest(t.typedRecords().get(0));
    t.timeline.freezeIfDue(true);
    StepVerifier.create(stage(Duration.ofHours(1)).apply(counted()), 0)
        .thenRequest(1)
        .assertNext(r -> assertThat(r.upTo()).isEqualTo(t.timeline.lastRecordLsn()))
        .then(() -> assertThat(requested).hasValue(0))
        .thenCancel()
        .verify(Duration.ofSeconds(5));
  }
}
