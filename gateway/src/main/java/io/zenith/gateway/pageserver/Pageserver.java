package io.zenith.gateway.pageserver;

import com.fasterxml.jackson.core.JsonProcessingException;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.zenith.gateway.cli.Main;
import io.zenith.gateway.config.ServiceAuth;
import io.zenith.gateway.http.ApiException;
import io.zenith.gateway.http.ProcessMeters;
import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.CommitTimestamps;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.ingest.pg.PgControl;
import io.zenith.layer.CompactionResult;
import io.zenith.layer.GcResult;
import io.zenith.layer.LayerDisk;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.Timeline;
import io.zenith.layer.TimelineView;
import io.zenith.page.Basebackup;
import io.zenith.page.PageReconstructor;
import io.zenith.page.redo.WalRedoConfig;
import io.zenith.page.redo.WalRedoManager;
import io.zenith.pg.PgDistribution;
import io.zenith.replication.auth.Tokens;
import io.zenith.replication.client.StreamMetrics;
import io.zenith.replication.server.PgSession;
import io.zenith.replication.server.PgWireServer;
import io.zenith.replication.server.PgWireServerOptions;
import io.zenith.replication.server.QueryResponse;
import io.zenith.wal.DirectoryLock;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;
import reactor.netty.DisposableServer;

/**
 * The pageserver process: the layer store of its data directory, the WAL-redo pool, WAL receivers
 * per timeline, the management API over HTTP, and the libpq endpoint ({@code basebackup <tenant>
 * <timeline> [<lsn>]}, answered with a tar as CopyOut).
 *
 * <p>Data directory: {@code pageserver.toml}, {@code pageserver.lock} (held for the pageserver's
 * life: a second pageserver on the directory is refused before it opens anything, {@link
 * DirectoryLock}) and the layer store ({@code index/}, {@code tenants/}); WAL-redo scratch clusters
 * go to the system temp directory. A timeline's WAL source, once set through the API, is kept in
 * {@code wal_source.json} of the timeline's directory and resumed after a restart.
 *
 * <p>Thread-safe. Network threads never block: store operations and basebackups run on {@link
 * #blocking()}.
 */
