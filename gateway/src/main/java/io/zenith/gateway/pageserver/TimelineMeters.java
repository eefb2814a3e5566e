package io.zenith.gateway.pageserver;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Tags;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.layer.LayerStore;
import io.zenith.layer.Timeline;
import io.zenith.layer.TimelineView;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.ToDoubleFunction;

/**
 * The size gauges of every timeline of the store, registered when a scrape first sees the timeline
 * ({@link #refresh}): logical size (the bytes of its relations' pages as of its last record),
 * physical size (its own layer files' bytes), its layer files by kind, and its remote-consistent
 * LSN (ADR 0023). A deleted timeline's gauges go with its other meters ({@code
 * Pageserver.deleteTimeline}).
 *
 * <p>The logical size walks the timeline's catalog, so it is computed at most once per {@link
 * #LOGICAL_SIZE_TTL} per timeline, on the scraping thread. Thread-safe.
 */
final class TimelineMeters {
  static final Duration LOGICAL_SIZE_TTL = Duration.ofSeconds(15);

  private final LayerStore store;
  private final PrometheusMeterRegistry meters;
  private final Set<Timeline> registered = ConcurrentHashMap.newKeySet();

  TimelineMeters(LayerStore store, PrometheusMeterRegistry meters) {
    this.store = store;
    this.meters = meters;
  }

  /** Registers the gauges of timelines that have none yet; forgets deleted ones. */
  void refresh() {
    Set<Timeline> current = ConcurrentHashMap.newKeySet();
    for (TenantId tenant : store.tenants()) {
      for (Timeline t : store.timelines(tenant)) {
        current.add(t);
        if (registered.add(t)) {
          register(t);
        }
      }
    }
    registered.retainAll(current);
  }

  /** NaN until an index was uploaded (always, without remote storage): the lag is unknown. */
  private static double uploadLag(Timeline t) {
    Lsn disk = t.diskConsistentLsn();
    Lsn remote = t.remoteConsistentLsn();
    if (!remote.isValid()) {
      return Double.NaN;
    }
    return disk.isAfter(remote) ? disk.value() - remote.value() : 0;
  }

  private void register(Timeline t) {
    Tags tags = Tags.of("tenant", t.tenant().toString(), "timeline", t.id().toString());
    LogicalSize logical = new LogicalSize(t);
    // Strong references: the store keeps the timeline anyway, and deletion removes the gauges.
    gauge("zenith.timeline.logical_size", logical, LogicalSize::get, tags)
        .baseUnit("bytes")
        .description("bytes of the timeline's relation pages as of its last record")
        .register(meters);
    gauge("zenith.timeline.physical_size", t, x -> x.layerStats().bytes(), tags)
        .baseUnit("bytes")
        .description("bytes of the timeline's own layer files on disk")
        .register(meters);
    // beside ingest's zenith_timeline_disk_consistent_lsn: the difference is the upload lag
    gauge("zenith.timeline.remote_consistent_lsn", t, x -> x.remoteConsistentLsn().value(), tags)
        .description("LSN up to which the timeline's last uploaded index reaches (ADR 0023)")
        .register(meters);
    gauge("zenith.timeline.remote_upload_lag", t, TimelineMeters::uploadLag, tags)
        .baseUnit("bytes")
        .description(
            "WAL bytes durable in local layer files and not yet in remote storage"
                + " (disk_consistent_lsn - remote_consistent_lsn)")
        .register(meters);
    for (String kind : new String[] {"l0", "l1", "image"}) {
      gauge(
              "zenith.timeline.layer_files",
              t,
              x ->
                  switch (kind) {
                    case "l0" -> x.layerStats().l0();
                    case "l1" -> x.layerStats().l1();
                    default -> x.layerStats().images();
                  },
              tags.and("kind", kind))
          .description("the timeline's own layer files, by kind (L0 and L1 delta, image)")
          .register(meters);
    }
  }

  private static <T> Gauge.Builder<T> gauge(
      String name, T state, ToDoubleFunction<T> f, Tags tags) {
    return Gauge.builder(name, state, f).tags(tags).strongReference(true);
  }

  /** The logical size of one timeline, recomputed when older than the TTL. Thread-safe. */
  private static final class LogicalSize {
    private final TimelineView timeline;
    private long computedAt;
    private double value = Double.NaN;

    LogicalSize(TimelineView timeline) {
      this.timeline = timeline;
    }

    synchronized double get() {
      long now = System.nanoTime();
      if (Double.isNaN(value) || now - computedAt > LOGICAL_SIZE_TTL.toNanos()) {
        computedAt = now;
        value = compute();
      }
      return value;
    }

    private double compute() {
      if (timeline.brokenReason().isPresent()) {
        return Double.NaN;
      }
      try {
        long size = 0;
        for (Catalog.RelFork rf :
            Catalog.relations(timeline, KeySpace.ALL_RELATIONS, timeline.lastRecordLsn())) {
          size += Integer.toUnsignedLong(rf.blocks()) * PageLayout.BLCKSZ;
        }
        return size;
      } catch (RuntimeException e) {
        // deleted or failing under the scrape: no value rather than a failed scrape
        return Double.NaN;
      }
    }
  }
}
