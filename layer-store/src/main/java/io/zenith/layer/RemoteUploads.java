package io.zenith.layer;

import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteStorage;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * The upload queues of one pageserver's timelines (ADR 0023): one {@link RemoteTimelineClient} per
 * timeline of the store, woken after every flush and maintenance pass of its timeline, and by a
 * rescan every {@link Settings#rescan} that also attaches clients to new timelines and stops those
 * of deleted ones. Passes run on {@link Settings#threads} threads of their own (blocking remote
 * calls, bounded by {@link Settings#callTimeout}), one pass per timeline at a time. Nothing here
 * deletes a remote object. Thread-safe.
 */
public final class RemoteUploads implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(RemoteUploads.class);
  static final Duration CLOSE_GRACE = Duration.ofSeconds(5);

  /**
   * How uploads run.
   *
   * @param generation the suffix of every object name (constant {@link
   *     RemoteIndex#DEFAULT_GENERATION} until the control plane issues generations)
   * @param minBackoff the first wait after a failed pass; doubled per failure up to {@code
   *     maxBackoff}, reset by a pass that works
   * @param callTimeout the bound of one remote call (an upload of one file, the index's put)
   * @param rescan how often every timeline is looked at again (new timelines, missed wake-ups)
   * @param threads passes that may run at once (of different timelines)
   */
  public record Settings(
      int generation,
      Duration minBackoff,
      Duration maxBackoff,
      Duration callTimeout,
      Duration rescan,
      int threads) {
    public static final Settings DEFAULT =
        new Settings(
            RemoteIndex.DEFAULT_GENERATION,
            Duration.ofMillis(200),
            Duration.ofSeconds(30),
            Duration.ofMinutes(10),
            Duration.ofSeconds(10),
            2);

    public Settings {
      if (minBackoff.isNegative()
          || minBackoff.isZero()
          || maxBackoff.compareTo(minBackoff) < 0
          || callTimeout.isNegative()
          || callTimeout.isZero()
          || rescan.isNegative()
          || rescan.isZero()
          || threads < 1) {
        throw new IllegalArgumentException("bad upload settings " + this);
      }
    }

    public Settings withBackoff(Duration min, Duration max) {
      return new Settings(generation, min, max, callTimeout, rescan, threads);
    }

    public Settings withRescan(Duration every) {
      return new Settings(generation, minBackoff, maxBackoff, callTimeout, every, threads);
    }
  }

  /**
   * Sums over every timeline since the start, for metrics.
   *
   * @param uploads layer files uploaded
   * @param indexUploads index objects uploaded
   * @param bytes bytes of both
   * @param nanos time spent in successful remote calls
   * @param retries failed passes that are retried
   * @param queueLength layer files committed locally and not yet uploaded, now
   */
  public record Totals(
      long uploads, long indexUploads, long bytes, long nanos, long retries, long queueLength) {}

  /** Counters shared by the clients. */
  static final class Counters {
    final AtomicLong uploads = new AtomicLong();
    final AtomicLong indexUploads = new AtomicLong();
    final AtomicLong bytes = new AtomicLong();
    final AtomicLong nanos = new AtomicLong();
    final AtomicLong retries = new AtomicLong();
  }

  private final LayerStore store;
  private final RemoteStorage storage;
  private final Settings settings;
  private final Consumer<RemoteKey> onUploaded;
  private final Scheduler scheduler;
  private final Counters counters = new Counters();
  private final Map<Timeline, RemoteTimelineClient> clients = new ConcurrentHashMap<>();
  private final Disposable rescans;
  private volatile boolean closed;

  private RemoteUploads(
      LayerStore store, RemoteStorage storage, Settings settings, Consumer<RemoteKey> onUploaded) {
    this.store = store;
    this.storage = storage;
    this.settings = settings;
    this.onUploaded = onUploaded;
    this.scheduler = Schedulers.newBoundedElastic(settings.threads(), 100_000, "remote-upload");
    this.rescans =
        scheduler.schedulePeriodically(
            this::rescan, 0, settings.rescan().toMillis(), TimeUnit.MILLISECONDS);
  }

  /**
   * Starts uploading every timeline of {@code store} to {@code storage}; the first rescan runs at
   * once. The caller closes this before the store and the storage.
   */
  public static RemoteUploads start(LayerStore store, RemoteStorage storage, Settings settings) {
    return new RemoteUploads(store, storage, settings, k -> {});
  }

  /** As {@link #start}, and tells {@code onUploaded} every object as its upload completes. */
  static RemoteUploads start(
      LayerStore store, RemoteStorage storage, Settings settings, Consumer<RemoteKey> onUploaded) {
    return new RemoteUploads(store, storage, settings, onUploaded);
  }

  /** Attaches clients to new timelines and stops those of deleted ones. */
  void rescan() {
    if (closed) {
      return;
    }
    try {
      Set<Timeline> current = new HashSet<>();
      for (TenantId tenant : store.tenants()) {
        for (Timeline t : timelines(tenant)) {
          current.add(t);
          clients
              .computeIfAbsent(
                  t,
                  x -> {
                    RemoteTimelineClient c =
                        new RemoteTimelineClient(
                            x, storage, settings, scheduler, counters, onUploaded);
                    x.onLayersChanged(c::wake);
                    return c;
                  })
              .wake();
        }
      }
      clients
          .entrySet()
          .removeIf(
              e -> {
                if (current.contains(e.getKey())) {
                  return false;
                }
                e.getKey().onLayersChanged(() -> {});
                e.getValue().stop();
                return true;
              });
    } catch (RuntimeException e) {
      // the next rescan tries again; a rescan must never end the periodic task
      log.warn("remote upload rescan failed: {}", e.toString());
    }
  }

  private List<Timeline> timelines(TenantId tenant) {
    try {
      return store.timelines(tenant);
    } catch (LayerStoreException e) {
      return List.of(); // deleted since tenants() listed it
    }
  }

  /** The upload queue of a timeline, once a rescan attached one. */
  public Optional<RemoteTimelineClient> client(TenantId tenant, TimelineId id) {
    return store.findTimeline(tenant, id).map(clients::get);
  }

  public Totals totals() {
    long queue = 0;
    for (RemoteTimelineClient c : clients.values()) {
      queue += c.status().queueLength();
    }
    return new Totals(
        counters.uploads.get(),
        counters.indexUploads.get(),
        counters.bytes.get(),
        counters.nanos.get(),
        counters.retries.get(),
        queue);
  }

  public String describe() {
    return storage.describe();
  }

  /**
   * Stops every queue: a pass in progress may finish its current remote call for {@link
   * #CLOSE_GRACE}, then it is interrupted (its call cancelled); what is not uploaded is uploaded
   * after the next start.
   */
  @Override
  public void close() {
    closed = true;
    rescans.dispose();
    for (Map.Entry<Timeline, RemoteTimelineClient> e : clients.entrySet()) {
      e.getKey().onLayersChanged(() -> {});
      e.getValue().stop();
    }
    clients.clear();
    scheduler.disposeGracefully().timeout(CLOSE_GRACE).onErrorComplete().block();
    scheduler.dispose();
  }
}