public final class Pageserver implements HttpApi.Operations, AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Pageserver.class);
  static final String WAL_SOURCE_FILE = "wal_source.json";

  /** The lock file of the data directory. */
  public static final String LOCK_FILE = "pageserver.lock";

  private final Path dataDir;
  private final PageserverConfig config;
  private final ServiceAuth auth;

  /** Its {@code safekeeperdata} token for the safekeepers (read at start), or null. */
  private final @Nullable String token;

  private final DirectoryLock lock;
  private final LayerStore store;
  private final PrometheusMeterRegistry meters =
      new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
  private final Scheduler blocking = Schedulers.newBoundedElastic(8, 10_000, "pageserver-io");

  /**
   * Where basebackups reconstruct their pages, shared by all of them so that concurrent backups
   * together use at most this many threads (the cores, or the WAL-redo processes when there are
   * more: pages that need redo wait for a process, not a core).
   */
  private final Scheduler basebackupReaders;

  private final WalRedoManager redo;
  private final PageReconstructor pages;
  private final Map<String, WalReceiver> receivers = new ConcurrentHashMap<>();
  private final HistoryMaintenance history;
  private final LibpqCommands libpq;
  private final TimelineMeters timelineMeters;
  private final ProcessMeters processMeters;
  private DisposableServer http;
  private PgWireServer pg;
  private volatile @Nullable PageserverRemote remote;
  private final TenantAttachments attachments;
  private final OffloadedWalRestore walRestore = new OffloadedWalRestore();

  private Pageserver(Path dataDir, PageserverConfig config, LayerDisk disk) {
    this.dataDir = dataDir;
    this.config = config;
    this.auth = config.auth(dataDir);
    this.token = auth.readToken();
    this.lock = lock(dataDir);
    try {
      this.store = LayerStore.open(dataDir, config.layerStoreConfig(), disk);
      this.attachments =
          new TenantAttachments(
              store, meters, () -> remote, (t, tl) -> stopReceiver(key(t, tl)), this);
    } catch (RuntimeException e) {
      lock.closeAfter(e);
      throw e;
    }
    try {
      this.redo =
          WalRedoManager.start(
              PgDistribution.detect(),
              // Scratch clusters live under the system temp directory: PostgreSQL's user must be
              // able to reach them, which a root-owned data directory may not allow.
              WalRedoConfig.defaults()
                  .withChecksums(config.dataChecksums(), true)
                  .withMaxProcessesPerTenant(config.walredoProcesses())
                  .withRequestTimeout(config.walredoTimeoutDuration()),
              meters);
    } catch (RuntimeException e) {
      store.close();
      lock.closeAfter(e);
      throw e;
    }
    this.pages = new PageReconstructor(redo, config.pageCacheBytes(), meters);
    this.history =
        new HistoryMaintenance(
            store,
            config,
            pages::page,
            (t, time) ->
                CommitTimestamps.lastCommitAtOrBefore(t, time)
                    .map(CommitTimestamps.Commit::lsn)
                    .orElse(Lsn.INVALID),
            meters);
    this.timelineMeters = new TimelineMeters(store, meters);
    this.processMeters = ProcessMeters.bind(meters);
    int readers = Math.max(Runtime.getRuntime().availableProcessors(), config.walredoProcesses());
    this.basebackupReaders = Schedulers.newBoundedElastic(readers, 10_000, "basebackup-read");
    this.libpq =
        new LibpqCommands(
            store,
            pages,
            config,
            blocking,
            // a window of 4 parts per reader keeps every reader busy while the client drains
            new Basebackup.Reading(basebackupReaders, 4 * readers),
            meters);
  }

  /**
   * Locks the data directory before anything in it is opened: another pageserver on it (another
   * process, or instance in this JVM) is an UncheckedIOException caused by an InUseException.
   */
  private static DirectoryLock lock(Path dataDir) {
    try {
      return DirectoryLock.acquire(dataDir, LOCK_FILE);
    } catch (IOException e) {
      throw new UncheckedIOException(e.getMessage(), e);
    }
  }

  /** Opens the data directory and starts serving; resumes the WAL sources it had. */
  public static Pageserver start(Path dataDir, PageserverConfig config) {
    return start(dataDir, config, LayerDisk.DIRECT);
  }

  /**
   * Starts as {@link #start(Path, PageserverConfig)} does, with layer files written through {@code
   * disk} (tests simulate a full or a slow disk there).
   */
  public static Pageserver start(Path dataDir, PageserverConfig config, LayerDisk disk) {
    Pageserver ps = new Pageserver(dataDir, config, disk);
    try {
      Tokens.Verifier verifier = ps.auth.verifier();
      ps.remote = PageserverRemote.open(config, dataDir, ps.store, ps.meters, log);
      ps.http = new HttpApi(ps, verifier).bind(config.httpAddress());
      ps.pg =
          PgWireServer.start(
                  PgWireServerOptions.builder()
                      .host(config.pgAddress().getHostString())
                      .port(config.pgAddress().getPort())
                      .authenticator(ps.auth.authenticator(verifier))
                      .build(),
                  ps::handleQuery)
              .block(Duration.ofSeconds(30));
      ps.auth.warnIfOff(
          log, "pageserver " + config.id(), List.of(config.httpAddress(), config.pgAddress()));
      ps.resumeWalSources();
      ps.history.start();
      log.info(
          "pageserver {} serving HTTP on {} and libpq on {}",
          config.id(),
          config.listenHttp(),
          config.listenPg());
      return ps;
    } catch (RuntimeException e) {
      ps.close();
      throw e;
    }
  }

  public LayerStore store() {
    return store;
  }

  public PageReconstructor pages() {
    return pages;
  }

  /** The scratch directory of its WAL-redo processes: tells them from other pageservers'. */
  public Path walRedoScratch() {
    return redo.scratch().root();
  }

  public int httpPort() {
    return http.port();
  }

  public int pgPort() {
    return pg.port();
  }

  @Override
  public Scheduler blocking() {
    return blocking;
  }

  // ------------------------------------------------------------------ API

  @Override
  public ApiModel.Status status() {
    return new ApiModel.Status(config.id(), Main.version(), 15, PageserverRemote.deletions(remote));
  }

  @Override
  public List<ApiModel.TenantInfo> tenants() {
    return store.tenants().stream().sorted().map(this::tenantInfo).toList();
  }

  /**
   * Creates a tenant, with a root timeline made by a fresh initdb ({@link RootTimeline}) when
   * {@code root} is given; a failed initdb or import deletes the tenant again.
   */
  @Override
  public ApiModel.TenantInfo createTenant(
      Optional<TenantId> id, Optional<TimelineId> root, int generation) {
    TenantId t = id.orElseGet(TenantId::generate);
    store.createTenant(t, generation);
    root.ifPresent(r -> RootTimeline.createOrUndo(store, t, r, () -> deleteTenant(t)));
    return tenantInfo(t);
  }

  private ApiModel.TenantInfo tenantInfo(TenantId t) {
    return new ApiModel.TenantInfo(
        t.toString(), store.timelines(t).size(), store.generations().of(t));
  }

  /**
   * Attaches a tenant here in {@code generation} (ADR 0026): one this pageserver holds keeps its
   * files and takes the newer generation (an older one is refused, 409); one it does not hold comes
   * from remote storage ({@link TenantAttachments}, ADR 0027).
   */
  @Override
  public ApiModel.TenantInfo attachTenant(TenantId tenant, int generation) {
    if (!store.tenants().contains(tenant)) {
      attachments.attach(tenant, generation);
      return tenantInfo(tenant);
    }
    store.generations().raise(tenant, generation);
    log.info("tenant {} attached in generation {}", tenant, generation);
    return tenantInfo(tenant);
  }

  /**
   * Deletes a tenant: the WAL receiver of each of its timelines stops, then the store deletes it
   * crash-safely (a durable mark first), and its metric series go.
   */
  @Override
  public synchronized ApiModel.TenantDeleted deleteTenant(TenantId tenant) {
    store.deleteTenant(tenant, id -> stopReceiver(key(tenant, id)));
    meters.getMeters().stream()
        .filter(m -> tenant.toString().equals(m.getId().getTag("tenant")))
        .forEach(meters::remove);
    return new ApiModel.TenantDeleted(tenant.toString());
  }

  @Override
  public List<ApiModel.TimelineInfo> timelines(TenantId tenant) {
    return store.timelines(tenant).stream().map(t -> info(t, false)).toList();
  }

  @Override
  public ApiModel.TimelineInfo timeline(TenantId tenant, TimelineId id, boolean withSize) {
    return info(store.timeline(tenant, id), withSize);
  }

  @Override
  public ApiModel.TimelineInfo branch(TenantId tenant, ApiModel.TimelineCreateRequest r) {
    if (r.newTimelineId() == null || r.ancestorTimelineId() == null) {
      throw ApiException.badRequest("new_timeline_id and ancestor_timeline_id are required");
    }
    Optional<Lsn> at;
    try {
      at = Optional.ofNullable(r.ancestorStartLsn()).map(Lsn::parse);
    } catch (IllegalArgumentException e) {
      throw ApiException.badRequest(e.getMessage());
    }
    TimelineId ancestor = HttpApi.timelineId(r.ancestorTimelineId());
    Timeline anc = store.timeline(tenant, ancestor);
    // Outside [start, last record] the store's own check names the range, which says more.
    at.filter(lsn -> !lsn.isBefore(anc.startLsn()) && !lsn.isAfter(anc.lastRecordLsn()))
        .ifPresent(lsn -> checkBranchPoint(anc, lsn));
    Timeline t = store.branch(tenant, HttpApi.timelineId(r.newTimelineId()), ancestor, at);
    return info(t, false);
  }

  /** A branch point must be where a record can start: not inside a page header. */
  private static void checkBranchPoint(TimelineView anc, Lsn lsn) {
    byte[] control = Catalog.image(anc, KeySpace.CONTROL_FILE, anc.lastRecordLsn()).orElse(null);
    int segmentSize = control == null ? 16 << 20 : PgControl.parse(control).walSegmentSize();
    int inPage = lsn.pageOffset();
    int header = lsn.segmentOffset(segmentSize) < 8192 ? 40 : 24;
    if (inPage != 0 && inPage < header) {
      throw new ApiException(
          400,
          "cannot branch at "
              + lsn
              + ": it points into a WAL page header, not at a record boundary");
    }
  }

  @Override
  public ApiModel.LsnByTimestamp lsnByTimestamp(TenantId tenant, TimelineId id, Instant time) {
    return ApiModel.LsnByTimestamp.of(
        CommitTimestamps.lsnByTimestamp(store.timeline(tenant, id), time));
  }

  @Override
  public ApiModel.TimelineInfo checkpoint(TenantId tenant, TimelineId id) {
    Timeline t = store.timeline(tenant, id);
    t.flushFailure()
        .ifPresent(
            why -> {
              // Its flush thread is retrying: answer now rather than after waiting for space.
              throw new LayerStoreException(
                  LayerStoreException.Kind.NO_SPACE,
                  "cannot checkpoint " + t + ": its layer flushes fail (" + why + ")");
            });
    // Freezing must happen between records: a streaming timeline freezes on its ingest thread.
    WalReceiver r = receivers.get(key(tenant, id));
    if (r != null) {
      r.checkpoint().block(Duration.ofMinutes(5));
    } else {
      t.checkpoint();
    }
    return info(t, false);
  }

  @Override
  public ApiModel.TimelineInfo restoreOffloadedWal(TenantId tenant, TimelineId id) {
    Timeline t = store.timeline(tenant, id);
    if (receivers.containsKey(key(tenant, id))) {
      throw new ApiException(409, "timeline " + id + " has a WAL source: its WAL comes from there");
    }
    walRestore.ingest(t, pages, meters, history.compactor(t), PageserverRemote.storage(remote));
    return info(t, false);
  }

  /**
   * Deletes a timeline: once the store's checks pass (it exists, no child branches from it), its
   * WAL receiver stops (its ingest and flushes with it), then the store deletes it crash-safely.
   */
  @Override
  public synchronized ApiModel.TimelineDeleted deleteTimeline(TenantId tenant, TimelineId id) {
    store.deleteTimeline(tenant, id, () -> stopReceiver(key(tenant, id)));
    // Its ingest series would otherwise be scraped until the timeline object is collected.
    meters.getMeters().stream()
        .filter(m -> id.toString().equals(m.getId().getTag("timeline")))
        .filter(m -> tenant.toString().equals(m.getId().getTag("tenant")))
        .forEach(meters::remove);
    return new ApiModel.TimelineDeleted(tenant.toString(), id.toString());
  }

  @Override
  public synchronized ApiModel.TimelineInfo startWalReceiver(
      TenantId tenant, TimelineId id, ApiModel.WalSource source) {
    Timeline t = store.timeline(tenant, id);
    t.brokenReason()
        .ifPresent(
            r -> {
              throw new ApiException(500, "timeline " + id + " is broken: " + r);
            });
    stopReceiver(key(tenant, id));
    try {
      DurableFiles.write(t.dir().resolve(WAL_SOURCE_FILE), ApiModel.JSON.writeValueAsBytes(source));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    startReceiver(t, source);
    return info(t, false);
  }

  @Override
  public synchronized ApiModel.TimelineInfo stopWalReceiver(TenantId tenant, TimelineId id) {
    Timeline t = store.timeline(tenant, id);
    stopReceiver(key(tenant, id));
    try {
      Files.deleteIfExists(t.dir().resolve(WAL_SOURCE_FILE));
      DurableFiles.fsyncDirectory(t.dir());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return info(t, false);
  }

  private void startReceiver(Timeline t, ApiModel.WalSource source) {
    WalReceiver r =
        new WalReceiver(t, source, pages, meters, history.compactor(t), () -> token, () -> remote);
    receivers.put(key(t.tenant(), t.id()), r);
    r.start();
  }

  private void stopReceiver(String key) {
    WalReceiver r = receivers.remove(key);
    if (r != null) {
      r.stop();
    }
  }

  /** The receiver of a timeline. */
  Optional<WalReceiver> receiver(TenantId tenant, TimelineId id) {
    return Optional.ofNullable(receivers.get(key(tenant, id)));
  }

  /** The counters of a timeline's WAL receiver connection, while it is connected. */
  public Optional<StreamMetrics> walReceiverStreamMetrics(TenantId tenant, TimelineId id) {
    return receiver(tenant, id).flatMap(WalReceiver::streamMetrics);
  }

  private static String key(TenantId t, TimelineId tl) {
    return t + "/" + tl;
  }

  private void resumeWalSources() {
    for (TenantId tenant : store.tenants()) {
      for (Timeline t : store.timelines(tenant)) {
        Path f = t.dir().resolve(WAL_SOURCE_FILE);
        if (Files.exists(f) && t.brokenReason().isEmpty()) {
          try {
            startReceiver(t, ApiModel.JSON.readValue(f.toFile(), ApiModel.WalSource.class));
          } catch (IOException e) {
            log.warn("ignoring unreadable {}: {}", f, e.getMessage());
          }
        }
      }
    }
  }

  private ApiModel.TimelineInfo info(TimelineView t, boolean withSize) {
    Long size = null;
    if (withSize && t.brokenReason().isEmpty()) {
      size = 0L;
      for (Catalog.RelFork rf : Catalog.relations(t, KeySpace.ALL_RELATIONS, t.lastRecordLsn())) {
        size += Integer.toUnsignedLong(rf.blocks()) * PageLayout.BLCKSZ;
      }
    }
    Timeline.RecordPosition pos = t.position();
    WalReceiver r = receivers.get(key(t.tenant(), t.id()));
    return new ApiModel.TimelineInfo(
        t.tenant().toString(),
        t.id().toString(),
        t.metadata().ancestorId().map(Object::toString).orElse(null),
        t.metadata().ancestorId().isPresent() ? t.metadata().ancestorLsn().toString() : null,
        t.startLsn().toString(),
        pos.last().toString(),
        pos.prev().toString(),
        t.diskConsistentLsn().toString(),
        t.remoteConsistentLsn().toString(),
        size,
        t.brokenReason().isPresent() ? "broken" : "active",
        t.brokenReason().orElse(null),
        t.flushFailure().orElse(null),
        r == null ? null : r.info(),
        t.gcCutoff().isValid() ? t.gcCutoff().toString() : null,
        TimelineDetails.pitrStart(t),
        TimelineDetails.layerCounts(t),
        PageserverRemote.info(remote, t));
  }

  @Override
  public ApiModel.CompactionInfo compact(TenantId tenant, TimelineId id) {
    Timeline t = store.timeline(tenant, id);
    CompactionResult r = history.compact(t, true);
    return new ApiModel.CompactionInfo(
        r.l0Merged(),
        r.l1Written(),
        r.imageLayers(),
        r.imagePages(),
        r.layersRemoved(),
        r.bytesRemoved(),
        info(t, false));
  }

  @Override
  public ApiModel.GcInfo gc(TenantId tenant, TimelineId id) {
    Timeline t = store.timeline(tenant, id);
    GcResult r = history.gc(t);
    return new ApiModel.GcInfo(
        r.cutoff().isValid() ? r.cutoff().toString() : null,
        r.versionsRemoved(),
        r.layersRemoved(),
        r.bytesRemoved(),
        info(t, false));
  }

  @Override
  public ApiModel.LayerList layers(TenantId tenant, TimelineId id) {
    return TimelineDetails.layers(store.timeline(tenant, id));
  }

  /** Attach and detach (ADR 0027); detach stops receivers under this pageserver's monitor. */
  @Override
  public TenantAttachments attachments() {
    return attachments;
  }

  @Override
  public String scrapeMetrics() {
    timelineMeters.refresh();
    return meters.scrape();
  }

  // ---------------------------------------------------------------- libpq

  /** The libpq endpoint's commands ({@link LibpqCommands}). */
  Mono<QueryResponse> handleQuery(PgSession session, String sql) {
    return libpq.handleQuery(session, sql);
  }

  static String toJson(Object o) {
    try {
      return ApiModel.JSON.writeValueAsString(o);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  @Override
  public synchronized void close() {
    history.close();
    receivers.values().forEach(WalReceiver::stop);
    receivers.clear();
    if (http != null) {
      http.disposeNow();
    }
    if (pg != null) {
      pg.close();
    }
    for (TenantId tenant : store.tenants()) {
      for (Timeline t : store.timelines(tenant)) {
        if (t.brokenReason().isEmpty()) {
          try {
            t.checkpoint();
          } catch (RuntimeException e) {
            log.warn("checkpoint of {} at shutdown failed: {}", t, e.getMessage());
          }
        }
      }
    }
    PageserverRemote.close(remote);
    processMeters.close();
    redo.close();
    store.close();
    blocking.dispose();
    basebackupReaders.dispose();
    try {
      lock.close();
    } catch (IOException e) {
      log.warn("cannot release the lock of {}: {}", dataDir, e.getMessage());
    }
  }
}
