package io.zenith.ingest;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.testing.FullLayerDisk;
import io.zenith.wal.Lsn;
import io.zenith.wal.testing.SyntheticWal;
import java.nio.ByteBuffer;
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
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Schedulers;

/**
 * The composed pipeline on a real layer store and synthetic WAL: every record in WAL order, the
 * final flush, progress from the right threads, a full disk stopping the source by demand with
 * {@code maxFrozenLayers + 1} frozen layers, idle flush, and checkpoints while it runs.
 */
class IngestPipelineTest {
  /** About 40 records fill a layer. */
  private static final long DISTANCE = 4096;

  private static final IngestPipeline.Options OPTIONS =
      new IngestPipeline.Options(16, Duration.ofHours(1), 2);

  @TempDir Path dir;
  private final FullLayerDisk disk = FullLayerDisk.unlimited();
  private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
  private SyntheticTimeline t;
  private final List<Lsn> ingested = new CopyOnWriteArrayList<>();
  private final Set<String> ingestThreads = ConcurrentHashMap.newKeySet();
  private final Set<String> flushThreads = ConcurrentHashMap.newKeySet();
  private final AtomicLong chunksRequested = new AtomicLong();
  private volatile Lsn reportedDurable = Lsn.INVALID;
  private volatile boolean ingestThreadNonBlocking;

  @BeforeEach
  void setUp() {
    t = new SyntheticTimeline(dir, LayerStoreConfig.DEFAULT.withCheckpointDistance(DISTANCE), disk);
  }

  @AfterEach
  void tearDown() {
    t.close();
  }

  private IngestPipeline pipeline(IngestPipeline.Options options) {
    return new IngestPipeline(t.timeline, t.ingest(), options, meters);
  }

  /** Progress: record ends from the ingest thread, durable positions from the flush thread. */
  private void progress(Lsn written, Lsn durable) {
    String thread = Thread.currentThread().getName();
    if (thread.startsWith("ingest-")) {
      ingested.add(written);
      ingestThreads.add(thread);
      ingestThreadNonBlocking |= Schedulers.isInNonBlockingThread();
    } else {
      flushThreads.add(thread);
    }
    reportedDurable = durable;
  }

  private Flux<ByteBuffer> source(boolean endless) {
    Flux<ByteBuffer> chunks = Flux.fromIterable(t.chunksPerRecord());
    return (endless ? chunks.concatWith(Flux.never()) : chunks)
        .doOnRequest(chunksRequested::addAndGet);
  }

  private Disposable start(IngestPipeline p, boolean endless) {
    return p.run(source(endless), t.wal.segmentSize(), t.wal.systemId(), this::progress)
        .subscribe();
  }

