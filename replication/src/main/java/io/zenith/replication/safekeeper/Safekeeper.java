package io.zenith.replication.safekeeper;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.zenith.replication.safekeeper.SafekeeperException.Kind;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalFormat;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.log.SegmentAllocator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.stream.Stream;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * A safekeeper's timelines, in {@code <data>/<tenant>/<timeline>/} (WAL segments and {@code
 * safekeeper.control}), with their upkeep: every {@code upkeepInterval} each timeline persists its
 * positions, catches up from peers and learns its compute ({@link SafekeeperTimeline#maintain}).
 * Timelines are created by the control plane ({@link #create}) or learned from a peer's gossip
 * ({@link #onPeerStatus}), through the same durable path; creations are serialized. A deleted
 * timeline ({@link #delete}) leaves a durable tombstone ({@link Tombstones}): it is never created
 * again, from the control plane or from gossip, and connections naming it are refused. Thread-safe.
 */
public final class Safekeeper implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Safekeeper.class);

  private final SafekeeperConfig config;
  private final Path dataDir;
  private final WalFetcher fetcher;
  private final SegmentAllocator disk;
  private final MeterRegistry meters;
  private final Map<String, SafekeeperTimeline> timelines = new ConcurrentHashMap<>();
  private final Tombstones tombstones;

  /** Peer statuses refused (an identity that differs from the one held), by peer and timeline. */
  private final Map<String, String> refused = new ConcurrentHashMap<>();

  /** Set under the {@code timelines} lock: nothing is created after {@link #close}. */
  private boolean closed;

  /** May block (adoptions copy WAL and wait for intakes to stop): not a non-blocking thread. */
  private final Scheduler upkeep = Schedulers.newBoundedElastic(1, 16, "sk-upkeep");

  private final Disposable upkeepTask;

  /**
   * Held by an upkeep tick while it runs, and by {@link #close} before it disposes the task: a
   * dispose interrupts a running tick, and an interrupt closes the channel of an fsync in progress,
   * which counts as a failed fsync (fatal). So a close waits for the tick instead.
   */
  private final ReentrantLock ticking = new ReentrantLock();

  /** How long a close waits for an upkeep tick in progress (an adoption copies WAL). */
  private static final Duration CLOSE_WAIT = Duration.ofSeconds(30);

  private Safekeeper(
      SafekeeperConfig config,
      Path dataDir,
      WalFetcher fetcher,
      SegmentAllocator disk,
      MeterRegistry meters,
      Duration upkeepInterval,
      Tombstones tombstones) {
    this.config = config;
    this.tombstones = tombstones;
    this.dataDir = dataDir;
    this.fetcher = fetcher;
    this.disk = disk;
    this.meters = meters;
    this.upkeepTask =
        Flux.interval(upkeepInterval, upkeep).onBackpressureDrop().subscribe(i -> tick());
  }

  /** One upkeep tick: every timeline's {@link SafekeeperTimeline#maintain}, unless closing. */
  private void tick() {
    if (!ticking.tryLock()) {
      return; // the close holds it
    }
    try {
      synchronized (timelines) {
        if (closed) {
          return;
        }
      }
      timelines.values().forEach(SafekeeperTimeline::maintain);
    } finally {
      ticking.unlock();
    }
  }

  /**
   * Opens every timeline under {@code dataDir} (creating the directory if needed).
   *
   * @throws IOException naming the timeline whose files cannot be opened
   */
  public static Safekeeper start(
      SafekeeperConfig config,
      Path dataDir,
      WalFetcher fetcher,
      MeterRegistry meters,
      Duration upkeepInterval)
      throws IOException {
    return start(config, dataDir, fetcher, SegmentAllocator.ZEROS, meters, upkeepInterval);
  }

  /**
   * {@link #start(SafekeeperConfig, Path, WalFetcher, MeterRegistry, Duration)} with WAL segments
   * taking their space from {@code disk}: tests simulate a full disk there.
   */
  public static Safekeeper start(
      SafekeeperConfig config,
      Path dataDir,
      WalFetcher fetcher,
      SegmentAllocator disk,
      MeterRegistry meters,
      Duration upkeepInterval)
      throws IOException {
    DurableFiles.createDirectories(dataDir);
    // Deletions a crash interrupted are finished before any timeline is opened.
    Tombstones tombstones = Tombstones.load(dataDir);
    Safekeeper sk =
        new Safekeeper(config, dataDir, fetcher, disk, meters, upkeepInterval, tombstones);
    try {
      for (Path tenantDir : list(dataDir)) {
        for (Path tlDir : list(tenantDir)) {
          if (Files.exists(tlDir.resolve(ControlFile.FILE_NAME))) {
            sk.register(SafekeeperTimeline.open(tlDir, config, fetcher, disk));
          }
        }
      }
    } catch (IOException | RuntimeException e) {
      sk.close();
      throw e;
    }
    log.info("safekeeper {} started with {} timelines", config.id(), sk.timelines.size());
    return sk;
  }

  private static List<Path> list(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(Files::isDirectory)
          .filter(p -> p.getFileName().toString().matches("[0-9a-f]{32}"))
          .sorted()
          .toList();
    }
  }

  public SafekeeperConfig config() {
    return config;
  }

  /**
   * Creates a timeline whose WAL starts at {@code identity.startLsn()}.
   *
   * @throws SafekeeperException ALREADY_EXISTS if it is here (created, or learned from a peer)
   */
  public SafekeeperTimeline create(Identity identity, @Nullable LagLimits limits)
      throws IOException {
    synchronized (timelines) {
      checkNew(identity);
      SafekeeperTimeline t =
          createLocked(identity, limits == null ? config.defaultLagLimits() : limits);
      log.info("{}: created, WAL starts at {}", t, identity.startLsn());
      return t;
    }
  }

  /**
   * What a peer says about one of its timelines (gossip). A timeline held here with the same
   * identity gets the status ({@link SafekeeperTimeline#onPeerStatus}: commit LSN, donors, the
   * compute of the term). A timeline not held here is created with the peer's identity and lag
   * limits, as {@link #create} does, and then gets the status, so that peer recovery fills it from
   * the most advanced peer: a safekeeper that was down or is new when a timeline was created learns
   * it without a compute. A status whose identity (system id, segment size, start, …) differs from
   * the timeline held here is refused and never replaces it; that is logged once per peer and
   * timeline. The safekeeper's own status (a peer list naming itself) is ignored.
   *
   * @throws IOException if the timeline cannot be created here
   */
  public void onPeerStatus(TimelineStatus peer) throws IOException {
    if (peer.safekeeperId() == config.id()) {
      return;
    }
    Identity theirs = peer.identity();
    SafekeeperTimeline t = find(theirs.tenant(), theirs.timeline()).orElse(null);
    if (t == null) {
      t = learn(peer);
      if (t == null) {
        return;
      }
    }
    if (!t.identity().equals(theirs)) {
      refuse(
          peer,
          "status of timeline "
              + key(theirs.tenant(), theirs.timeline())
              + " from safekeeper "
              + peer.safekeeperId()
              + " refused: it has "
              + theirs.describe()
              + ", this one holds "
              + t.identity().describe());
      return;
    }
    refused.remove(peer.safekeeperId() + " " + key(theirs.tenant(), theirs.timeline()));
    t.onPeerStatus(peer);
  }

  /** Creates the timeline of {@code peer}'s status unless it is here; null if it cannot be. */
  private @Nullable SafekeeperTimeline learn(TimelineStatus peer) throws IOException {
    Identity id = peer.identity();
    synchronized (timelines) {
      SafekeeperTimeline t = timelines.get(key(id.tenant(), id.timeline()));
      if (t != null) {
        return t; // created meanwhile (by the control plane, or gossip from another peer)
      }
      if (closed) {
        return null;
      }
      if (tombstones.isDeleted(id.tenant(), id.timeline())) {
        refuse(
            peer,
            "timeline "
                + key(id.tenant(), id.timeline())
                + " of safekeeper "
                + peer.safekeeperId()
                + " not learned: it was deleted here");
        return null;
      }
      if (!WalFormat.isValidSegmentSize(id.segmentSize()) || !id.startLsn().isValid()) {
        refuse(
            peer,
            "timeline "
                + key(id.tenant(), id.timeline())
                + " of safekeeper "
                + peer.safekeeperId()
                + " not learned: "
                + id.describe()
                + " is not a valid identity");
        return null;
      }
      t = createLocked(id, peer.lagLimits());
      log.info(
          "safekeeper {}: learned timeline {} from safekeeper {} ({})",
          config.id(),
          key(id.tenant(), id.timeline()),
          peer.safekeeperId(),
          id.describe());
      return t;
    }
  }

  /** Logs why {@code peer}'s status of a timeline is not taken, once while the reason lasts. */
  private void refuse(TimelineStatus peer, String why) {
    Identity id = peer.identity();
    String line = "safekeeper " + config.id() + ": " + why;
    if (!line.equals(
        refused.put(peer.safekeeperId() + " " + key(id.tenant(), id.timeline()), line))) {
      log.warn(line);
    }
  }

  /** Call with the {@code timelines} lock held. */
  private void checkNew(Identity identity) {
    if (closed) {
      throw new SafekeeperException(Kind.CLOSED, "safekeeper " + config.id() + " is closed");
    }
    if (tombstones.isDeleted(identity.tenant(), identity.timeline())) {
      throw deleted(identity.tenant(), identity.timeline());
    }
    if (timelines.containsKey(key(identity.tenant(), identity.timeline()))) {
      throw new SafekeeperException(
          Kind.ALREADY_EXISTS,
          "timeline " + identity.tenant() + "/" + identity.timeline() + " exists already");
    }
  }

  /**
   * The one way a timeline comes to be: its directory and control file written durably (temporary
   * file, fsync, rename, fsync of the directory), then opened and registered. Call with the {@code
   * timelines} lock held, once it is known that the timeline is not here.
   */
  private SafekeeperTimeline createLocked(Identity identity, LagLimits limits) throws IOException {
    Path dir =
        dataDir.resolve(identity.tenant().toString()).resolve(identity.timeline().toString());
    SafekeeperTimeline t = SafekeeperTimeline.create(dir, identity, limits, config, fetcher, disk);
    register(t);
    return t;
  }

  private void register(SafekeeperTimeline t) {
    Identity id = t.identity();
    timelines.put(key(id.tenant(), id.timeline()), t);
    Tags tags =
        Tags.of("tenant_id", id.tenant().toString(), "timeline_id", id.timeline().toString());
    Gauge.builder("safekeeper_flush_lsn", t, x -> (double) x.status().flushLsn().value())
        .tags(tags)
        .description("End of the last durable complete record")
        .register(meters);
    Gauge.builder("safekeeper_commit_lsn", t, x -> (double) x.status().commitLsn().value())
        .tags(tags)
        .description("Highest LSN known to be on a quorum")
        .register(meters);
    Gauge.builder(
            "safekeeper_ack_held_back_bytes",
            t,
            x -> {
              TimelineStatus s = x.status();
              return (double) s.flushLsn().minus(s.ackLsn());
            })
        .tags(tags)
        .description("WAL flushed but not acknowledged because the pageserver lags")
        .register(meters);
    Gauge.builder("safekeeper_oldest_lsn", t, x -> (double) x.oldestLsn().value())
        .tags(tags)
        .description("Oldest LSN held: retention removed the WAL below it")
        .register(meters);
    Gauge.builder("safekeeper_wal_removed_bytes", t, x -> (double) x.status().removedBytes())
        .tags(tags)
        .description("Bytes of WAL segment files retention removed")
        .register(meters);
    Gauge.builder("safekeeper_backup_lsn", t, x -> (double) x.backupLsn().value())
        .tags(tags)
        .description("End of the WAL offloaded to remote storage (ADR 0025)")
        .register(meters);
    Gauge.builder("safekeeper_term", t, x -> (double) x.status().promisedTerm())
        .tags(tags)
        .description("The term this safekeeper promised")
        .register(meters);
  }

  /** The timeline, or NOT_FOUND (DELETED if it was deleted here). */
  public SafekeeperTimeline timeline(TenantId tenant, TimelineId timeline) {
    return find(tenant, timeline)
        .orElseThrow(
            () ->
                tombstones.isDeleted(tenant, timeline)
                    ? deleted(tenant, timeline)
                    : new SafekeeperException(
                        Kind.NOT_FOUND, "timeline " + tenant + "/" + timeline + " is not here"));
  }

  private SafekeeperException deleted(TenantId tenant, TimelineId timeline) {
    return new SafekeeperException(
        Kind.DELETED,
        "timeline "
            + tenant
            + "/"
            + timeline
            + " was deleted on safekeeper "
            + config.id()
            + " (a deleted timeline's id is never used again)");
  }

  /** Whether the timeline was deleted here (its tombstone exists). */
  public boolean isDeleted(TenantId tenant, TimelineId timeline) {
    return tombstones.isDeleted(tenant, timeline);
  }

  /**
   * Deletes a timeline: its tombstone first (durable), so that from then on nothing creates it
   * again (gossip, the control plane) and connections naming it are refused; then it stops pulling
   * from its compute and closes, and its WAL and control file are deleted. A crash after the
   * tombstone finishes the deletion at the next start.
   *
   * @return true if deleted now, false if it had been deleted before (deleting is idempotent)
   * @throws SafekeeperException NOT_FOUND if it was never here
   */
  public boolean delete(TenantId tenant, TimelineId timeline) throws IOException {
    SafekeeperTimeline t;
    synchronized (timelines) {
      t = timelines.get(key(tenant, timeline));
      if (t == null) {
        if (tombstones.isDeleted(tenant, timeline)) {
          return false;
        }
        throw new SafekeeperException(
            Kind.NOT_FOUND, "timeline " + tenant + "/" + timeline + " is not here");
      }
      tombstones.add(tenant, timeline);
      timelines.remove(key(tenant, timeline));
    }
    try {
      t.close();
    } catch (IOException | RuntimeException e) {
      log.warn("{}: close before deletion failed (deleting it anyway): {}", t, e.getMessage());
    }
    Tags tags = Tags.of("tenant_id", tenant.toString(), "timeline_id", timeline.toString());
    meters.find("safekeeper_flush_lsn").tags(tags).meters().forEach(meters::remove);
    meters.find("safekeeper_commit_lsn").tags(tags).meters().forEach(meters::remove);
    meters.find("safekeeper_ack_held_back_bytes").tags(tags).meters().forEach(meters::remove);
    for (String name :
        List.of(
            "safekeeper_term",
            "safekeeper_oldest_lsn",
            "safekeeper_wal_removed_bytes",
            "safekeeper_backup_lsn")) {
      meters.find(name).tags(tags).meters().forEach(meters::remove);
    }
    Tombstones.deleteTree(t.dir());
    log.info("safekeeper {}: deleted timeline {}/{}", config.id(), tenant, timeline);
    return true;
  }

  public Optional<SafekeeperTimeline> find(TenantId tenant, TimelineId timeline) {
    return Optional.ofNullable(timelines.get(key(tenant, timeline)));
  }

  /** Every timeline, by tenant then timeline id. */
  public List<SafekeeperTimeline> timelines() {
    List<SafekeeperTimeline> l = new ArrayList<>(timelines.values());
    l.sort(
        Comparator.comparing((SafekeeperTimeline t) -> t.identity().tenant().toString())
            .thenComparing(t -> t.identity().timeline().toString()));
    return l;
  }

  private static String key(TenantId tenant, TimelineId timeline) {
    return tenant + "/" + timeline;
  }

  @Override
  public void close() {
    synchronized (timelines) {
      closed = true;
    }
    boolean held = false;
    try {
      held = ticking.tryLock(CLOSE_WAIT.toMillis(), TimeUnit.MILLISECONDS);
      if (!held) {
        log.warn(
            "safekeeper {}: an upkeep tick still runs after {}; closing", config.id(), CLOSE_WAIT);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    try {
      upkeepTask.dispose();
      upkeep.dispose();
    } finally {
      if (held) {
        ticking.unlock();
      }
    }
    for (SafekeeperTimeline t : timelines.values()) {
      try {
        t.close();
      } catch (IOException | RuntimeException e) {
        log.warn("{}: close failed: {}", t, e.getMessage());
      }
    }
    timelines.clear();
  }
}
