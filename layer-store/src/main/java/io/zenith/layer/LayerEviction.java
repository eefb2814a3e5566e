package io.zenith.layer;

import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteStorage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps a store's local layer files under a disk budget ({@code max_local_layer_bytes}, ADR 0027):
 * a pass that finds more resident layer bytes than the budget evicts the least recently read files
 * that an uploaded index names with their size (so they can be fetched again), until the budget
 * holds. A file being read is skipped ({@link ReadOnlyFile#evict}); one not uploaded yet is never a
 * candidate. Passes run on one daemon thread ({@code layer-eviction}) every period, and on demand
 * ({@link #runOnce}). Thread-safe.
 */
public final class LayerEviction implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(LayerEviction.class);

  /**
   * What evictions did since the start.
   *
   * @param evictions layer files evicted
   * @param bytes their bytes
   * @param passes passes that found the budget exceeded
   */
  public record Totals(long evictions, long bytes, long passes) {}

  /** The store's layer bytes by where they are now. */
  public record Usage(long residentBytes, long remoteOnlyBytes) {}

  private final LayerStore store;
  private final long maxLocalBytes;
  private final Duration callTimeout;
  private final AtomicLong evictions = new AtomicLong();
  private final AtomicLong bytes = new AtomicLong();
  private final AtomicLong passes = new AtomicLong();
  private final ScheduledExecutorService timer;

  private LayerEviction(
      LayerStore store, long maxLocalBytes, Duration period, Duration callTimeout) {
    this.store = store;
    this.maxLocalBytes = maxLocalBytes;
    this.callTimeout = callTimeout;
    this.timer =
        Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().name("layer-eviction").daemon().unstarted(r));
    timer.scheduleWithFixedDelay(
        this::runQuietly, period.toMillis(), period.toMillis(), TimeUnit.MILLISECONDS);
  }

  /**
   * Starts evicting under {@code maxLocalBytes} every {@code period}; remote storage is the one
   * {@link LayerStore#downloads()} uses (no pass evicts anything without one).
   */
  public static LayerEviction start(
      LayerStore store, long maxLocalBytes, Duration period, Duration callTimeout) {
    if (maxLocalBytes < 0) {
      throw new IllegalArgumentException("max_local_layer_bytes must not be negative");
    }
    return new LayerEviction(store, maxLocalBytes, period, callTimeout);
  }

  public long maxLocalBytes() {
    return maxLocalBytes;
  }

  public Totals totals() {
    return new Totals(evictions.get(), bytes.get(), passes.get());
  }

  /** Walks every open layer of the store. */
  public static Usage usage(LayerStore store) {
    long resident = 0;
    long remote = 0;
    for (Candidate c : layers(store)) {
      if (c.reader().file().resident()) {
        resident += c.reader().size();
      } else {
        remote += c.reader().size();
      }
    }
    return new Usage(resident, remote);
  }

  private void runQuietly() {
    try {
      runOnce();
    } catch (RuntimeException e) {
      log.warn("layer eviction pass failed (the next one retries): {}", e.getMessage());
    }
  }

  private record Candidate(TenantId tenant, TimelineId timeline, LayerFile.Reader reader) {}

  private static List<Candidate> layers(LayerStore store) {
    List<Candidate> out = new ArrayList<>();
    for (TenantId t : store.tenants()) {
      List<Timeline> tls;
      try {
        tls = store.timelines(t);
      } catch (LayerStoreException e) {
        continue; // deleted or detached meanwhile
      }
      for (Timeline tl : tls) {
        for (LayerFile.Reader r : tl.layers().readers()) {
          out.add(new Candidate(t, tl.id(), r));
        }
      }
    }
    return out;
  }

  /**
   * One pass: evicts until the resident bytes are within the budget or no candidate is left.
   *
   * @return the bytes evicted
   */
  public synchronized long runOnce() {
    RemoteStorage storage = store.downloads().storage();
    if (storage == null) {
      return 0;
    }
    List<Candidate> resident = new ArrayList<>();
    long total = 0;
    for (Candidate c : layers(store)) {
      if (c.reader().file().resident()) {
        resident.add(c);
        total += c.reader().size();
      }
    }
    if (total <= maxLocalBytes) {
      return 0;
    }
    passes.incrementAndGet();
    resident.sort(Comparator.comparingLong(c -> c.reader().file().lastAccessNanos()));
    Map<TenantId, Map<TimelineId, RemoteIndex>> indexes = new HashMap<>();
    long freed = 0;
    for (Candidate c : resident) {
      if (total - freed <= maxLocalBytes) {
        break;
      }
      try {
        // The newest indexes not above the tenant's generation (ADR 0026): what it may rely on.
        RemoteIndex idx =
            indexes
                .computeIfAbsent(
                    c.tenant(),
                    t -> TenantAttach.indexes(storage, t, store.generations().of(t), callTimeout))
                .get(c.timeline());
        long n;
        try {
          n = evict(c.reader(), idx);
        } catch (ClosedChannelException e) {
          continue; // compaction or GC removed the layer since the list was taken
        }
        if (n > 0) {
          freed += n;
          evictions.incrementAndGet();
          bytes.addAndGet(n);
        }
      } catch (IOException | LayerStoreException e) {
        log.warn("cannot evict {}: {}", c.reader().path(), e.toString());
      }
    }
    if (freed > 0) {
      log.info(
          "evicted {} bytes of layer files: {} resident, budget {}",
          freed,
          total - freed,
          maxLocalBytes);
    }
    return freed;
  }

  /** Evicts one file if {@code idx} (uploaded) names it with its size; the bytes freed. */
  private long evict(LayerFile.Reader r, RemoteIndex idx) throws IOException {
    if (idx == null) {
      return 0;
    }
    String name = r.path().getFileName().toString();
    for (RemoteIndex.Layer l : idx.layers()) {
      if (l.fileName().equals(name) && l.size() == r.size()) {
        ReadOnlyFile f = r.file();
        ByteBuffer h = f.read(0, LayerFile.HEADER_SIZE);
        ByteBuffer ft = f.read(r.size() - LayerFile.FOOTER_SIZE, LayerFile.FOOTER_SIZE);
        if (h == null || ft == null) {
          return 0;
        }
        byte[] header = new byte[LayerFile.HEADER_SIZE];
        byte[] footer = new byte[LayerFile.FOOTER_SIZE];
        h.get(header);
        ft.get(footer);
        f.remoteCopy(
            new LayerStub(TenantAttach.generationOf(idx, l), l.size(), l.crc32c(), header, footer),
            store.downloads());
        return f.evict();
      }
    }
    return 0;
  }

  @Override
  public void close() {
    timer.shutdownNow();
    try {
      timer.awaitTermination(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