  private static void await(String what, BooleanSupplier cond) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (!cond.getAsBoolean()) {
      assertThat(System.nanoTime()).as("waiting for " + what).isLessThan(deadline);
      Thread.sleep(5);
    }
  }

  @Test
  void ingestsEveryRecordInWalOrderAndFlushesAtTheEnd() {
    List<SyntheticWal.Written> records = t.append(1000);
    try (IngestPipeline p = pipeline(OPTIONS)) {
      p.run(source(false), t.wal.segmentSize(), t.wal.systemId(), this::progress)
          .block(Duration.ofSeconds(60));
    }
    Lsn last = records.getLast().end();
    assertThat(ingested).containsExactlyElementsOf(records.stream().map(w -> w.end()).toList());
    assertThat(t.timeline.lastRecordLsn()).isEqualTo(last);
    assertThat(t.timeline.diskConsistentLsn()).as("the final flush").isEqualTo(last);
    assertThat(t.timeline.frozenCount()).isZero();
    assertThat(reportedDurable).isEqualTo(last);
    assertThat(ingestThreads).hasSize(1).allMatch(n -> n.startsWith("ingest-33333333"));
    assertThat(ingestThreadNonBlocking)
        .as("the ingest thread may block: its reads may download a layer file (ADR 0027)")
        .isFalse();
    assertThat(flushThreads).hasSize(1).allMatch(n -> n.startsWith("flush-33333333"));
    assertThat(meters.get("zenith.ingest.records").counter().count()).isEqualTo(1000);
    assertThat(meters.get("zenith.flush.duration").timer().count())
        .as("layers of about 40 records")
        .isGreaterThan(10);
  }

  @Test
  void aFullDiskStopsTheSourceByDemandWithMaxFrozenLayersPlusOneFrozen() throws Exception {
    t.append(2000);
    disk.setFree(0);
    try (IngestPipeline p = pipeline(OPTIONS)) {
      Disposable run = start(p, false);
      try {
        await("the frozen layers to pile up", () -> t.timeline.frozenCount() > 2);
        long requested = -1;
        // Settled: nothing more asked of the source over a while.
        while (requested != chunksRequested.get()) {
          requested = chunksRequested.get();
          Thread.sleep(300);
        }
        assertThat(t.timeline.frozenCount()).isEqualTo(OPTIONS.maxFrozenLayers() + 1);
        assertThat(requested).as("the source was stopped").isLessThan(1000);
        assertThat(t.timeline.diskConsistentLsn()).isEqualTo(t.start());
        assertThat(meters.get("zenith.flush.blocked").gauge().value()).isEqualTo(1);

        disk.setFree(Long.MAX_VALUE);
        await(
            "the source to be drained",
            () -> t.timeline.diskConsistentLsn().equals(t.records().getLast().end()));
        assertThat(meters.get("zenith.flush.blocked").gauge().value()).isZero();
        assertThat(ingested).hasSize(2000);
      } finally {
        run.dispose();
      }
    }
  }

  @Test
  void checkpointWhileRunningCompletesOnceDurableAndIdleFlushCatchesUp() throws Exception {
    t.append(100);
    IngestPipeline.Options options = new IngestPipeline.Options(16, Duration.ofMillis(200), 2);
    try (IngestPipeline p = pipeline(options)) {
      Disposable run = start(p, true);
      try {
        await("100 records", () -> ingested.size() == 100);
        Lsn last = t.records().getLast().end();
        p.checkpoint().block(Duration.ofSeconds(10));
        assertThat(t.timeline.diskConsistentLsn()).isEqualTo(last);
        assertThat(reportedDurable).as("reported by the flush stage").isEqualTo(last);
      } finally {
        run.dispose();
      }
    }
    // A second pipeline on the rest of the WAL: no checkpoint, the idle flush makes it durable.
    List<SyntheticWal.Written> more = t.append(10);
    ingested.clear();
    chunksRequested.set(0);
    try (IngestPipeline p = pipeline(options)) {
      Flux<ByteBuffer> rest =
          Flux.fromIterable(t.chunksPerRecord().subList(100, 110)).concatWith(Flux.never());
      Disposable run =
          p.run(rest, t.wal.segmentSize(), t.wal.systemId(), this::progress).subscribe();
      try {
        await("the idle flush", () -> t.timeline.diskConsistentLsn().equals(more.getLast().end()));
        assertThat(ingested).hasSize(10);
      } finally {
        run.dispose();
      }
    }
  }

  @Test
  void aCheckpointQueuedWhenTheRunIsCancelledIsStillServed() throws Exception {
    t.append(50);
    try (IngestPipeline p = pipeline(OPTIONS)) {
      disk.setFree(0);
      Disposable run = start(p, true);
      await("50 records", () -> ingested.size() == 50);
      var checkpoint = p.checkpoint().toFuture();
      await("a failed flush", () -> disk.refusals() > 0);
      run.dispose();
      disk.setFree(Long.MAX_VALUE);
      checkpoint.get(); // served after the run, with the same outcome
      assertThat(t.timeline.diskConsistentLsn()).isEqualTo(t.records().getLast().end());
    }
  }
}
