package io.zenith.ingest;

import io.zenith.layer.TimelineWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Consumer;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;

/**
 * The freeze stage: decides when the open in-memory layer is frozen, and emits a {@link
 * FlushRequest} to the flush stage only when it froze one (or a checkpoint or the end of the source
 * asks for a flush):
 *
 * <ul>
 *   <li>after a record, when the layer is due ({@link TimelineWriter#freezeIfDue}:
 *       checkpoint_distance bytes, or checkpoint_timeout old);
 *   <li>on a tick, when no record arrived for {@code idleFlush}, something ingested is not durable
 *       and nothing is frozen (idle flush: the disk-consistent LSN catches up);
 *   <li>when a checkpoint was requested ({@link #offer}): freezes now, and the request travels with
 *       the item, completed once it is durable;
 *   <li>at the end of the source: freezes what is left (the final flush).
 * </ul>
 *
 * <p>Its wake-ups ({@link #triggers()}: the idle timer, checkpoint requests) are merged into the
 * pipe ahead of the ingest stage, so that they reach this stage on the ingest thread, between
 * records, under the same demand.
 *
 * <ul>
 *   <li><b>Thread:</b> the ingest thread (it runs right after the ingest stage).
 *   <li><b>Demand:</b> a filter ({@code handle}): it requests from upstream exactly what the flush
 *       stage requested and has not received, and one more for every event it does not turn into an
 *       item (with Reactor's conditional protocol, which it gets behind {@code publishOn}, a
 *       dropped event simply does not count against demand). When the flush stage has no demand it
 *       requests nothing, so no record is ingested and nothing more is frozen.
 *   <li><b>Bound:</b> at most one item per event; holds nothing but the checkpoint requests not yet
 *       taken.
 *   <li><b>Cancel / error:</b> nothing to release; checkpoint requests it holds or passed on
 *       unflushed are handed to {@link #end}'s fallback when the run terminates.
 *   <li><b>Order:</b> items in freeze order (the layers' LSN order).
 * </ul>
 *
 * <p>Thread-safe where it says so: {@link #offer} and {@link #end} from any thread, the rest on the
 * ingest thread. One instance per run.
 */
final class FreezeStage {
  private final TimelineWriter timeline;
  private final Duration idleFlush;
  private final Scheduler ingestThread;
  private final Queue<CheckpointRequest> pending = new ConcurrentLinkedQueue<>();
  private final Set<CheckpointRequest> taken = ConcurrentHashMap.newKeySet();
  private final Sinks.Many<IngestEvent> wake = Sinks.many().multicast().directBestEffort();
  private volatile boolean ended;

  /** On the ingest thread only. */
  private long lastRecordNanos = System.nanoTime();

  FreezeStage(TimelineWriter timeline, Duration idleFlush, Scheduler ingestThread) {
    this.timeline = timeline;
    this.idleFlush = idleFlush;
    this.ingestThread = ingestThread;
  }

  /**
   * The stage's wake-ups, to merge ahead of the ingest stage: a tick every {@code idleFlush} and
   * one per checkpoint request. Never completes; a tick that finds no demand replaces the one
   * waiting (they carry no data), so it holds at most one.
   */
  Flux<IngestEvent> triggers() {
    return Flux.merge(
            Flux.interval(idleFlush, ingestThread).map(t -> IngestEvent.TICK), wake.asFlux())
        .onBackpressureLatest();
  }

  /**
   * Turns ingested events into flush requests. A timeline that already has frozen layers (left by a
   * pipeline closed while its flush failed) gets a first request for them.
   */
  Flux<FlushRequest> apply(Flux<IngestEvent> ingested) {
    Flux<FlushRequest> leftovers =
        Flux.defer(
            () ->
                timeline.frozenCount() > 0
                    ? Flux.just(new FlushRequest(timeline.lastRecordLsn(), List.of()))
                    : Flux.empty());
    return leftovers.concatWith(
        ingested.handle(
            (e, sink) -> {
              FlushRequest r = onEvent(e);
              if (r != null) {
                sink.next(r);
              }
            }));
  }

  private FlushRequest onEvent(IngestEvent e) {
    boolean froze =
        switch (e) {
          case IngestEvent.Decoded d -> {
            lastRecordNanos = System.nanoTime();
            yield timeline.freezeIfDue(false);
          }
          case IngestEvent.Tick t -> idle() && timeline.freezeIfDue(true);
          case IngestEvent.End end -> timeline.freezeIfDue(true);
        };
    List<CheckpointRequest> checkpoints = takePending();
    if (!checkpoints.isEmpty()) {
      froze |= timeline.freezeIfDue(true);
    }
    if (froze || !checkpoints.isEmpty() || e instanceof IngestEvent.End) {
      return new FlushRequest(timeline.lastRecordLsn(), checkpoints);
    }
    return null;
  }

  private boolean idle() {
    return System.nanoTime() - lastRecordNanos >= idleFlush.toNanos()
        && timeline.lastRecordLsn().isAfter(timeline.diskConsistentLsn())
        && timeline.frozenCount() == 0;
  }

  private List<CheckpointRequest> takePending() {
    if (!taken.isEmpty()) {
      taken.removeIf(CheckpointRequest::finished);
    }
    List<CheckpointRequest> out = null;
    for (CheckpointRequest r; (r = pending.poll()) != null; ) {
      if (r.take()) {
        taken.add(r);
        if (out == null) {
          out = new ArrayList<>();
        }
        out.add(r);
      }
    }
    return out == null ? List.of() : out;
  }

  /**
   * Queues a checkpoint request for the next event; any thread. False if the run has ended and the
   * request is still the caller's to serve.
   */
  boolean offer(CheckpointRequest r) {
    pending.add(r);
    wake.tryEmitNext(IngestEvent.TICK); // a failed emission is covered by the one that beat it
    return !ended || !r.take();
  }

  /**
   * The run terminated: requests never taken, and taken ones whose flush did not complete them (the
   * run failed or was cancelled), go to {@code fallback}. Any thread, once.
   */
  void end(Consumer<CheckpointRequest> fallback) {
    ended = true;
    for (CheckpointRequest r; (r = pending.poll()) != null; ) {
      if (r.take()) {
        fallback.accept(r);
      }
    }
    for (CheckpointRequest r : taken) {
      if (!r.finished()) {
        fallback.accept(r);
      }
    }
    taken.clear();
  }
}
