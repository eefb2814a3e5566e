package io.zenith.ingest;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Timer;
import io.zenith.layer.CompactionResult;
import io.zenith.layer.TimelineWriter;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;

/**
 * The compaction stage, after the flush stage: each flushed layer triggers a compaction pass of the
 * timeline (image layers where due, then the merge of L0 layers into L1 layers: {@code
 * Timeline.compact}), and the flush stage waits at its gate while compaction lags too far behind.
 *
 * <ul>
 *   <li><b>Thread:</b> passes run on the pipeline's compaction thread (blocking I/O and page
 *       reconstruction), never on the ingest or flush thread.
 *   <li><b>Demand:</b> one pass at a time; triggers are latest-wins ({@code onBackpressureLatest}):
 *       flushes during a pass leave one pending trigger, and a pass compacts whatever is due when
 *       it runs. Ingest never waits for a pass to start or finish, except at the gate below.
 *   <li><b>Bound (the rule):</b> while the timeline has {@code stallL0} or more L0 layers (twice
 *       {@code compaction_threshold}), the flush stage's gate holds the next flush until a pass
 *       completes (one pass per flush at most). Frozen layers then wait, the freeze stage gets no
 *       demand, and ingest slows down to compaction's pace: read amplification and memory stay
 *       bounded instead of L0 layers piling up. Each gate wait counts in {@code
 *       zenith.compaction.stalls}; the L0 count is the gauge {@code zenith.compaction.l0_layers}.
 *   <li><b>Errors:</b> a failed pass is logged and opens the gate like any finished pass (a broken
 *       compaction must not stop ingest forever); the next flush triggers another pass.
 *   <li><b>Cancel:</b> {@link #stop} ends the triggers; a pass in progress completes.
 *   <li><b>Order:</b> passes in trigger order, one at a time.
 * </ul>
 *
 * <p>Thread-safe: {@link #trigger} and {@link #gate} from any thread.
 */
final class CompactionStage {
  private static final Logger log = LoggerFactory.getLogger(CompactionStage.class);

  private final TimelineWriter timeline;
  private final Supplier<CompactionResult> pass;
  private final int stallL0;
  private final Scheduler thread;
  private final Timer duration;
  private final Counter stalls;
  private final Sinks.Many<Boolean> triggers = Sinks.many().multicast().directBestEffort();

  /**
   * The number of the last finished pass (however it went). Replays the latest to each new
   * subscriber: a multicast sink only adds a subscriber after its {@code onSubscribe}, so a pass
   * that failed at once could finish in between and a gate would wait for a pass that never comes
   * (its flush is what would trigger the next one).
   */
  private final Sinks.Many<Long> passes = Sinks.many().replay().latest();

  private final AtomicLong finished = new AtomicLong();

  private final Disposable running;
  private volatile boolean stopping;

  CompactionStage(
      TimelineWriter timeline,
      Supplier<CompactionResult> pass,
      int stallL0,
      Scheduler thread,
      Timer duration,
      Counter stalls) {
    this.timeline = timeline;
    this.pass = pass;
    this.stallL0 = stallL0;
    this.thread = thread;
    this.duration = duration;
    this.stalls = stalls;
    this.running =
        triggers
            .asFlux()
            .onBackpressureLatest()
            .concatMap(t -> Mono.fromCallable(this::runPass).subscribeOn(thread), 0)
            .subscribe(worked -> passes.tryEmitNext(finished.incrementAndGet()));
  }

  /** Asks for a pass (after a flush). Never blocks. */
  void trigger() {
    triggers.tryEmitNext(Boolean.TRUE);
  }

  /**
   * Completes at once while the timeline has fewer than {@code stallL0} L0 layers; otherwise once
   * the next pass has finished (however it went): a flush waits for at most one pass, so ingest
   * goes at compaction's pace and never spins on, or waits forever for, a compaction that cannot
   * catch up.
   */
  Mono<Void> gate() {
    return Mono.defer(
        () -> {
          if (timeline.l0Layers() < stallL0) {
            return Mono.empty();
          }
          stalls.increment();
          // Read before the trigger: any pass finishing after this point opens the gate, even
          // one that finished before the subscription below was registered (the replay).
          long seen = finished.get();
          return passes.asFlux().filter(n -> n > seen).next().doOnSubscribe(s -> trigger()).then();
        });
  }

  private boolean runPass() {
    long t0 = System.nanoTime();
    try {
      CompactionResult r = pass.get();
      duration.record(Duration.ofNanos(System.nanoTime() - t0));
      if (r.didSomething()) {
        log.debug("compaction of {}: {}", timeline, r);
      }
      return true;
    } catch (RuntimeException e) {
      if (stopping) {
        // stop() interrupted it: what it wrote but did not commit is deleted at the next start
        log.info("compaction of {} stopped with its pipeline: {}", timeline, e.toString());
      } else {
        log.warn(
            "compaction of {} failed (the next flush tries again): {}", timeline, e.toString());
      }
      return false;
    }
  }

  /** Ends the triggers and interrupts a pass in progress (its reads are interrupt-safe). */
  void stop() {
    stopping = true;
    running.dispose();
    thread.disposeGracefully().timeout(Duration.ofMinutes(1)).onErrorComplete().block();
  }
}
