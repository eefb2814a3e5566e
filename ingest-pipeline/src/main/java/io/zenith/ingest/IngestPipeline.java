package io.zenith.ingest;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.zenith.layer.CompactionResult;
import io.zenith.layer.CompactionSettings;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.TimelineWriter;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalRecordAssembler;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.function.Supplier;
import org.reactivestreams.Publisher;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * The pageserver's write path for one timeline: four reactive stages, each a class with its own
 * contract ({@link DecodeStage}, {@link IngestStage}, {@link FreezeStage}, {@link FlushStage}),
 * composed as {@link Flux} operators:
 *
 * <pre>
 * WAL source ──chunks──▶ decode ──records──▶ merge(prefetch 1) ◀── ticks (idle timer, checkpoints)
 * (source's thread)     (source's thread)        │
 *                                                ▼
 * ingest thread:  publishOn queue (prefetch) ──▶ ingest ──▶ freeze (a filter)
 *                                                              │ a frozen layer, when it froze one
 *                                                              ▼
 * flush thread:   limitRate(maxFrozenLayers, 1) ──▶ concatMap(gate, flush one, 0) ──▶ disk-consistent LSN
 *                                                        ▲            │ each flushed layer
 *                                                        │ L0 ≥ stall  ▼ (latest-wins trigger)
 * compaction thread:                                     └── compaction pass (images, L0 → L1)
 * </pre>
 *
 * <p><b>Compaction</b> (when a {@link Compactor} is given): a pass after each flush, on its own
 * thread ({@link CompactionStage}); while the timeline has twice {@code compaction_threshold} L0
 * layers, the flush stage waits for a pass before it flushes more, so ingest slows to compaction's
 * pace (counted in {@code zenith.compaction.stalls}).
 *
 * <p><b>Backpressure is demand:</b> the flush stage requests one frozen layer per layer it takes,
 * with at most {@code maxFrozenLayers} waiting; the freeze stage, a filter, requests records only
 * while it has demand; so when flushes are slow (or fail for want of space) the ingest stage stops
 * draining its queue, the queue fills, decode stops requesting chunks and the WAL source stops
 * reading its socket. No thread waits for another stage. Memory is bounded by the queue, the
 * assembler's current record, the open layer and {@code maxFrozenLayers + 1} frozen layers.
 *
 * <p><b>Full disk:</b> a flush that cannot write its layer file ({@link
 * LayerStoreException.Kind#NO_SPACE}) has changed nothing; the flush stage retries it after a
 * backoff ({@link #RETRY_MIN} doubling to {@link #RETRY_MAX}) until it works or the pipeline is
 * closed. Meanwhile ingest goes on until the backpressure above stops it, so the disk-consistent
 * LSN the source is told stays where it was (safekeepers hold the compute's commits by their lag
 * limits); once there is space, the retry flushes the frozen layers and ingest resumes. The
 * timeline logs the first failure and the recovery ({@link TimelineWriter#flushFailure}); counted
 * in {@code zenith.flush.failures}, shown by the gauge {@code zenith.flush.blocked}.
 *
 * <p><b>Idle flush:</b> when no record arrived for {@code idleFlush}, everything ingested is frozen
 * and flushed, so the disk-consistent LSN catches up (a compute shutting down waits for it).
 *
 * <p><b>Progress:</b> the write position after each record (ingest thread), the disk-consistent LSN
 * after each flushed layer (flush thread).
 *
 * <p>Cancel or error: the stages stop, nothing is released but the threads (unflushed versions are
 * ingested again from the disk-consistent LSN after a restart). Order: records strictly in WAL
 * order. One pipeline per timeline at a time, one run at a time. Thread-safe: {@link #checkpoint}
 * and {@link #close} from any thread.
 */
public final class IngestPipeline implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(IngestPipeline.class);

  /**
   * Settings.
   *
   * @param prefetch records decoded ahead of the ingest stage (the hand-off queue's size)
   * @param idleFlush flush everything after this long without a record
   * @param maxFrozenLayers frozen layers allowed to wait for the flush stage (one more is being
   *     flushed) before ingest stops: the write path's backpressure point, and the only setting of
   *     it (the layer store has none)
   */
  public record Options(int prefetch, Duration idleFlush, int maxFrozenLayers) {
    public static final Options DEFAULT = new Options(256, Duration.ofSeconds(1), 2);

    public Options {
      if (prefetch < 1 || maxFrozenLayers < 1) {
        throw new IllegalArgumentException("prefetch and frozen layer limit must be positive");
      }
    }
  }

  /**
   * What the compaction stage runs after each flush.
   *
   * @param stallL0 L0 layers at which flushes wait for a pass
   * @param pass one compaction pass (blocking)
   */
  public record Compactor(int stallL0, Supplier<CompactionResult> pass) {
    /**
     * {@code pass} (a {@code Timeline.compact} with {@code settings}), with flushes waiting at
     * twice {@code compaction_threshold} L0 layers.
     */
    public static Compactor of(CompactionSettings settings, Supplier<CompactionResult> pass) {
      return new Compactor(2 * settings.compactionThreshold(), pass);
    }
  }

  /** Receives the write position (last ingested record end) and the durable position. */
  @FunctionalInterface
  public interface Progress {
    void report(Lsn ingested, Lsn diskConsistent);
  }

  private final TimelineWriter timeline;
  private final WalIngest ingest;
  private final Options options;
  private final Scheduler ingestThread;
  private final Scheduler flushThread;
  private final Counter records;
  private final Counter bytes;
  private final FlushStage flush;
  private final CompactionStage compaction;

  /** First wait before a failed (full disk) flush is retried; doubles up to {@link #RETRY_MAX}. */
  static final Duration RETRY_MIN = Duration.ofSeconds(1);

  static final Duration RETRY_MAX = Duration.ofSeconds(10);

  /** Completed by {@link #close()}: ends a flush retry's wait. */
  private final Sinks.Empty<Void> closing = Sinks.empty();

  /**
   * The freeze stage of the run in progress, which takes checkpoint requests; null between runs.
   */
  private volatile FreezeStage running;

  public IngestPipeline(
      TimelineWriter timeline, WalIngest ingest, Options options, MeterRegistry meters) {
    this(timeline, ingest, options, meters, null);
  }

  /**
   * @param compactor compaction after each flush; null for none
   */
  public IngestPipeline(
      TimelineWriter timeline,
      WalIngest ingest,
      Options options,
      MeterRegistry meters,
      Compactor compactor) {
    this.timeline = timeline;
    this.ingest = ingest;
    this.options = options;
    String name = timeline.tenant() + "/" + timeline.id();
    // Every task on the timeline's own threads logs with its ids (LogContext).
    // Ingest reads the timeline (relation and SLRU sizes), which may download a layer file that
    // is only in remote storage (ADR 0027) and blocks: a thread that may block, not a newSingle
    // one,
    // whose threads Reactor marks non-blocking (the ingest of a tenant just attached failed on
    // every
    // retry: PageserverAttachIngestTest).
    this.ingestThread =
        LogContext.scheduler(
            Schedulers.newBoundedElastic(
                1, Integer.MAX_VALUE, "ingest-" + timeline.id().toString().substring(0, 8)),
            timeline.tenant(),
            timeline.id());
    this.flushThread =
        LogContext.scheduler(
            Schedulers.newSingle("flush-" + timeline.id().toString().substring(0, 8)),
            timeline.tenant(),
            timeline.id());
    Tags tags =
        Tags.of("tenant", timeline.tenant().toString(), "timeline", timeline.id().toString());
    this.records =
        Counter.builder("zenith.ingest.records")
            .tags(tags)
            .description("WAL records ingested")
            .register(meters);
    this.bytes =
        Counter.builder("zenith.ingest.bytes")
            .tags(tags)
            .description("WAL bytes ingested")
            .baseUnit("bytes")
            .register(meters);
    Timer flushTimer =
        Timer.builder("zenith.flush.duration")
            .tags(tags)
            .description("layer flushes")
            .register(meters);
    this.compaction = compactor == null ? null : compactionStage(timeline, compactor, tags, meters);
    this.flush =
        new FlushStage(
            timeline,
            flushThread,
            options.maxFrozenLayers(),
            flushTimer,
            closing.asMono(),
            compaction);
    Gauge.builder("zenith.timeline.last_record_lsn", timeline, t -> t.lastRecordLsn().value())
        .tags(tags)
        .register(meters);
    Gauge.builder(
            "zenith.timeline.disk_consistent_lsn", timeline, t -> t.diskConsistentLsn().value())
        .tags(tags)
        .register(meters);
    Gauge.builder(
            "zenith.ingest.flush_lag_bytes",
            timeline,
            t -> t.lastRecordLsn().minus(t.diskConsistentLsn()))
        .tags(tags)
        .baseUnit("bytes")
        .description("WAL ingested but not yet durable")
        .register(meters);
    FunctionCounter.builder("zenith.flush.failures", timeline, TimelineWriter::flushFailures)
        .tags(tags)
        .description("layer flushes that failed for want of space (and are retried)")
        .register(meters);
    Gauge.builder("zenith.flush.blocked", timeline, t -> t.flushFailure().isPresent() ? 1 : 0)
        .tags(tags)
        .description("1 while the timeline's flushes fail for want of space, else 0")
        .register(meters);
    Gauge.builder("zenith.ingest.frozen_layers", timeline, TimelineWriter::frozenCount)
        .tags(tags)
        .register(meters);
    Gauge.builder("zenith.ingest.open_layer_bytes", timeline, TimelineWriter::openLayerBytes)
        .tags(tags)
        .baseUnit("bytes")
        .register(meters);
    log.debug("ingest pipeline for {} created", name);
  }

  private static CompactionStage compactionStage(
      TimelineWriter timeline, Compactor c, Tags tags, MeterRegistry meters) {
    Gauge.builder("zenith.compaction.l0_layers", timeline, TimelineWriter::l0Layers)
        .tags(tags)
        .description(
            "flushed L0 delta layers not yet compacted (flushes wait at twice the threshold)")
        .register(meters);
    return new CompactionStage(
        timeline,
        c.pass(),
        c.stallL0(),
        // One thread that may block (a pass waits for page reconstruction): not a newSingle one,
        // whose threads Reactor marks non-blocking.
        LogContext.scheduler(
            Schedulers.newBoundedElastic(
                1, Integer.MAX_VALUE, "compact-" + timeline.id().toString().substring(0, 8)),
            timeline.tenant(),
            timeline.id()),
        Timer.builder("zenith.compaction.duration")
            .tags(tags)
            .description("compaction passes of the ingest pipeline")
            .register(meters),
        Counter.builder("zenith.compaction.stalls")
            .tags(tags)
            .description("flushes held because compaction lagged (too many L0 layers)")
            .register(meters));
  }

  /**
   * Ingests the WAL that {@code wal} delivers, starting exactly at the timeline's last record end.
   * Completes when the source completes (after a final flush), errors on malformed WAL.
   */
  public Mono<Void> run(
      Publisher<ByteBuffer> wal, int segmentSize, long systemId, Progress progress) {
    return Mono.defer(
        () -> {
          WalRecordAssembler assembler =
              new WalRecordAssembler(
                  timeline.lastRecordLsn(),
                  new WalRecordAssembler.Options(segmentSize, systemId, true));
          FreezeStage freeze = new FreezeStage(timeline, options.idleFlush(), ingestThread);
          IngestStage write =
              new IngestStage(ingest, ingestThread, options.prefetch(), records, bytes, progress);
          // Prefetch 1: the merge adds one record to what the ingest stage's queue holds.
          Flux<IngestEvent> events =
              Flux.merge(1, DecodeStage.decode(wal, assembler), freeze.triggers())
                  .takeUntil(e -> e instanceof IngestEvent.End);
          return flush
              .apply(freeze.apply(write.apply(events)), progress)
              .doOnSubscribe(s -> running = freeze)
              .doFinally(
                  s -> {
                    if (running == freeze) {
                      running = null;
                    }
                    freeze.end(this::checkpointDirectly);
                  });
        });
  }

  /**
   * Freezes what was ingested (between two records, on the ingest thread) and flushes it; completes
   * once it is durable. While the pipeline runs, the freeze stage takes the request with the next
   * event and the flush stage completes it in turn; otherwise it is done here.
   */
  public Mono<Void> checkpoint() {
    return Mono.defer(
        () -> {
          FreezeStage f = running;
          CheckpointRequest r = new CheckpointRequest();
          if (f != null && f.offer(r)) {
            return r.done();
          }
          return checkpointNow();
        });
  }

  /** A checkpoint request the run will not serve: served here, with the same outcome. */
  private void checkpointDirectly(CheckpointRequest r) {
    checkpointNow().subscribe(null, r::fail, r::complete);
  }

  private Mono<Void> checkpointNow() {
    return Mono.fromCallable(
            () -> {
              timeline.freezeIfDue(true);
              return timeline.lastRecordLsn();
            })
        .subscribeOn(ingestThread)
        .flatMap(upTo -> flush.flushUpTo(upTo, (a, b) -> {}));
  }

  /**
   * Stops the pipeline's threads, waiting (up to a minute) for the record or flush in progress; a
   * flush waiting to be retried gives up with its failure (its layer stays frozen in the timeline).
   * Idempotent; concurrent callers all wait.
   */
  @Override
  public void close() {
    closing.tryEmitEmpty();
    ingestThread.disposeGracefully().timeout(Duration.ofMinutes(1)).onErrorComplete().block();
    flushThread.disposeGracefully().timeout(Duration.ofMinutes(1)).onErrorComplete().block();
    if (compaction != null) {
      compaction.stop();
    }
  }
}
