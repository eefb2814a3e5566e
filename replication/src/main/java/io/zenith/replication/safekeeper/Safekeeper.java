package io.zenith.replication.safekeeper;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.zenith.replication.safekeeper.SafekeeperException.Kind;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
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
 * Thread-safe.
 */
public final class Safekeeper implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Safekeeper.class);

  private final SafekeeperConfig config;
  private final Path dataDir;
  private final WalFetcher fetcher;
  private final SegmentAllocator disk;
  private final MeterRegistry meters;
  private final Map<String, SafekeeperTimeline> timelines = new ConcurrentHashMap<>();

  /** May block (adoptions copy WAL and wait for intakes to stop): not a non-blocking thread. */
  private final Scheduler upkeep = Schedulers.newBoundedElastic(1, 16, "sk-upkeep");

  private final Disposable upkeepTask;

  private Safekeeper(
      SafekeeperConfig config,
      Path dataDir,
      WalFetcher fetcher,
      SegmentAllocator disk,
      MeterRegistry meters,
      Duration upkeepInterval) {
    this.config = config;
    this.dataDir = dataDir;
    this.fetcher = fetcher;
    this.disk = disk;
    this.meters = meters;
    this.upkeepTask =
        Flux.interval(upkeepInterval, upkeep)
            .onBackpressureDrop()
            .subscribe(i -> timelines.values().forEach(SafekeeperTimeline::maintain));
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
    Safekeeper sk = new Safekeeper(config, dataDir, fetcher, disk, meters, upkeepInterval);
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

  /** Creates a timeline whose WAL starts at {@code identity.startLsn()}. */
  public SafekeeperTimeline create(Identity identity, @Nullable LagLimits limits)
      throws IOException {
    String key = key(identity.tenant(), identity.timeline());
    synchronized (timelines) {
      if (timelines.containsKey(key)) {
        throw new SafekeeperException(
            Kind.ALREADY_EXISTS,
            "timeline " + identity.tenant() + "/" + identity.timeline() + " exists already");
      }
      Path dir =
          dataDir.resolve(identity.tenant().toString()).resolve(identity.timeline().toString());
      SafekeeperTimeline t =
          SafekeeperTimeline.create(
              dir,
              identity,
              limits == null ? config.defaultLagLimits() : limits,
              config,
              fetcher,
              disk);
      register(t);
      log.info("{}: created, WAL starts at {}", t, identity.startLsn());
      return t;
    }
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
    Gauge.builder("safekeeper_term", t, x -> (double) x.status().promisedTerm())
        .tags(tags)
        .description("The term this safekeeper promised")
        .register(meters);
  }

  /** The timeline, or NOT_FOUND. */
  public SafekeeperTimeline timeline(TenantId tenant, TimelineId timeline) {
    return find(tenant, timeline)
        .orElseThrow(
            () ->
                new SafekeeperException(
                    Kind.NOT_FOUND, "timeline " + tenant + "/" + timeline + " is not here"));
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
    upkeepTask.dispose();
    upkeep.dispose();
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
