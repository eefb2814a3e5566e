package io.zenith.ingest;

import io.micrometer.core.instrument.Timer;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.TimelineWriter;
import io.zenith.wal.Lsn;
import java.time.Duration;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.util.retry.Retry;

/**
 * The flush stage: writes frozen layers to layer files and commits them ({@link
 * TimelineWriter#flushOldestFrozen}), oldest first, for each {@link FlushRequest}; reports the
 * disk-consistent LSN after each layer and completes the request's checkpoints.
 *
 * <ul>
 *   <li><b>Thread:</b> the timeline's flush thread (blocking file I/O and fsync).
 *   <li><b>Demand:</b> requests {@code maxFrozenLayers} items up front and one more each time it
 *       takes one to flush ({@code limitRate(maxFrozenLayers, 1)} ahead of a {@code concatMap(…,
 *       0)}): this is the pipeline's backpressure point. While a flush is slow or fails, the freeze
 *       stage gets no demand, and the stages before it stop in turn.
 *   <li><b>Bound:</b> at most {@code maxFrozenLayers} items waiting and one being flushed, so the
 *       timeline holds at most {@code maxFrozenLayers + 1} frozen layers (and the open one).
 *   <li><b>Compaction:</b> each flushed layer triggers the {@link CompactionStage}; each request
 *       first passes its gate, which holds it while compaction lags (too many L0 layers).
 *   <li><b>Full disk:</b> a flush that fails with {@link LayerStoreException.Kind#NO_SPACE} changed
 *       nothing and is retried after {@link IngestPipeline#RETRY_MIN}, doubling up to {@link
 *       IngestPipeline#RETRY_MAX} (no jitter), on the flush thread, until it works or the pipeline
 *       closes (then it fails with that error). Other failures end the stage.
 *   <li><b>Cancel / error:</b> cancelling ends a retry wait; a layer write in progress completes
 *       (blocking I/O is not interrupted). The layers not flushed stay frozen in the timeline.
 *   <li><b>Order:</b> items one at a time, in order; layers in LSN order.
 * </ul>
 *
 * <p>Thread-safe: holds no state of its own beyond its settings; one instance per pipeline.
 */
final class FlushStage {
  private final TimelineWriter timeline;
  private final Scheduler flushThread;
  private final int maxFrozenLayers;
  private final Timer flushTimer;
  private final Mono<Void> closing;
  private final CompactionStage compaction;

  /**
   * @param compaction the stage after this one: triggered after each flushed layer, and its gate
   *     passed before each request is flushed; null for none
   */
  FlushStage(
      TimelineWriter timeline,
      Scheduler flushThread,
      int maxFrozenLayers,
      Timer flushTimer,
      Mono<Void> closing,
      CompactionStage compaction) {
    this.timeline = timeline;
    this.flushThread = flushThread;
    this.maxFrozenLayers = maxFrozenLayers;
    this.flushTimer = flushTimer;
    this.closing = closing;
    this.compaction = compaction;
  }

  /** Flushes for each request; completes after the last one's flush. */
  Mono<Void> apply(Flux<FlushRequest> requests, IngestPipeline.Progress progress) {
    return requests
        .limitRate(maxFrozenLayers, 1)
        .concatMap(
            r ->
                (compaction == null ? Mono.<Void>empty() : compaction.gate())
                    .then(flushUpTo(r.upTo(), progress))
                    .doOnSuccess(v -> r.checkpoints().forEach(CheckpointRequest::complete))
                    .doOnError(e -> r.checkpoints().forEach(c -> c.fail(e))),
            0)
        .then();
  }

  /**
   * Flushes the oldest frozen layers, one at a time on the flush thread, until {@code upTo} is
   * durable or nothing is frozen; a flush that fails for want of space is retried.
   */
  Mono<Void> flushUpTo(Lsn upTo, IngestPipeline.Progress progress) {
    return Mono.fromCallable(() -> flushOne(upTo, progress))
        .subscribeOn(flushThread)
        .retryWhen(noSpaceRetry())
        .repeat()
        .takeUntil(more -> !more)
        .then();
  }

  /** Flushes one layer if {@code upTo} is not durable yet; true if it did. */
  private boolean flushOne(Lsn upTo, IngestPipeline.Progress progress) {
    if (!timeline.diskConsistentLsn().isBefore(upTo)) {
      return false;
    }
    long t0 = System.nanoTime();
    if (!timeline.flushOldestFrozen()) {
      return false;
    }
    flushTimer.record(Duration.ofNanos(System.nanoTime() - t0));
    progress.report(timeline.lastRecordLsn(), timeline.diskConsistentLsn());
    if (compaction != null) {
      compaction.trigger();
    }
    return true;
  }

  /** Retries NO_SPACE failures with a doubling backoff until the pipeline closes. */
  private Retry noSpaceRetry() {
    return Retry.from(
        signals ->
            signals.concatMap(
                s -> {
                  Throwable f = s.failure();
                  if (!(f instanceof LayerStoreException e
                      && e.kind() == LayerStoreException.Kind.NO_SPACE)) {
                    return Mono.error(f);
                  }
                  return Mono.delay(backoff(s.totalRetriesInARow()), flushThread)
                      .takeUntilOther(closing)
                      .switchIfEmpty(Mono.error(f));
                }));
  }

  /** {@link IngestPipeline#RETRY_MIN} doubled {@code retries} times, at most RETRY_MAX. */
  static Duration backoff(long retries) {
    long ms = IngestPipeline.RETRY_MIN.toMillis() << Math.min(retries, 20);
    return Duration.ofMillis(Math.min(ms, IngestPipeline.RETRY_MAX.toMillis()));
  }
}
