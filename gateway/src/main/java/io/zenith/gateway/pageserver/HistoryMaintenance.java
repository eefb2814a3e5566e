package io.zenith.gateway.pageserver;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.zenith.ingest.IngestPipeline;
import io.zenith.layer.CompactionResult;
import io.zenith.layer.GcResult;
import io.zenith.layer.ImageSource;
import io.zenith.layer.LayerStore;
import io.zenith.layer.Timeline;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * The lifecycle of the pageserver's history: the upkeep of every timeline every {@code
 * compaction_period} and after each flush of its ingest pipeline, GC every {@code gc_period}, and
 * both on request. The GC cutoff of a timeline is {@code min(last_record_lsn − gc_horizon, the LSN
 * after the last commit before now − pitr_interval)}, which the layer store caps further by the
 * children's branch points and pinned LSNs ({@link LayerStore#gc}).
 *
 * <p>The upkeep is GC when the cutoff can move by a checkpoint distance or more since the last pass
 * ({@link #gcDue}), then compaction (which rewrites the layers that GC left mostly dead). So GC
 * follows the WAL as the flushes do, not only the clock: space comes back within a few flushes of a
 * version becoming unreadable, however fast the WAL comes (ADR 0010).
 *
 * <p>Threads: the periodic passes run on one thread of their own, one timeline after the other;
 * requests run on the caller's (blocking) thread. A timeline's passes are serialized by the
 * timeline itself. A failing timeline is logged and skipped; the others go on. Thread-safe.
 */
final class HistoryMaintenance implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(HistoryMaintenance.class);

  /** The LSN after the last commit at or before a time; INVALID when none is known. */
  @FunctionalInterface
  interface CommitLsns {
    Lsn lastCommitAtOrBefore(Timeline timeline, Instant time);
  }

  private final LayerStore store;
  private final PageserverConfig config;
  private final ImageSource images;
  private final CommitLsns commits;
  private final MeterRegistry meters;

  /** One thread that may block (passes wait for page reconstruction), unlike newSingle's. */
  private final Scheduler thread = Schedulers.newBoundedElastic(1, Integer.MAX_VALUE, "history");

  private final List<Disposable> loops = new ArrayList<>();

  HistoryMaintenance(
      LayerStore store,
      PageserverConfig config,
      ImageSource images,
      CommitLsns commits,
      MeterRegistry meters) {
    this.store = store;
    this.config = config;
    this.images = images;
    this.commits = commits;
    this.meters = meters;
  }

  /** Starts the periodic passes ({@code gc_period} 0: GC only on request). */
  void start() {
    loops.add(every(config.compactionPeriodDuration(), this::upkeep));
    Duration gc = config.gcPeriodDuration();
    if (!gc.isZero()) {
      loops.add(every(gc, this::gc));
    }
  }

  private Disposable every(Duration period, Consumer<Timeline> pass) {
    return Flux.interval(period, period, thread)
        .onBackpressureDrop()
        .concatMap(tick -> Mono.fromRunnable(() -> forEachTimeline(pass)), 0)
        .subscribe();
  }

  @SuppressWarnings("try")
  private void forEachTimeline(Consumer<Timeline> pass) {
    for (TenantId tenant : store.tenants()) {
      for (Timeline t : store.timelines(tenant)) {
        if (t.brokenReason().isPresent()) {
          continue;
        }
        try (LogContext.Scope s = LogContext.scope(t.tenant(), t.id())) {
          try {
            pass.accept(t);
          } catch (RuntimeException e) {
            log.warn(
                "history upkeep of {} failed (tried again next period): {}", t, e.getMessage());
          }
        }
      }
    }
  }

  /**
   * What the ingest pipeline of {@code t} runs after each flush: {@link #upkeep}, so that its
   * passes count in the same metrics as the periodic and requested ones.
   */
  IngestPipeline.Compactor compactor(Timeline t) {
    return IngestPipeline.Compactor.of(config.history(t.tenant()).compaction(), () -> upkeep(t));
  }

  /** GC of {@code t} if it is due by volume ({@link #gcDue}), then compaction. */
  CompactionResult upkeep(Timeline t) {
    if (gcDue(t)) {
      gc(t);
    }
    return compact(t, false);
  }

  /**
   * GC runs on its own ({@code gc_period} not 0) and the cutoff it could set now, capped by the
   * durable position as {@link LayerStore#gc} caps it, is a checkpoint distance or more above the
   * current one: about once per flush while the WAL moves, never while it does not (a pass scans
   * the timeline's whole index).
   */
  boolean gcDue(Timeline t) {
    if (config.gcPeriodDuration().isZero()) {
      return false;
    }
    Lsn could = Lsn.min(wantedCutoff(t), t.diskConsistentLsn());
    if (!could.isValid()) {
      return false;
    }
    Lsn now = t.gcCutoff();
    long from = now.isValid() ? now.value() : t.startLsn().value();
    return could.value() - from >= config.layerStoreConfig().checkpointDistance();
  }

  /**
   * Compacts {@code t} now, on the calling thread: a full pass if {@code requested}, else a
   * background one (the L0 merge first, images looked for less often: {@code Timeline.compact}).
   */
  @SuppressWarnings("try")
  CompactionResult compact(Timeline t, boolean requested) {
    long t0 = System.nanoTime();
    CompactionResult r;
    try (LogContext.Scope s = LogContext.scope(t.tenant(), t.id())) {
      r = t.compact(config.history(t.tenant()).compaction(), images, requested);
    }
    Tags tags = tags(t);
    meters.counter("zenith.compaction.image_layers", tags).increment(r.imageLayers());
    meters.counter("zenith.compaction.image_pages", tags).increment(r.imagePages());
    meters.counter("zenith.compaction.l0_merged", tags).increment(r.l0Merged());
    meters.counter("zenith.compaction.layers_rewritten", tags).increment(r.rewritten());
    meters.counter("zenith.compaction.layers_removed", tags).increment(r.layersRemoved());
    // registered by every pass, so that it is on /metrics before the first image layer
    Timer imageCreation = meters.timer("zenith.compaction.image_creation", tags);
    if (r.imageLayers() > 0) {
      imageCreation.record(Duration.ofNanos(System.nanoTime() - t0));
    }
    return r;
  }

  /** Collects garbage of {@code t} now, on the calling thread, at the cutoff its settings give. */
  @SuppressWarnings("try")
  GcResult gc(Timeline t) {
    GcResult r;
    try (LogContext.Scope s = LogContext.scope(t.tenant(), t.id())) {
      r = store.gc(t.tenant(), t.id(), wantedCutoff(t));
    }
    Tags tags = tags(t);
    meters.counter("zenith.gc.versions_removed", tags).increment(r.versionsRemoved());
    meters.counter("zenith.gc.layers_removed", tags).increment(r.layersRemoved());
    meters.counter("zenith.gc.bytes_removed", tags).increment(r.bytesRemoved());
    return r;
  }

  /**
   * {@code min(last_record_lsn − gc_horizon, the LSN after the last commit before now −
   * pitr_interval)}; with no commit that old known, nothing newer than the timeline's start.
   */
  Lsn wantedCutoff(Timeline t) {
    PageserverConfig.History h = config.history(t.tenant());
    long last = t.lastRecordLsn().value();
    Lsn byHorizon = Lsn.of(Math.max(0, last - h.gcHorizon()));
    if (h.pitrInterval().isZero()) {
      return byHorizon;
    }
    Lsn byTime = commits.lastCommitAtOrBefore(t, Instant.now().minus(h.pitrInterval()));
    return byTime.isValid() ? Lsn.min(byHorizon, byTime) : Lsn.INVALID;
  }

  private static Tags tags(Timeline t) {
    return Tags.of("tenant", t.tenant().toString(), "timeline", t.id().toString());
  }

  @Override
  public void close() {
    loops.forEach(Disposable::dispose);
    thread.disposeGracefully().timeout(Duration.ofMinutes(1)).onErrorComplete().block();
  }
}
