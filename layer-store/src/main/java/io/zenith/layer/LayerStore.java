package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The versioned page store of one pageserver: tenants, their timelines, and one RocksDB index over
 * all of them.
 *
 * <pre>
 * &lt;data&gt;/index/                                     RocksDB (derived: rebuilt when missing)
 * &lt;data&gt;/tenants/&lt;tenant&gt;/timelines/&lt;timeline&gt;/metadata   {@link TimelineMetadata}
 * &lt;data&gt;/tenants/&lt;tenant&gt;/timelines/&lt;timeline&gt;/*.layer    {@link LayerFile}s
 * &lt;data&gt;/tenants/&lt;tenant&gt;/timelines/&lt;timeline&gt;/*.layer.remote   stubs of layers only
 *                                                    in remote storage ({@link LayerDownloads})
 * &lt;data&gt;/attaching/&lt;tenant&gt;/            an attach in progress ({@link TenantAttach})
 * </pre>
 *
 * <p><b>Flush protocol</b> (see {@link Timeline#flushOldestFrozen}): (1) write the layer file to
 * {@code *.tmp}, fsync, rename, fsync the directory; (2) commit its index entries, its registry
 * entry and the timeline's new disk-consistent LSN in one synced RocksDB batch — the commit point;
 * (3) delete the ephemeral file. Recovery on {@link #open}: (1) a {@code *.tmp} is deleted; (2) a
 * layer file without a registry entry is deleted: a flush's was never committed (its WAL is
 * ingested again from the disk-consistent LSN), a compaction's was never committed (its source
 * layers still serve) or one was retired by compaction or GC before a crash ({@link Seams}); (3)
 * ephemeral files are deleted. If RocksDB is missing or cannot be opened, it is rebuilt from every
 * layer file's own index, the layer id counter moves past the ids of the files, and each timeline's
 * disk-consistent LSN becomes the end of its newest layer (WAL after it that stored no versions is
 * ingested again).
 *
 * <p><b>Full disk:</b> a flush whose layer file cannot get its bytes ({@link LayerDisk}) deletes
 * its temporary file and fails with {@link LayerStoreException.Kind#NO_SPACE}, leaving the store as
 * it was (the frozen layer stays queued); the caller retries it.
 *
 * <p>Thread-safe.
 */
