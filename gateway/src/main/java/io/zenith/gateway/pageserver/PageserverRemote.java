package io.zenith.gateway.pageserver;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.layer.LayerDownloads;
import io.zenith.layer.LayerEviction;
import io.zenith.layer.LayerStore;
import io.zenith.layer.RemoteDeletionQueue;
import io.zenith.layer.RemoteTimelineClient;
import io.zenith.layer.RemoteUploads;
import io.zenith.layer.TimelineView;
import io.zenith.wal.remote.RemoteStorage;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;

/**
 * The pageserver's remote storage ({@code [remote_storage]}) and the upload queues of its timelines
 * (ADR 0023) and its remote deletion queue (ADR 0024), with their meters: opened at start, closed
 * before the layer store. Without remote storage, there is nothing to upload and {@code
 * remote_consistent_lsn} stays where it was. Thread-safe.
 */
final class PageserverRemote {
  /** How often eviction looks at the local layer bytes (ADR 0027). */
  static final Duration EVICTION_PERIOD = Duration.ofSeconds(10);

  private final RemoteStorage storage;
  private final RemoteUploads uploads;
  private final @Nullable LayerEviction eviction;

  private PageserverRemote(
      RemoteStorage storage, RemoteUploads uploads, @Nullable LayerEviction eviction) {
    this.storage = storage;
    this.uploads = uploads;
    this.eviction = eviction;
  }

  /** Opens the configured remote storage and starts uploading; null without remote storage. */
  static @Nullable PageserverRemote open(
      PageserverConfig config, Path dataDir, LayerStore store, MeterRegistry meters, Logger log) {
    RemoteStorage storage =
        RemoteStorageConfig.open(config.remoteStorage(), dataDir, "pageserver", log);
    if (storage == null) {
      return null;
    }
    RemoteUploads uploads;
    try {
      uploads = RemoteUploads.start(store, storage, RemoteUploads.Settings.DEFAULT);
    } catch (RuntimeException e) {
      storage.close();
      throw e;
    }
    register(uploads, meters);
    // Layer files that are only remote (attached, evicted) are fetched from here on first read.
    store.downloads().useStorage(storage);
    LayerEviction eviction =
        config.maxLocalLayerBytesValue().isPresent()
            ? LayerEviction.start(
                store,
                config.maxLocalLayerBytesValue().getAsLong(),
                EVICTION_PERIOD,
                RemoteUploads.Settings.DEFAULT.callTimeout())
            : null;
    registerLayerMeters(store, eviction, meters);
    return new PageserverRemote(storage, uploads, eviction);
  }

  private static void registerLayerMeters(
      LayerStore store, @Nullable LayerEviction eviction, MeterRegistry meters) {
    LayerDownloads d = store.downloads();
    FunctionCounter.builder("zenith.layer.downloads", d, x -> x.totals().downloads())
        .description("layer files downloaded on first read (attached or evicted)")
        .register(meters);
    FunctionCounter.builder("zenith.layer.download", d, x -> x.totals().bytes())
        .baseUnit("bytes")
        .description("bytes of layer files downloaded on first read")
        .register(meters);
    FunctionCounter.builder(
            "zenith.layer.download.duration",
            d,
            x -> x.totals().nanos() / (double) TimeUnit.SECONDS.toNanos(1))
        .baseUnit("seconds")
        .description("time spent in successful layer downloads")
        .register(meters);
    FunctionCounter.builder("zenith.layer.download_failures", d, x -> x.totals().failures())
        .description("layer downloads that failed (storage error, timeout, size or CRC mismatch)")
        .register(meters);
    Gauge.builder("zenith.layer.resident", store, s -> LayerEviction.usage(s).residentBytes())
        .baseUnit("bytes")
        .description("bytes of registered layer files present locally")
        .register(meters);
    Gauge.builder("zenith.layer.remote_only", store, s -> LayerEviction.usage(s).remoteOnlyBytes())
        .baseUnit("bytes")
        .description("bytes of registered layer files only in remote storage (attached, evicted)")
        .register(meters);
    // Registered without a budget too (at 0): meters exist before their first event.
    LayerEviction.Totals none = new LayerEviction.Totals(0, 0, 0);
    FunctionCounter.builder(
            "zenith.layer.evictions",
            meters,
            x -> (eviction == null ? none : eviction.totals()).evictions())
        .description("layer files evicted under max_local_layer_bytes")
        .register(meters);
    FunctionCounter.builder(
            "zenith.layer.evicted",
            meters,
            x -> (eviction == null ? none : eviction.totals()).bytes())
        .baseUnit("bytes")
        .description("bytes of layer files evicted under max_local_layer_bytes")
        .register(meters);
  }

