package io.zenith.layer;

import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteStorage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
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
 * calls, bounded by {@link Settings#callTimeout}), one pass per timeline at a time. It also runs
 * the store's {@link RemoteDeletionQueue} on the same storage, and is its {@link
 * RemoteDeletionQueue.Guard}: the worker deletes a timeline's objects only while that timeline's
 * passes are held off, and its prefix only after its queue stopped (ADR 0024). Thread-safe.
 */
public final class RemoteUploads implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(RemoteUploads.class);
  static final Duration CLOSE_GRACE = Duration.ofSeconds(5);

  /**
   * How uploads run.
   *
   * @param minBackoff the first wait after a failed pass; doubled per failure up to {@code
   *     maxBackoff}, reset by a pass that works
   * @param callTimeout the bound of one remote call (an upload of one file, the index's put)
   * @param rescan how often every timeline is looked at again (new timelines, missed wake-ups)
   * @param threads passes that may run at once (of different timelines)
   */
  public record Settings(
      Duration minBackoff,
      Duration maxBackoff,
      Duration callTimeout,
      Duration rescan,
      int threads) {
    public static final Settings DEFAULT =
        new Settings(
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
      return new Settings(min, max, callTimeout, rescan, threads);
    }

    public Settings withRescan(Duration every) {
      return new Settings(minBackoff, maxBackoff, callTimeout, every, threads);
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
  private final GenerationCheck check;
  private final Scheduler scheduler;
  private final Counters counters = new Counters();
  private final Map<Timeline, RemoteTimelineClient> clients = new ConcurrentHashMap<>();
  // stopped by a rescan or a prefix deletion, perhaps in a pass still
  private final Set<RemoteTimelineClient> stopping = ConcurrentHashMap.newKeySet();
  private final RemoteDeletionQueue deletions;
  private final Disposable rescans;
  private volatile boolean closed;

  private RemoteUploads(
      LayerStore store,
      RemoteStorage storage,
      Settings settings,
      GenerationCheck check,
      Consumer<RemoteKey> onUploaded,
      Consumer<RemoteKey> onDeleting) {
    this.store = store;
    this.storage = storage;
    this.settings = settings;
    this.check = check;
    this.onUploaded = onUploaded;
    this.deletions = store.remoteDeletions();
    try {
      // before any upload: every object uploaded from now on has a queue that can delete it
      deletions.start(storage, settings, this::hold, check, onDeleting);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot start the remote deletion queue: " + e, e);
    }
    this.scheduler = Schedulers.newBoundedElastic(settings.threads(), 100_000, "remote-upload");
    this.rescans =
        scheduler.schedulePeriodically(
            this::rescan, 0, settings.rescan().toMillis(), TimeUnit.MILLISECONDS);
  }

  /**
   * Starts uploading every timeline of {@code store} to {@code storage}; the first rescan runs at
   * once. Generations are checked against the control plane's records in {@code storage} ({@link
   * RemoteGenerations}). The caller closes this before the store and the storage.
   */
  public static RemoteUploads start(LayerStore store, RemoteStorage storage, Settings settings) {
    return start(store, storage, settings, k -> {}, k -> {});
  }

  /** As {@link #start}, telling {@code onUploaded} and {@code onDeleting} as the next one does. */
  static RemoteUploads start(
      LayerStore store,
      RemoteStorage storage,
      Settings settings,
      Consumer<RemoteKey> onUploaded,
      Consumer<RemoteKey> onDeleting) {
    GenerationCheck check =
        (t, g) -> RemoteGenerations.current(storage, t, g, settings.callTimeout());
    return start(store, storage, settings, check, onUploaded, onDeleting);
  }

  /**
   * As {@link #start}, with {@code check} for generations, and tells {@code onUploaded} every
   * object as its upload completes, and {@code onDeleting} every object just before its deletion
   * (tests check both against the index).
   */
  static RemoteUploads start(
      LayerStore store,
      RemoteStorage storage,
      Settings settings,
      GenerationCheck check,
      Consumer<RemoteKey> onUploaded,
      Consumer<RemoteKey> onDeleting) {
    return new RemoteUploads(store, storage, settings, check, onUploaded, onDeleting);
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
                            x,
                            storage,
                            settings,
                            scheduler,
                            counters,
                            onUploaded,
                            deletions,
                            store.generations(),
                            check);
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
                stopping.add(e.getValue());
                return true;
              });
      // forget stopped queues whose last pass has ended
      stopping.removeIf(c -> !c.passLock().isLocked());
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

  /** The store's remote deletion queue's sums (ADR 0024). */
  public RemoteDeletionQueue.Totals deletionTotals() {
    return deletions.totals();
  }

  /** Why remote deletions fail now, if they do. */
  public Optional<String> deletionFailure() {
    return deletions.failure();
  }

  /**
   * The deletion worker's {@link RemoteDeletionQueue.Guard}: holds the pass locks of the queues of
   * a timeline (or of every timeline of a tenant), stopping those queues first when {@code stop}
   * and the timeline (tenant) is gone from the store.
   */
  RemoteDeletionQueue.Hold hold(
      TenantId tenant, Optional<TimelineId> timeline, boolean stop, Duration timeout)
      throws TimeoutException, InterruptedException {
    boolean live =
        timeline.isPresent()
            ? store.findTimeline(tenant, timeline.get()).isPresent()
            : store.tenants().contains(tenant);
    List<RemoteTimelineClient> matching = new ArrayList<>();
    for (RemoteTimelineClient c : List.copyOf(stopping)) {
      if (matches(c.timeline(), tenant, timeline)) {
        matching.add(c);
      }
    }
    for (Map.Entry<Timeline, RemoteTimelineClient> e : clients.entrySet()) {
      if (!matches(e.getKey(), tenant, timeline)) {
        continue;
      }
      matching.add(e.getValue());
      if (stop && !live) {
        // nothing may upload into a prefix once its deletion starts
        e.getKey().onLayersChanged(() -> {});
        e.getValue().stop();
        stopping.add(e.getValue());
        clients.remove(e.getKey());
      }
    }
    List<RemoteTimelineClient> held = new ArrayList<>();
    Runnable release = () -> held.forEach(c -> c.passLock().unlock());
    Set<String> keep = new HashSet<>();
    long deadline = System.nanoTime() + timeout.toNanos();
    try {
      for (RemoteTimelineClient c : matching) {
        if (!c.passLock().tryLock(deadline - System.nanoTime(), TimeUnit.NANOSECONDS)) {
          throw new TimeoutException(c + " did not end its pass within " + timeout);
        }
        held.add(c);
        keep.addAll(c.indexedObjects());
      }
      if (timeline.isPresent()) {
        String suffix = RemoteIndex.suffix(store.generations().of(tenant));
        store
            .findTimeline(tenant, timeline.get())
            .ifPresent(t -> t.layerFiles().forEach(f -> keep.add(f.fileName() + suffix)));
      }
    } catch (TimeoutException | InterruptedException | RuntimeException e) {
      release.run();
      throw e;
    }
    if (stop && !live) {
      stopping.removeAll(held); // their passes have ended and none will start
    }
    return new RemoteDeletionQueue.Hold(live, keep, release);
  }

  private static boolean matches(Timeline t, TenantId tenant, Optional<TimelineId> timeline) {
    return t.tenant().equals(tenant) && timeline.map(t.id()::equals).orElse(true);
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
    deletions.stop();
    scheduler.disposeGracefully().timeout(CLOSE_GRACE).onErrorComplete().block();
    scheduler.dispose();
  }
}
