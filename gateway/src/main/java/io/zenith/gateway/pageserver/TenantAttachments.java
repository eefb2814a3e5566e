package io.zenith.gateway.pageserver;

import io.micrometer.core.instrument.MeterRegistry;
import io.zenith.gateway.http.ApiException;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.RemoteUploads;
import io.zenith.layer.TenantAttach;
import io.zenith.layer.Timeline;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteStorage;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BiConsumer;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;

/**
 * The pageserver's attach and detach of tenants (ADR 0027) behind {@code POST
 * /v1/tenant/{id}/attach}, {@code POST /v1/tenant/{id}/detach} and {@code GET /v1/tenant/{id}}: the
 * store's {@link TenantAttach} with the configured remote storage, the wait for uploads before a
 * detach, and what the API shows of a tenant's attach. WAL receivers are the pageserver's: a detach
 * stops them through {@code stopReceiver}; after an attach the control plane sets each timeline's
 * WAL source, as after a tenant's creation. Thread-safe.
 */
final class TenantAttachments {
  /** How long a detach waits for the uploads to reach the disk-consistent LSN. */
  static final Duration UPLOAD_WAIT = Duration.ofSeconds(60);

  /** How long one remote call of an attach may take. */
  static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);

  private final LayerStore store;
  private final MeterRegistry meters;
  private final Supplier<@Nullable PageserverRemote> remote;
  private final BiConsumer<TenantId, TimelineId> stopReceiver;
  private final Object receiversLock;
  private final Set<TenantId> attaching = ConcurrentHashMap.newKeySet();
  private final Map<TenantId, ApiModel.AttachInfo> attached = new ConcurrentHashMap<>();

  /**
   * @param receiversLock the monitor under which the pageserver starts and stops WAL receivers
   */
  TenantAttachments(
      LayerStore store,
      MeterRegistry meters,
      Supplier<@Nullable PageserverRemote> remote,
      BiConsumer<TenantId, TimelineId> stopReceiver,
      Object receiversLock) {
    this.store = store;
    this.meters = meters;
    this.remote = remote;
    this.stopReceiver = stopReceiver;
    this.receiversLock = receiversLock;
  }

  /** Attaches a tenant this pageserver does not have from remote storage, in {@code generation}. */
  ApiModel.TenantDetail attach(TenantId tenant, int generation) {
    RemoteStorage storage = PageserverRemote.storage(remote.get());
    if (storage == null) {
      throw new ApiException(409, "this pageserver has no [remote_storage] to attach from");
    }
    if (!attaching.add(tenant)) {
      throw new ApiException(409, "tenant " + tenant + " is being attached");
    }
    try {
      TenantAttach.Result res =
          TenantAttach.attach(store, storage, tenant, generation, CALL_TIMEOUT);
      attached.put(
          tenant,
          new ApiModel.AttachInfo(
              res.generation(),
              res.millis(),
              res.timelines().stream()
                  .map(
                      t ->
                          new ApiModel.AttachedTimeline(
                              t.id().toString(),
                              t.ancestor() == null ? null : t.ancestor().toString(),
                              t.diskConsistentLsn().toString(),
                              t.indexGeneration(),
                              t.layers(),
                              t.layerBytes()))
                  .toList()));
    } finally {
      attaching.remove(tenant);
    }
    return detail(tenant);
  }

  /** A tenant's state: {@code attaching} while an attach runs, else {@code attached}. */
  ApiModel.TenantDetail detail(TenantId tenant) {
    if (attaching.contains(tenant)) {
      return new ApiModel.TenantDetail(tenant.toString(), "attaching", 0, null, null);
    }
    List<Timeline> tls = store.timelines(tenant); // UNKNOWN_TENANT: 404
    return new ApiModel.TenantDetail(
        tenant.toString(),
        "attached",
        tls.size(),
        store.generations().of(tenant),
        attached.get(tenant));
  }

  /**
   * Detaches a tenant: its WAL receivers stop, every timeline is flushed, the uploads must reach
   * each one's disk-consistent LSN (bounded), then the store removes it locally, crash-safely; its
   * remote objects stay.
   *
   * @throws ApiException 504 when the uploads do not catch up in time (the tenant stays, its ingest
   *     stopped until its WAL sources are set again)
   */
  ApiModel.TenantDetached detach(TenantId tenant) {
    long t0 = System.nanoTime();
    List<Timeline> tls = store.timelines(tenant);
    RemoteUploads uploads = PageserverRemote.uploads(remote.get());
    if (uploads == null) {
      throw ApiException.badRequest(
          "cannot detach tenant "
              + tenant
              + ": this pageserver has no [remote_storage], so nothing could attach it again");
    }
    synchronized (receiversLock) {
      tls.forEach(t -> stopReceiver.accept(tenant, t.id()));
    }
    for (Timeline t : tls) {
      if (t.brokenReason().isPresent()) {
        continue; // nothing of it can be flushed or uploaded; remote storage has what it had
      }
      t.checkpoint();
      awaitUploads(t);
    }
    synchronized (receiversLock) {
      store.detachTenant(tenant, id -> stopReceiver.accept(tenant, id));
    }
    attached.remove(tenant);
    meters.getMeters().stream()
        .filter(m -> tenant.toString().equals(m.getId().getTag("tenant")))
        .forEach(meters::remove);
    return new ApiModel.TenantDetached(
        tenant.toString(),
        tls.stream().map(t -> t.id().toString()).toList(),
        (System.nanoTime() - t0) / 1_000_000);
  }

  private static void awaitUploads(Timeline t) {
    long deadline = System.nanoTime() + UPLOAD_WAIT.toNanos();
    Lsn disk = t.diskConsistentLsn();
    while (t.remoteConsistentLsn().isBefore(disk)) {
      if (System.nanoTime() > deadline) {
        throw new ApiException(
            504,
            "cannot detach: the uploads of "
                + t
                + " reached "
                + t.remoteConsistentLsn()
                + ", not its disk-consistent LSN "
                + disk
                + ", within "
                + UPLOAD_WAIT.toSeconds()
                + " s; the tenant stays attached with its ingest stopped");
      }
      try {
        Thread.sleep(50);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new LayerStoreException(
            LayerStoreException.Kind.IO, "interrupted while waiting for the uploads of " + t);
      }
    }
  }
}