  private static void register(RemoteUploads u, MeterRegistry meters) {
    counter(
        meters,
        "zenith.remote.uploads",
        u,
        x -> x.totals().uploads(),
        null,
        "layer files uploaded to remote storage");
    counter(
        meters,
        "zenith.remote.index_uploads",
        u,
        x -> x.totals().indexUploads(),
        null,
        "timeline index objects uploaded to remote storage");
    counter(
        meters,
        "zenith.remote.upload",
        u,
        x -> x.totals().bytes(),
        "bytes",
        "bytes of layer files and indexes uploaded to remote storage");
    counter(
        meters,
        "zenith.remote.upload.duration",
        u,
        x -> x.totals().nanos() / (double) TimeUnit.SECONDS.toNanos(1),
        "seconds",
        "time spent in successful uploads");
    counter(
        meters,
        "zenith.remote.upload_retries",
        u,
        x -> x.totals().retries(),
        null,
        "upload passes that failed and are retried with backoff");
    Gauge.builder("zenith.remote.upload_queue", u, x -> x.totals().queueLength())
        .description("layer files committed locally and not uploaded yet, all timelines")
        .register(meters);
    counter(
        meters,
        "zenith.remote.deletions",
        u,
        x -> x.deletionTotals().deletions(),
        null,
        "objects deleted from remote storage by the deletion queue");
    counter(
        meters,
        "zenith.remote.deletion_failures",
        u,
        x -> x.deletionTotals().failures(),
        null,
        "executions of deletion lists that failed and are retried with backoff");
    counter(
        meters,
        "zenith.remote.deletion_lists_set_aside",
        u,
        x -> x.deletionTotals().setAside(),
        null,
        "deletion lists not executed because they failed their checks (kept as .corrupt/.refused)");
    Gauge.builder("zenith.remote.deletion_queue", u, x -> x.deletionTotals().pendingLists())
        .description("durable deletion lists written and not executed yet")
        .register(meters);
  }

  private static void counter(
      MeterRegistry meters,
      String name,
      RemoteUploads u,
      ToDoubleFunction<RemoteUploads> f,
      @Nullable String unit,
      String description) {
    FunctionCounter.builder(name, u, f).baseUnit(unit).description(description).register(meters);
  }

  /** What the timeline API shows of a timeline's uploads; null without remote storage. */
  static ApiModel.@Nullable RemoteUploadInfo info(
      @Nullable PageserverRemote remote, TimelineView t) {
    if (remote == null) {
      return null;
    }
    return remote
        .uploads
        .client(t.tenant(), t.id())
        .map(RemoteTimelineClient::status)
        .map(
            s ->
                new ApiModel.RemoteUploadInfo(
                    s.queueLength(),
                    s.uploads(),
                    s.uploadedBytes(),
                    s.retries(),
                    s.failure().orElse(null),
                    s.remoteLayers(),
                    s.remoteBytes()))
        .orElse(null);
  }

  /** What the status API shows of the remote deletion queue; null without remote storage. */
  static ApiModel.@Nullable RemoteDeletionInfo deletions(@Nullable PageserverRemote remote) {
    if (remote == null) {
      return null;
    }
    RemoteDeletionQueue.Totals t = remote.uploads.deletionTotals();
    return new ApiModel.RemoteDeletionInfo(
        t.pendingLists(),
        t.deletions(),
        t.failures(),
        t.setAside(),
        remote.uploads.deletionFailure().orElse(null));
  }

  /** The upload queues of {@code remote}; null without remote storage. */
  static @Nullable RemoteUploads uploads(@Nullable PageserverRemote remote) {
    return remote == null ? null : remote.uploads;
  }

  /** The storage of {@code remote}; null without remote storage. */
  static @Nullable RemoteStorage storage(@Nullable PageserverRemote remote) {
    return remote == null ? null : remote.storage;
  }

  /** Stops the uploads, then closes the storage. */
  static void close(@Nullable PageserverRemote remote) {
    if (remote != null) {
      if (remote.eviction != null) {
        remote.eviction.close();
      }
      remote.uploads.close();
      remote.storage.close();
    }
  }
}
