package io.zenith.page;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.composite.CompositeMeterRegistry;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.layer.Key;
import io.zenith.layer.TimelineView;
import io.zenith.layer.Value;
import io.zenith.layer.Version;
import io.zenith.page.redo.HeapRedo;
import io.zenith.page.redo.RedoRequest;
import io.zenith.page.redo.WalRedoManager;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.RecordHeader;
import io.zenith.wal.RelTag;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalRecord;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Rebuilds a page as of an LSN from its versions: the newest base (image, will-init record,
 * tombstone = zero page; none = zero page) and the newer versions applied in LSN order — WAL
 * records by PostgreSQL's own redo ({@link Redo}), patches in Java.
 *
 * <p>A cache of materialized pages, keyed by (timeline, key, LSN of the newest version used),
 * serves repeated reads, and a read at a later LSN starts from the newest cached version below it
 * and replays only what came after.
 *
 * <p>Thread-safe. Blocking (index reads, WAL redo): call it on a thread that may block.
 */
public final class PageReconstructor {

  /** Applies WAL records to one page with PostgreSQL's redo (the WAL-redo process pool). */
  @FunctionalInterface
  public interface Redo {
    /**
     * @param base the page to start from, or null for a zero page (the first record initializes it,
     *     or the page never existed)
     * @param records the records, oldest first, with their end LSNs in {@code ends}
     */
    byte[] apply(
        TenantId tenant,
        RelTag rel,
        ForkNumber fork,
        int block,
        byte[] base,
        List<Value.WalRecord> records,
        List<Lsn> ends);
  }

  /**
   * The redo of a {@link WalRedoManager}, without metrics: {@link #using(WalRedoManager,
   * MeterRegistry)}.
   */
  public static Redo using(WalRedoManager manager) {
    return using(manager, new CompositeMeterRegistry());
  }

  /**
   * The redo of a {@link WalRedoManager}: the leading heap records a bulk load writes are applied
   * in Java ({@link HeapRedo}, ADR 0034), the rest by the pool, from the page as Java left it;
   * blocks until the pool answers.
   *
   * @param meters where {@code zenith.walredo.java.records} (records applied in Java) goes
   */
  public static Redo using(WalRedoManager manager, MeterRegistry meters) {
    boolean hintBitsLogged = manager.scratch().dataChecksums() || manager.scratch().walLogHints();
    Counter inJava =
        Counter.builder("zenith.walredo.java.records")
            .description("WAL records applied in Java (heap inserts of a load), without a process")
            .register(meters);
    return (tenant, rel, fork, block, base, records, ends) -> {
      List<WalRecord> raw = new ArrayList<>(records.size());
      for (int i = 0; i < records.size(); i++) {
        Value.WalRecord w = records.get(i);
        raw.add(
            new WalRecord(w.startLsn(), ends.get(i), RecordHeader.read(w.record(), 0), w.record()));
      }
      HeapRedo.Prefix done = HeapRedo.applyPrefix(rel, fork, block, base, raw, hintBitsLogged);
      if (done.applied() > 0) {
        inJava.increment(done.applied());
      }
      if (done.applied() == raw.size()) {
        return done.page();
      }
      List<WalRecord> rest = raw.subList(done.applied(), raw.size());
      return manager
          .apply(tenant.toString(), new RedoRequest(rel, fork, block, done.page(), rest))
          .block();
    };
  }

  private record CacheKey(TenantId tenant, TimelineId timeline, Key key, long lsn) {}

  /** How a GetPage was answered: the tag {@code outcome} of {@code zenith.getpage.duration}. */
  private enum Outcome {
    /** from the cache, nothing replayed */
    CACHE,
    /** from the layers' versions without WAL redo (an image, patches) */
    LAYERS,
    /** WAL redo ran */
    REDO,
    /** failed */
    ERROR;

    final String tag = name().toLowerCase(java.util.Locale.ROOT);
  }

  private final Redo redo;
  private final Cache<CacheKey, byte[]> cache;
  private final java.util.EnumMap<Outcome, Timer> getPage = new java.util.EnumMap<>(Outcome.class);

  /**
   * Without metrics.
   *
   * @param cacheBytes memory for materialized pages (8 KiB each); 0 disables the cache
   */
  public PageReconstructor(Redo redo, long cacheBytes) {
    this(redo, cacheBytes, new CompositeMeterRegistry());
  }

  /**
   * @param cacheBytes memory for materialized pages (8 KiB each); 0 disables the cache
   * @param meters where {@code zenith.getpage.duration} (a histogram by outcome) goes
   */
  public PageReconstructor(Redo redo, long cacheBytes, MeterRegistry meters) {
    for (Outcome o : Outcome.values()) {
      getPage.put(
          o,
          Timer.builder("zenith.getpage.duration")
              .tag("outcome", o.tag)
              .description("GetPage requests: one page as of an LSN (cache, layers, WAL redo)")
              .publishPercentileHistogram()
              .register(meters));
    }
    this.redo = redo;
    this.cache =
        cacheBytes <= 0
            ? null
            : Caffeine.newBuilder()
                .maximumWeight(cacheBytes)
                .weigher((CacheKey k, byte[] v) -> v.length + 64)
                .build();
  }

  /**
   * With the redo of {@code manager} ({@link #using(WalRedoManager, MeterRegistry)}: heap records
   * of a load in Java, the rest by the pool).
   *
   * @param cacheBytes memory for materialized pages (8 KiB each); 0 disables the cache
   * @param meters where {@code zenith.getpage.duration} and {@code zenith.walredo.java.records} go
   */
  public PageReconstructor(WalRedoManager manager, long cacheBytes, MeterRegistry meters) {
    this(using(manager, meters), cacheBytes, meters);
  }

