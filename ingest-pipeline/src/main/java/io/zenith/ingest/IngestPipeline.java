package io.zenith.ingest;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.Timeline;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalStream;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.reactivestreams.Publisher;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * The pageserver's write path for one timeline, as reactive stages:
 *
 * <ol>
 *   <li><b>decode</b> — {@link WalStream} reassembles records from the WAL source's chunks and
 *       {@link RecordDecoder} splits them; runs on the source's thread.
 *   <li><b>ingest</b> — {@link WalIngest} writes each record's versions into the open in-memory
 *       layer and freezes it when due; runs on this timeline's single ingest thread (blocking
 *       writes to the ephemeral file, never on a network thread). Records are handed over through a
 *       bounded queue of {@code prefetch} records.
 *   <li><b>flush</b> — frozen layers are written to layer files and committed on the flush thread.
 * </ol>
 *
 * <p><b>Backpressure:</b> when more than {@code maxFrozenLayers} frozen layers wait for the flush,
 * the ingest stage waits for it; its queue fills, decode stops requesting chunks, and the WAL
 * source stops reading its socket. Memory is bounded by the queue, the assembler's current record
 * and the frozen layers' indexes.
 *
 * <p><b>Full disk:</b> a flush that cannot write its layer file ({@link
 * LayerStoreException.Kind#NO_SPACE}) has changed nothing; the flush thread retries it after a
 * backoff ({@link #RETRY_MIN} doubling to {@link #RETRY_MAX}) until it works or the pipeline is
 * closed. Meanwhile ingest goes on until the backpressure above stops it, so the disk-consistent
 * LSN the source is told stays where it was (safekeepers hold the compute's commits by their lag
 * limits); once there is space, the retry flushes the frozen layers and ingest resumes. The
 * timeline logs the first failure and the recovery ({@link Timeline#flushFailure}); counted in
 * {@code zenith.flush.failures}, shown by the gauge {@code zenith.flush.blocked}.
 *
 * <p><b>Idle flush:</b> when no record arrived for {@code idleFlush}, everything ingested is frozen
 * and flushed, so the disk-consistent LSN catches up (a compute shutting down waits for it).
 *
 * <p>Cancel or error: the stages stop, nothing is released but the threads (unflushed versions are
 * ingested again from the disk-consistent LSN after a restart). Order: records strictly in WAL
 * order. One pipeline per timeline at a time.
 */
public final class IngestPipeline implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(IngestPipeline.class);

  /**
   * Settings.
   *
   * @param prefetch records decoded ahead of the ingest stage (the hand-off queue's size)
   * @param idleFlush flush everything after this long without a record
   * @param maxFrozenLayers frozen layers allowed to wait for the flush before ingest waits
   */
  public record Options(int prefetch, Duration idleFlush, int maxFrozenLayers) {
    public static final Options DEFAULT = new Options(256, Duration.ofSeconds(1), 2);
  }

  /** Receives the write position (last ingested record end) and the durable position. */
  @FunctionalInterface
  public interface Progress {
    void report(Lsn ingested, Lsn diskConsistent);
  }

  private final Timeline timeline;
  private final WalIngest ingest;
  private final Options options;
  private final Scheduler ingestThread;
  private final Scheduler flushThread;
  private final Counter records;
  private final Counter bytes;
  private final Timer flushTimer;
  private final AtomicLong lastRecordNanos = new AtomicLong(System.nanoTime());

  /** First wait before a failed (full disk) flush is retried; doubles up to {@link #RETRY_MAX}. */
  static final Duration RETRY_MIN = Duration.ofSeconds(1);

  static final Duration RETRY_MAX = Duration.ofSeconds(10);

  /** Counted down by {@link #close()}: ends a flush retry's wait. */
  private final CountDownLatch closing = new CountDownLatch(1);

  /** A hook tests use to slow the flush stage down (the backpressure scenario). */
  private volatile Duration flushDelay = Duration.ZERO;

  public IngestPipeline(
      Timeline timeline, WalIngest ingest, Options options, MeterRegistry meters) {
    this.timeline = timeline;
    this.ingest = ingest;
    this.options = options;
    String name = timeline.tenant() + "/" + timeline.id();
    this.ingestThread = Schedulers.newSingle("ingest-" + timeline.id().toString().substring(0, 8));
    this.flushThread = Schedulers.newSingle("flush-" + timeline.id().toString().substring(0, 8));
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
    this.flushTimer =
        Timer.builder("zenith.flush.duration")
            .tags(tags)
            .description("layer flushes")
            .register(meters);
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
    FunctionCounter.builder("zenith.flush.failures", timeline, Timeline::flushFailures)
        .tags(tags)
        .description("layer flushes that failed for want of space (and are retried)")
        .register(meters);
    Gauge.builder("zenith.flush.blocked", timeline, t -> t.flushFailure().isPresent() ? 1 : 0)
        .tags(tags)
        .description("1 while the timeline's flushes fail for want of space, else 0")
        .register(meters);
    Gauge.builder("zenith.ingest.frozen_layers", timeline, Timeline::frozenCount)
        .tags(tags)
        .register(meters);
    Gauge.builder("zenith.ingest.open_layer_bytes", timeline, Timeline::openLayerBytes)
        .tags(tags)
        .baseUnit("bytes")
        .register(meters);
    log.debug("ingest pipeline for {} created", name);
  }

  /** Slows every flush down by {@code delay} (tests of backpressure only). */
  public void setFlushDelayForTests(Duration delay) {
    this.flushDelay = delay;
  }

  /**
   * Ingests the WAL that {@code wal} delivers, starting exactly at the timeline's last record end.
   * Completes when the source completes (after a final flush), errors on malformed WAL.
   */
  public Mono<Void> run(
      Publisher<ByteBuffer> wal, int segmentSize, long systemId, Progress progress) {
    return Mono.defer(
        () -> {
          Lsn start = timeline.lastRecordLsn();
          WalRecordAssembler assembler =
              new WalRecordAssembler(
                  start, new WalRecordAssembler.Options(segmentSize, systemId, true));
          Disposable idle =
              Flux.interval(options.idleFlush(), ingestThread)
                  .filter(
                      t ->
                          System.nanoTime() - lastRecordNanos.get()
                              >= options.idleFlush().toNanos())
                  .filter(
                      t ->
                          timeline.lastRecordLsn().isAfter(timeline.diskConsistentLsn())
                              && timeline.frozenCount() == 0)
                  .subscribe(t -> freezeAndFlush(progress, true));
          return WalStream.records(wal, assembler)
              .map(RecordDecoder::decode)
              .publishOn(ingestThread, options.prefetch())
              .concatMap(r -> ingestOne(r, progress), 0)
              .doOnNext(end -> progress.report(end, timeline.diskConsistentLsn()))
              .then(Mono.fromRunnable(() -> timeline.freezeIfDue(true)).subscribeOn(ingestThread))
              .then(Mono.fromRunnable(() -> flushAll(progress)).subscribeOn(flushThread))
              .doFinally(s -> idle.dispose())
              .then();
        });
  }

  private Mono<Lsn> ingestOne(DecodedRecord r, Progress progress) {
    ingest.ingest(r);
    records.increment();
    bytes.increment(r.totalLength());
    lastRecordNanos.set(System.nanoTime());
    if (timeline.freezeIfDue(false)) {
      flushThread.schedule(() -> flushAll(progress));
    }
    if (timeline.frozenCount() > options.maxFrozenLayers()) {
      // Backpressure: wait until the flush thread has worked through what is ahead of us.
      return Mono.fromCallable(
              () -> {
                flushAll(progress);
                return r.end();
              })
          .subscribeOn(flushThread)
          .publishOn(ingestThread);
    }
    return Mono.just(r.end());
  }

  /** Freezes on the ingest thread (between records), then flushes on the flush thread. */
  private void freezeAndFlush(Progress progress, boolean force) {
    if (timeline.freezeIfDue(force)) {
      flushThread.schedule(() -> flushAll(progress));
    }
  }

  /**
   * Flushes every frozen layer, oldest first; on the flush thread. A flush that fails for want of
   * space is retried after a backoff until it works, so this returns only when nothing is frozen;
   * it gives up (throws the failure) once the pipeline is closed.
   */
  private void flushAll(Progress progress) {
    Duration backoff = RETRY_MIN;
    while (true) {
      long t0 = System.nanoTime();
      Duration delay = flushDelay;
      if (!delay.isZero() && timeline.frozenCount() > 0) {
        try {
          Thread.sleep(delay);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return;
        }
      }
      boolean flushed;
      try {
        flushed = timeline.flushOldestFrozen();
      } catch (LayerStoreException e) {
        if (e.kind() != LayerStoreException.Kind.NO_SPACE || !waitBeforeRetry(backoff)) {
          throw e;
        }
        backoff =
            backoff.multipliedBy(2).compareTo(RETRY_MAX) > 0 ? RETRY_MAX : backoff.multipliedBy(2);
        continue;
      }
      if (!flushed) {
        return;
      }
      backoff = RETRY_MIN;
      flushTimer.record(Duration.ofNanos(System.nanoTime() - t0));
      progress.report(timeline.lastRecordLsn(), timeline.diskConsistentLsn());
    }
  }

  /** Waits {@code d} unless the pipeline closes first; false if it did (or was interrupted). */
  private boolean waitBeforeRetry(Duration d) {
    try {
      return !closing.await(d.toNanos(), TimeUnit.NANOSECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  /**
   * Freezes what was ingested (between two records, on the ingest thread) and flushes it; completes
   * once it is durable.
   */
  public Mono<Void> checkpoint() {
    return Mono.fromRunnable(() -> timeline.freezeIfDue(true))
        .subscribeOn(ingestThread)
        .then(Mono.fromRunnable(() -> flushAll((a, b) -> {})).subscribeOn(flushThread))
        .then();
  }

  /**
   * Stops the pipeline's threads, waiting (up to a minute) for the record or flush in progress; a
   * flush waiting to be retried gives up (its layer stays frozen in the timeline). Idempotent;
   * concurrent callers all wait.
   */
  @Override
  public void close() {
    closing.countDown();
    ingestThread.disposeGracefully().timeout(Duration.ofMinutes(1)).onErrorComplete().block();
    flushThread.disposeGracefully().timeout(Duration.ofMinutes(1)).onErrorComplete().block();
  }
}
