package io.zenith.ingest;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.wal.records.TypedRecord;
import io.zenith.layer.LayerDisk;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.wal.Lsn;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;
import reactor.test.publisher.TestPublisher;

/**
 * The ingest stage: a queue of {@code prefetch} events drained on the ingest thread only while
 * downstream has demand; records written there in order, each reported.
 */
class IngestStageTest {
  private static final int PREFETCH = 4;

  @TempDir Path dir;
  private SyntheticTimeline t;
  private Scheduler ingestThread;
  private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
  private final List<Lsn> reported = new CopyOnWriteArrayList<>();
  private final Set<String> threads = ConcurrentHashMap.newKeySet();
  private final AtomicLong requested = new AtomicLong();

  @BeforeEach
  void setUp() {
    t = new SyntheticTimeline(dir, LayerStoreConfig.DEFAULT, LayerDisk.DIRECT);
    ingestThread = Schedulers.newSingle("ingest-test");
  }

  @AfterEach
  void tearDown() {
    ingestThread.dispose();
    t.close();
  }

  private IngestStage stage() {
    return new IngestStage(
        t.ingest(),
        ingestThread,
        PREFETCH,
        Counter.builder("records").register(meters),
        Counter.builder("bytes").register(meters),
        (ingested, disk) -> {
          reported.add(ingested);
          threads.add(Thread.currentThread().getName());
        });
  }

  @Test
  void writesOnlyWhileDownstreamHasDemandAndRequestsNoMoreThanItsQueue() {
    t.append(10);
    List<TypedRecord> records = t.typedRecords();
    TestPublisher<IngestEvent> up = TestPublisher.create();
    StepVerifier.create(stage().apply(up.flux().doOnRequest(requested::addAndGet)), 0)
        .expectSubscription()
        .then(() -> assertThat(requested).as("the queue's prefetch").hasValue(PREFETCH))
        .then(
            () -> {
              for (int i = 0; i < PREFETCH; i++) {
                up.next(new IngestEvent.Decoded(records.get(i)));
              }
            })
        .expectNoEvent(Duration.ofMillis(100))
        .then(
            () -> {
              assertThat(reported).as("nothing written without demand").isEmpty();
              assertThat(t.timeline.lastRecordLsn()).isEqualTo(t.start());
              assertThat(requested).as("a full queue requests nothing").hasValue(PREFETCH);
            })
        .thenRequest(2)
        .expectNextCount(2)
        .then(
            () -> assertThat(reported).containsExactly(records.get(0).end(), records.get(1).end()))
        .thenCancel()
        .verify(Duration.ofSeconds(5));
    assertThat(requested).hasValue(PREFETCH);
  }

  @Test
  void writesEveryRecordInOrderOnTheIngestThreadAndPassesEveryEventOn() {
    t.append(50);
    List<TypedRecord> records = t.typedRecords();
    List<IngestEvent> events = new ArrayList<>();
    records.forEach(r -> events.add(new IngestEvent.Decoded(r)));
    events.add(25, IngestEvent.TICK);
    events.add(IngestEvent.END);
    StepVerifier.create(stage().apply(Flux.fromIterable(events)))
        .expectNextSequence(events)
        .verifyComplete();
    assertThat(reported).containsExactlyElementsOf(records.stream().map(TypedRecord::end).toList());
    assertThat(threads).singleElement().asString().startsWith("ingest-test-");
    assertThat(t.timeline.lastRecordLsn()).isEqualTo(records.getLast().end());
    assertThat(meters.get("records").counter().count()).isEqualTo(records.size());
  }

  @Test
  void anErrorArrivesAfterTheQueuedRecordsWereWritten() {
    t.append(3);
    List<TypedRecord> records = t.typedRecords();
    TestPublisher<IngestEvent> up = TestPublisher.create();
    StepVerifier.create(stage().apply(up.flux()), 0)
        .then(
            () -> {
              records.forEach(r -> up.next(new IngestEvent.Decoded(r)));
              up.error(new IllegalStateException("source broke"));
            })
        .thenRequest(Long.MAX_VALUE)
        .expectNextCount(3)
        .expectErrorMessage("source broke")
        .verify(Duration.ofSeconds(5));
    assertThat(t.timeline.lastRecordLsn()).isEqualTo(records.getLast().end());
  }
}