public final class LayerStore implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(LayerStore.class);

  private final Path dataDir;
  private final LayerStoreConfig config;
  private final LayerDisk disk;
  private final LayerIndex index;
  private final RemoteDeletionQueue deletions;
  private final TenantGenerations generations;
  private final Map<TenantId, Map<TimelineId, Timeline>> tenants = new ConcurrentHashMap<>();
  private final boolean rebuilt;
  private final LayerDownloads downloads = new LayerDownloads(LayerDownloads.DEFAULT_TIMEOUT);

  private LayerStore(
      Path dataDir,
      LayerStoreConfig config,
      LayerDisk disk,
      LayerIndex index,
      RemoteDeletionQueue deletions,
      boolean rebuilt) {
    this.dataDir = dataDir;
    this.deletions = deletions;
    this.config = config;
    this.disk = disk;
    this.index = index;
    this.rebuilt = rebuilt;
    this.generations = new TenantGenerations(dataDir.resolve("tenants"));
  }

  /**
   * Opens the store in {@code dataDir} (creating it if empty), recovering from a crash and
   * rebuilding the index if needed. A timeline whose files are corrupt is loaded as broken: using
   * it fails with a message naming the file; the others work.
   */
  public static LayerStore open(Path dataDir, LayerStoreConfig config) {
    return open(dataDir, config, LayerDisk.DIRECT);
  }

  /**
   * Opens the store as {@link #open(Path, LayerStoreConfig)} does, writing the bytes of new layer
   * files through {@code disk} (tests simulate a full disk there).
   */
  public static LayerStore open(Path dataDir, LayerStoreConfig config, LayerDisk disk) {
    try {
      DurableFiles.createDirectories(dataDir.resolve("tenants"));
      Path indexDir = dataDir.resolve("index");
      boolean rebuild = !Files.isDirectory(indexDir);
      LayerIndex index;
      try {
        index = LayerIndex.open(indexDir, config.blockCacheBytes());
      } catch (RocksDBException e) {
        Path aside = dataDir.resolve("index.unreadable-" + System.currentTimeMillis());
        log.warn(
            "cannot open the index at {} ({}); moving it to {} and rebuilding it from the layer files",
            indexDir,
            e.getMessage(),
            aside);
        Files.move(indexDir, aside, StandardCopyOption.ATOMIC_MOVE);
        index = LayerIndex.open(indexDir, config.blockCacheBytes());
        rebuild = true;
      }
      LayerStore store =
          new LayerStore(dataDir, config, disk, index, RemoteDeletionQueue.open(dataDir), rebuild);
      store.load(rebuild);
      return store;
    } catch (IOException | RocksDBException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot open the layer store at " + dataDir + ": " + e.getMessage(),
          e);
    }
  }

  /** True if this open rebuilt the index from the layer files. */
  public boolean rebuiltIndex() {
    return rebuilt;
  }

  private void load(boolean rebuild) throws IOException, RocksDBException {
    TenantDeletion.finishPending(index, deletions, dataDir.resolve("tenants"));
    TenantAttach.cleanPending(index, dataDir);
    try (Stream<Path> ts = Files.list(dataDir.resolve("tenants"))) {
      for (Path tdir : ts.sorted().toList()) {
        TenantId tenant;
        try {
          tenant = TenantId.parse(tdir.getFileName().toString());
        } catch (IllegalArgumentException e) {
          log.warn("ignoring {}: not a tenant directory", tdir);
          continue;
        }
        loadTenant(tenant, rebuild);
      }
    }
  }

  /** Loads a tenant's directory: its timelines, then their ancestors (an attach calls it too). */
  synchronized void loadTenant(TenantId tenant, boolean rebuild)
      throws IOException, RocksDBException {
    Map<TimelineId, Timeline> tls = new ConcurrentHashMap<>();
    Path dir = tenantDir(tenant).resolve("timelines");
    if (Files.isDirectory(dir)) {
      TimelineDeletion.finishPending(index, deletions, tenant, dir);
      try (Stream<Path> s = Files.list(dir)) {
        for (Path d : s.sorted().toList()) {
          Timeline t = loadTimeline(tenant, d, rebuild);
          if (t != null) {
            tls.put(t.id(), t);
          }
        }
      }
    }
    for (Timeline t : tls.values()) {
      t.metadata()
          .ancestorId()
          .ifPresent(
              a -> {
                Timeline anc = tls.get(a);
                if (anc == null) {
                  t.markBroken("its ancestor timeline " + a + " is missing");
                } else {
                  t.setAncestor(anc);
                }
              });
    }
    tenants.put(tenant, tls);
  }

  private Timeline loadTimeline(TenantId tenant, Path dir, boolean rebuild)
      throws IOException, RocksDBException {
    TimelineId id;
    try {
      id = TimelineId.parse(dir.getFileName().toString());
    } catch (IllegalArgumentException e) {
      log.warn("ignoring {}: not a timeline directory", dir);
      return null;
    }
    TimelineFiles.deleteLeftovers(dir);
    TimelineMetadata md;
    try {
      md = TimelineMetadata.read(dir);
    } catch (LayerStoreException e) {
      TimelineMetadata placeholder =
          new TimelineMetadata(tenant, id, null, Lsn.INVALID, Lsn.INVALID, 0, 15, Lsn.INVALID);
      Timeline t =
          new Timeline(
              placeholder,
              dir,
              index,
              config,
              disk,
              new LayerIndex.TimelineState(Lsn.INVALID, Lsn.INVALID, Lsn.INVALID));
      t.markBroken(e.getMessage());
      return t;
    }
    LayerIndex.TimelineState state = rebuild ? null : index.state(tenant, id);
    if (state == null) {
      return TimelineRebuild.rebuild(index, config, disk, md, dir);
    }
    Timeline t = new Timeline(md, dir, index, config, disk, state);
    Set<String> registered = new HashSet<>();
    for (LayerIndex.LayerInfo info : index.layers(tenant, id)) {
      registered.add(info.fileName());
      index.reserveLayerIdsUpTo(info.layerId());
      try {
        t.addReader(info.layerId(), downloads.open(dir.resolve(info.fileName())));
      } catch (LayerStoreException e) {
        t.markBroken(e.getMessage());
      }
    }
    for (Path f : TimelineFiles.layerFiles(dir)) {
      if (!registered.contains(f.getFileName().toString())) {
        // Written by a flush or a compaction that crashed before its commit (its WAL or its
        // source layers still hold the versions), or retired by one that crashed after it.
        log.info("deleting {}: a crash left it behind, and the index does not name it", f);
        Files.delete(f);
      }
    }
    return t;
  }

  /** Fetches the layer files that are in remote storage only (ADR 0027). */
  public LayerDownloads downloads() {
    return downloads;
  }

  public Path dataDir() {
    return dataDir;
  }

  /** The queue of remote deletions (ADR 0024); its worker runs while uploads do. */
  RemoteDeletionQueue remoteDeletions() {
    return deletions;
  }

  /** The index (tests look at what it holds). */
  LayerIndex index() {
    return index;
  }

  public LayerStoreConfig config() {
    return config;
  }

  public Collection<TenantId> tenants() {
    return List.copyOf(tenants.keySet());
  }

  /** The attach generation of each tenant (ADR 0026). */
  public TenantGenerations generations() {
    return generations;
  }

  /** Creates a tenant in {@link RemoteIndex#DEFAULT_GENERATION}. */
  public void createTenant(TenantId tenant) {
    createTenant(tenant, RemoteIndex.DEFAULT_GENERATION);
  }

  /** Creates a tenant in {@code generation} (durable on return); ALREADY_EXISTS if it exists. */
  public synchronized void createTenant(TenantId tenant, int generation) {
    if (tenants.containsKey(tenant)) {
      throw new LayerStoreException(
          LayerStoreException.Kind.ALREADY_EXISTS, "tenant " + tenant + " already exists");
    }
    if (Files.exists(TenantDeletion.markedDir(tenantDir(tenant)))) {
      throw new LayerStoreException(
          LayerStoreException.Kind.ALREADY_EXISTS,
          "tenant "
              + tenant
              + " is being deleted; its deletion finishes when it is deleted again or at the next"
              + " start");
    }
    try {
      DurableFiles.createDirectories(tenantDir(tenant).resolve("timelines"));
      generations.write(tenant, tenantDir(tenant), generation);
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO, "cannot create tenant " + tenant + ": " + e.getMessage(), e);
    }
    tenants.put(tenant, new ConcurrentHashMap<>());
  }

  private Path tenantDir(TenantId tenant) {
    return dataDir.resolve("tenants").resolve(tenant.toString());
  }

  private Map<TimelineId, Timeline> tenantTimelines(TenantId tenant) {
    Map<TimelineId, Timeline> m = tenants.get(tenant);
    if (m == null) {
      throw new LayerStoreException(
          LayerStoreException.Kind.UNKNOWN_TENANT, "tenant " + tenant + " not found");
    }
    return m;
  }

  public List<Timeline> timelines(TenantId tenant) {
    return tenantTimelines(tenant).values().stream()
        .sorted(Comparator.comparing(Timeline::id))
        .toList();
  }

  public Timeline timeline(TenantId tenant, TimelineId id) {
    Timeline t = tenantTimelines(tenant).get(id);
    if (t == null) {
      throw new LayerStoreException(
          LayerStoreException.Kind.UNKNOWN_TIMELINE,
          "timeline " + id + " not found in tenant " + tenant);
    }
    return t;
  }

  public Optional<Timeline> findTimeline(TenantId tenant, TimelineId id) {
    Map<TimelineId, Timeline> m = tenants.get(tenant);
    return m == null ? Optional.empty() : Optional.ofNullable(m.get(id));
  }

  /**
   * Creates an empty root timeline whose history will start at {@code initdbLsn} (the import writes
   * its first versions there). Durable on return.
   */
  public synchronized Timeline createRootTimeline(
      TenantId tenant, TimelineId id, Lsn initdbLsn, long systemId, int pgVersion) {
    TimelineMetadata md =
        new TimelineMetadata(
            tenant, id, null, Lsn.INVALID, initdbLsn, systemId, pgVersion, Lsn.INVALID);
    return createTimeline(
        md, new LayerIndex.TimelineState(Lsn.INVALID, Lsn.INVALID, Lsn.INVALID), null);
  }

  /**
   * Creates a branch of {@code ancestorId} at {@code at} (its last record if empty): metadata only,
   * whatever the size of the data. Durable on return.
   *
   * @throws LayerStoreException INVALID_LSN when {@code at} is before the ancestor's start, after
   *     its last record, below its GC cutoff, or not 8-byte aligned; ALREADY_EXISTS; UNKNOWN_*
   */
  public synchronized Timeline branch(
      TenantId tenant, TimelineId id, TimelineId ancestorId, Optional<Lsn> at) {
    Timeline anc = timeline(tenant, ancestorId);
    anc.brokenReason()
        .ifPresent(
            r -> {
              throw new LayerStoreException(
                  LayerStoreException.Kind.CORRUPT_FILE,
                  "cannot branch from " + ancestorId + ": " + r);
            });
    Timeline.RecordPosition pos = anc.position();
    Lsn lsn = at.orElse(pos.last());
    if (lsn.isBefore(anc.startLsn())) {
      throw new LayerStoreException(
          LayerStoreException.Kind.INVALID_LSN,
          "cannot branch at " + lsn + ": timeline " + ancestorId + " starts at " + anc.startLsn());
    }
    if (lsn.isAfter(pos.last())) {
      throw new LayerStoreException(
          LayerStoreException.Kind.INVALID_LSN,
          "cannot branch at "
              + lsn
              + ": timeline "
              + ancestorId
              + " has WAL only up to "
              + pos.last());
    }
    if (anc.metadata().gcCutoff().isValid() && lsn.isBefore(anc.metadata().gcCutoff())) {
      throw new LayerStoreException(
          LayerStoreException.Kind.INVALID_LSN,
          "cannot branch at "
              + lsn
              + ": below the GC cutoff "
              + anc.metadata().gcCutoff()
              + " of "
              + ancestorId);
    }
    if ((lsn.value() & 7) != 0) {
      throw new LayerStoreException(
          LayerStoreException.Kind.INVALID_LSN,
          "cannot branch at " + lsn + ": not a record boundary (WAL records start 8-byte aligned)");
    }
    TimelineMetadata md =
        new TimelineMetadata(
            tenant,
            id,
            ancestorId,
            lsn,
            anc.startLsn(),
            anc.metadata().systemId(),
            anc.metadata().pgVersion(),
            Lsn.INVALID);
    Lsn prev = lsn.equals(pos.last()) ? pos.prev() : Lsn.INVALID;
    return createTimeline(md, new LayerIndex.TimelineState(lsn, prev, Lsn.INVALID), anc);
  }

  /**
   * GC of one timeline, now, on the calling thread: raises its cutoff to {@code wanted}, capped by
   * its disk-consistent LSN, the branch points of its children (they read it there) and the LSNs
   * readers pinned ({@link Timeline#pin}); never lowers it; then removes what no read at or above
   * the cutoff needs. Branch creation is serialized with the cap (both hold this store's monitor),
   * so a child is never created below a cutoff being set.
   *
   * @throws LayerStoreException UNKNOWN_TIMELINE, or IO
   */
  public GcResult gc(TenantId tenant, TimelineId id, Lsn wanted) {
    Timeline t = timeline(tenant, id);
    Lsn cutoff;
    synchronized (this) {
      Lsn cap = Lsn.min(wanted, t.diskConsistentLsn());
      for (Timeline c : timelines(tenant)) {
        if (id.equals(c.metadata().ancestor())) {
          cap = Lsn.min(cap, c.metadata().ancestorLsn());
        }
      }
      Lsn floor = t.metadata().ancestor() != null ? t.metadata().ancestorLsn() : t.startLsn();
      if (!cap.isAfter(floor)) {
        cutoff = t.gcCutoff();
        if (!cutoff.isValid()) {
          return new GcResult(cutoff, 0, 0, 0);
        }
      } else {
        try {
          cutoff = t.raiseGcCutoff(cap);
          Seams.reached(Seams.Seam.GC_CUTOFF_RECORDED);
        } catch (IOException e) {
          throw new LayerStoreException(
              LayerStoreException.Kind.IO,
              "cannot record the GC cutoff of " + t + ": " + e.getMessage(),
              e);
        }
      }
    }
    return t.collectGarbage(cutoff);
  }

  private Timeline createTimeline(
      TimelineMetadata md, LayerIndex.TimelineState state, Timeline ancestor) {
    Map<TimelineId, Timeline> m = tenantTimelines(md.tenant());
    if (m.containsKey(md.timeline())) {
      throw new LayerStoreException(
          LayerStoreException.Kind.ALREADY_EXISTS,
          "timeline " + md.timeline() + " already exists in tenant " + md.tenant());
    }
    Path dir = tenantDir(md.tenant()).resolve("timelines").resolve(md.timeline().toString());
    if (Files.exists(TimelineDeletion.markedDir(dir))) {
      throw new LayerStoreException(
          LayerStoreException.Kind.ALREADY_EXISTS,
          "timeline "
              + md.timeline()
              + " of tenant "
              + md.tenant()
              + " is being deleted; its deletion finishes when it is deleted again or at the"
              + " next start");
    }
    try {
      DurableFiles.createDirectories(dir);
      md.write(dir);
      index.putState(md.tenant(), md.timeline(), state);
    } catch (IOException | RocksDBException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot create timeline " + md.timeline() + ": " + e.getMessage(),
          e);
    }
    Timeline t = new Timeline(md, dir, index, config, disk, state);
    t.setAncestor(ancestor);
    m.put(md.timeline(), t);
    return t;
  }

  /**
   * Deletes a timeline and returns its space, crash-safely ({@link TimelineDeletion}): it is closed
   * (readers in progress and later ones fail with UNKNOWN_TIMELINE "was deleted"; waiters for an
   * LSN fail), its directory is renamed as the durable deletion mark, then its index entries and
   * its files are deleted. A crash after the mark finishes the deletion at the next {@link #open};
   * one before it leaves the timeline whole. The timeline's writer (ingest and flush) must have
   * stopped: see {@link #deleteTimeline(TenantId, TimelineId, Runnable)}. Deleting a timeline whose
   * deletion an I/O error interrupted finishes it.
   *
   * @throws LayerStoreException UNKNOWN_TENANT / UNKNOWN_TIMELINE; HAS_CHILDREN naming the child
   *     timelines, which must be deleted first; IO if a step fails (the deletion is then pending)
   */
  public void deleteTimeline(TenantId tenant, TimelineId id) {
    deleteTimeline(tenant, id, () -> {}, step -> {});
  }

  /**
   * {@link #deleteTimeline(TenantId, TimelineId)}, running {@code stopWriter} (which stops the
   * timeline's ingest and flushes, and returns once they stopped) after the checks passed and
   * before the timeline closes: a refused deletion leaves the writer running.
   */
  public void deleteTimeline(TenantId tenant, TimelineId id, Runnable stopWriter) {
    deleteTimeline(tenant, id, stopWriter, step -> {});
  }

  /** The deletion, calling {@code after} after each step (tests stop it there: a "crash"). */
  synchronized void deleteTimeline(
      TenantId tenant,
      TimelineId id,
      Runnable stopWriter,
      java.util.function.Consumer<TimelineDeletion.Step> after) {
    TimelineDeletion.delete(
        index,
        deletions,
        tenantTimelines(tenant),
        tenantDir(tenant).resolve("timelines"),
        tenant,
        id,
        stopWriter,
        after);
  }

  /**
   * Deletes a tenant with all its timelines and returns their space, crash-safely ({@link
   * TenantDeletion}): {@code stopWriter} runs for each timeline (it stops the timeline's ingest and
   * flushes and returns once they stopped), each closes (readers fail with UNKNOWN_TIMELINE "was
   * deleted"), the tenant's directory is renamed as the durable deletion mark, then the index
   * entries and files go. A crash after the mark finishes the deletion at the next {@link #open};
   * one before it leaves the tenant whole. Deleting a tenant whose deletion an I/O error
   * interrupted finishes it.
   *
   * @throws LayerStoreException UNKNOWN_TENANT; IO if a step fails (the deletion is then pending)
   */
  public void deleteTenant(TenantId tenant, java.util.function.Consumer<TimelineId> stopWriter) {
    deleteTenant(tenant, stopWriter, () -> {});
  }

  /** The deletion, calling {@code afterMark} after the mark (tests stop it there: a "crash"). */
  synchronized void deleteTenant(
      TenantId tenant, java.util.function.Consumer<TimelineId> stopWriter, Runnable afterMark) {
    TenantDeletion.delete(
        index, deletions, tenants, tenantDir(tenant), tenant, stopWriter, afterMark, false);
    generations.forget(tenant);
  }

  /** Removes a tenant as a deletion does, keeping its remote objects (a detach, ADR 0027). */
  public synchronized void detachTenant(
      TenantId tenant, java.util.function.Consumer<TimelineId> stopWriter) {
    TenantDeletion.delete(
        index, deletions, tenants, tenantDir(tenant), tenant, stopWriter, () -> {}, true);
    generations.forget(tenant);
  }

  /** Closes every timeline (dropping unflushed versions) and the index. */
  @Override
  public synchronized void close() {
    for (Map<TimelineId, Timeline> m : tenants.values()) {
      m.values().forEach(Timeline::close);
    }
    tenants.clear();
    index.close();
  }
}