  /**
   * The page of {@code key} as of {@code lsn}; a zero page if it has no version yet. For the
   * pageserver's own reads (ingest, image creation): not counted as GetPage.
   */
  public byte[] page(TimelineView timeline, Key key, Lsn lsn) {
    return page(timeline, key, lsn, true, new Outcome[1]);
  }

  /**
   * A GetPage request of a compute: {@link #page}, timed in {@code zenith.getpage.duration} by
   * outcome, with the timeline's ids in the log lines it causes. The pagestream endpoint calls
   * this.
   */
  @SuppressWarnings("try")
  public byte[] getPage(TimelineView timeline, Key key, Lsn lsn) {
    long t0 = System.nanoTime();
    Outcome[] outcome = {Outcome.ERROR};
    try (LogContext.Scope s = LogContext.scope(timeline.tenant(), timeline.id())) {
      return page(timeline, key, lsn, true, outcome);
    } finally {
      getPage.get(outcome[0]).record(System.nanoTime() - t0, TimeUnit.NANOSECONDS);
    }
  }

  /**
   * As {@link #page}, for a scan that reads each page once (a basebackup): the cache is read but
   * not filled, so a scan of a database larger than the cache does not evict the pages that GetPage
   * reads again (and skips the copy and the insertion per page).
   */
  @SuppressWarnings("try")
  public byte[] pageForScan(TimelineView timeline, Key key, Lsn lsn) {
    try (LogContext.Scope s = LogContext.scope(timeline.tenant(), timeline.id())) {
      return page(timeline, key, lsn, false, new Outcome[1]);
    }
  }

  /**
   * @param outcome receives how the page was answered (unchanged if this throws)
   */
  private byte[] page(TimelineView timeline, Key key, Lsn lsn, boolean fill, Outcome[] outcome) {
    List<Version> history = timeline.history(key, lsn);
    if (history.isEmpty()) {
      outcome[0] = Outcome.LAYERS;
      return new byte[PageLayout.BLCKSZ];
    }
    Outcome answered = Outcome.LAYERS;
    byte[] page = null;
    int next = history.size() - 1;
    for (int i = 0; cache != null && i < history.size(); i++) {
      byte[] cached =
          cache.getIfPresent(
              new CacheKey(timeline.tenant(), timeline.id(), key, history.get(i).lsn().value()));
      if (cached != null) {
        page = cached.clone();
        next = i - 1;
        answered = next < 0 ? Outcome.CACHE : Outcome.LAYERS;
        break;
      }
    }
    if (page == null) {
      Value oldest = history.getLast().value();
      switch (oldest) {
        case Value.Image img -> {
          page = img.bytes().clone();
          next = history.size() - 2;
        }
        case Value.Tombstone t -> {
          page = new byte[PageLayout.BLCKSZ];
          next = history.size() - 2;
        }
        default -> page = null; // a WAL record or patch on a page that starts empty
      }
    }
    List<Value.WalRecord> batch = new ArrayList<>();
    List<Lsn> ends = new ArrayList<>();
    for (int i = next; i >= 0; i--) {
      Version v = history.get(i);
      switch (v.value()) {
        case Value.WalRecord w -> {
          batch.add(w);
          ends.add(v.lsn());
        }
        case Value.Patch p -> {
          answered = batch.isEmpty() ? answered : Outcome.REDO;
          page = flushRedo(timeline, key, page, batch, ends);
          if (page == null) {
            page = new byte[PageLayout.BLCKSZ];
          }
          if (p.initPageIfNew() && PageLayout.isNew(page)) {
            page = PageLayout.emptyPage();
          }
          p.applyTo(page);
        }
        case Value.Image img -> {
          batch.clear();
          ends.clear();
          page = img.bytes().clone();
        }
        case Value.Tombstone t -> {
          batch.clear();
          ends.clear();
          page = new byte[PageLayout.BLCKSZ];
        }
      }
    }
    answered = batch.isEmpty() ? answered : Outcome.REDO;
    page = flushRedo(timeline, key, page, batch, ends);
    if (page == null) {
      page = new byte[PageLayout.BLCKSZ];
    }
    if (cache != null && fill) {
      cache.put(
          new CacheKey(timeline.tenant(), timeline.id(), key, history.getFirst().lsn().value()),
          page.clone());
    }
    outcome[0] = answered;
    return page;
  }

  private byte[] flushRedo(
      TimelineView t, Key key, byte[] page, List<Value.WalRecord> batch, List<Lsn> ends) {
    if (batch.isEmpty()) {
      return page;
    }
    if (!KeySpace.isRelKey(key)) {
      throw new IllegalStateException(
          "key " + key + " holds a WAL record but is not a relation page");
    }
    byte[] result =
        redo.apply(
            t.tenant(),
            KeySpace.relOf(key),
            KeySpace.forkOf(key),
            key.field6(),
            page,
            List.copyOf(batch),
            List.copyOf(ends));
    batch.clear();
    ends.clear();
    return result;
  }

  /** Drops cached pages (all of them: a cheap operation used when a timeline is detached). */
  public void invalidateAll() {
    if (cache != null) {
      cache.invalidateAll();
    }
  }

  public long cachedPages() {
    return cache == null ? 0 : cache.estimatedSize();
  }
}
