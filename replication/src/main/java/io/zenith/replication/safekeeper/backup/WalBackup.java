package io.zenith.replication.safekeeper.backup;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.zenith.replication.offload.RemoteWal;
import io.zenith.replication.offload.WalSegmentObject;
import io.zenith.replication.safekeeper.Safekeeper;
import io.zenith.replication.safekeeper.SafekeeperTimeline;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageException;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * WAL offload (ADR 0025): one safekeeper per timeline uploads its completed, committed WAL segments
 * to remote storage ({@link RemoteWal}, {@link WalSegmentObject}) and records the end of what is
 * there as the timeline's {@code backup_lsn}, durably ({@link SafekeeperTimeline#recordBackupLsn});
 * gossip carries it to the peers, whose retention then follows it.
 *
 * <p><b>Who uploads.</b> Among the timeline's live members (this safekeeper, and each peer whose
 * status of the timeline arrived within {@code takeoverAfter}), the one with the highest rendezvous
 * score of (timeline id, safekeeper id) ({@link #uploader}): every member computes the same choice
 * from the same view, the choice moves only when the chosen member goes quiet or comes back, and
 * another member takes over at most {@code takeoverAfter} + one {@code interval} after the last
 * status of the uploader arrived. While views differ (a partition, a member coming back) two may
 * upload the same segment: the objects are identical (the WAL below the commit LSN is the same on
 * every member), so a repeated put is harmless.
 *
 * <p><b>What.</b> Segment n goes up once it is complete and committed ((n + 1) × segment size ≤
 * min(commit LSN, flushed record end)), in order, from the segment holding {@code backup_lsn} (or
 * the timeline's start); {@code backup_lsn} becomes the segment's end after the put returned.
 *
 * <p><b>Never in the WAL's way.</b> One thread of its own (rounds every {@code interval}, ticks
 * during a long round dropped); it reads segments with the log's ordinary reads and takes the
 * timeline's lock only to write the control file. A failed upload is retried with a backoff per
 * timeline ({@code backoffMin} doubling to {@code backoffMax}); logs are rate-limited to one line
 * per {@link #LOG_EVERY} per timeline, with the count of lines left out, and carry the timeline's
 * ids. A storage that is down stops nothing but {@code backup_lsn}: commits go on, and retention
 * keeps the WAL above it.
 *
 * <p>Thread-safety: thread-safe; {@link #close} stops the rounds (an upload under way is
 * cancelled).
 */
public final class WalBackup implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(WalBackup.class);

  /** At most one failure line per timeline this often (the rest are counted). */
  static final Duration LOG_EVERY = Duration.ofSeconds(30);

  /** Segments one timeline uploads per round before the next timeline's turn. */
  private static final int SEGMENTS_PER_ROUND = 4;

  /**
   * The uploader's settings.
   *
   * @param interval how often each timeline is looked at
   * @param takeoverAfter how long a member may stay silent before another takes its uploads over
   * @param callTimeout bound of one put (the storage's own retries included)
   * @param backoffMin first wait after a failure
   * @param backoffMax longest wait between attempts
   */
  public record Settings(
      Duration interval,
      Duration takeoverAfter,
      Duration callTimeout,
      Duration backoffMin,
      Duration backoffMax) {
    public static final Settings DEFAULTS =
        new Settings(
            Duration.ofSeconds(1),
            Duration.ofSeconds(5),
            Duration.ofMinutes(2),
            Duration.ofMillis(200),
            Duration.ofSeconds(30));
  }

  private final Safekeeper sk;
  private final RemoteStorage storage;
  private final Settings settings;
  private final Map<String, TimelineBackup> states = new ConcurrentHashMap<>();
  private final Counter uploadedSegments;
  private final Counter uploadedBytes;
  private final Counter failures;
  private final Scheduler thread = Schedulers.newBoundedElastic(1, 16, "sk-wal-backup");
  private final Disposable loop;
  private final long startedNanos = System.nanoTime();

  public WalBackup(Safekeeper sk, RemoteStorage storage, MeterRegistry meters, Settings settings) {
    this.sk = sk;
    this.storage = storage;
    this.settings = settings;
    this.uploadedSegments =
        Counter.builder("safekeeper_wal_backup_segments")
            .description("WAL segments this safekeeper uploaded to remote storage")
            .register(meters);
    this.uploadedBytes =
        Counter.builder("safekeeper_wal_backup_bytes")
            .description("Compressed bytes of WAL segments this safekeeper uploaded")
            .register(meters);
    this.failures =
        Counter.builder("safekeeper_wal_backup_failures")
            .description("Failed attempts to upload a WAL segment (retried with backoff)")
            .register(meters);
    this.loop =
        Flux.interval(settings.interval(), thread).onBackpressureDrop().subscribe(i -> round());
    log.info(
        "safekeeper {}: offloading WAL to {} (takeover after {} ms of silence)",
        sk.config().id(),
        storage.describe(),
        settings.takeoverAfter().toMillis());
  }

  /**
   * The member that uploads {@code timeline}'s WAL among {@code live} (not empty): the highest
   * rendezvous score, so that a member's departure moves only its own timelines.
   */
  public static int uploader(TimelineId timeline, List<Integer> live) {
    long h = timeline.toString().hashCode() * 0x9E3779B97F4A7C15L;
    int best = live.getFirst();
    long bestScore = Long.MIN_VALUE;
    for (int id : live) {
      long score = mix(h ^ (id * 0xC2B2AE3D27D4EB4FL));
      if (score > bestScore || score == bestScore && id < best) {
        best = id;
        bestScore = score;
      }
    }
    return best;
  }

  /** SplitMix64's finalizer: a good spread of nearby inputs. */
  private static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  /**
   * Whether this safekeeper uploads {@code t}'s WAL now. Until every member was heard from, a
   * safekeeper that started less than {@code takeoverAfter} ago does not upload: peers it has not
   * heard from yet may be alive (each member would otherwise think itself alone at start).
   */
  public boolean isUploader(SafekeeperTimeline t) {
    List<Integer> live = t.liveMembers(settings.takeoverAfter());
    if (live.size() < sk.config().members()
        && System.nanoTime() - startedNanos < settings.takeoverAfter().toNanos()) {
      return false;
    }
    return uploader(t.identity().timeline(), live) == sk.config().id();
  }

  /** The last upload failure of {@code t} since its last success, if any (for status and tests). */
  public @Nullable String lastFailure(SafekeeperTimeline t) {
    TimelineBackup b = states.get(t.toString());
    return b == null ? null : b.failure;
  }

  @SuppressWarnings("try")
  private void round() {
    for (SafekeeperTimeline t : sk.timelines()) {
      Identity id = t.identity();
      try (LogContext.Scope s = LogContext.scope(id.tenant(), id.timeline())) {
        step(t, states.computeIfAbsent(t.toString(), k -> new TimelineBackup()));
      } catch (RuntimeException e) {
        log.warn("{}: WAL offload round failed: {}", t, e.toString());
      }
    }
    states.keySet().removeIf(k -> sk.timelines().stream().noneMatch(t -> t.toString().equals(k)));
  }

  private void step(SafekeeperTimeline t, TimelineBackup b) {
    boolean mine = isUploader(t);
    if (mine != b.uploading) {
      b.uploading = mine;
      log.info(
          "{}: {} its WAL to remote storage (live members {})",
          t,
          mine ? "uploads" : "no longer uploads",
          t.liveMembers(settings.takeoverAfter()));
    }
    if (!mine || System.nanoTime() < b.nextAttemptNanos) {
      return;
    }
    try {
      int uploaded = 0;
      while (uploaded < SEGMENTS_PER_ROUND && uploadNext(t)) {
        uploaded++;
      }
      if (b.failure != null) {
        log.info("{}: WAL offload works again ({} failures left out of the log)", t, b.suppressed);
      }
      b.succeeded();
    } catch (IOException | RuntimeException e) {
      failures.increment();
      b.failed(t, e, settings);
    }
  }

  /** Uploads the next segment if it is complete and committed; returns whether it did. */
  private boolean uploadNext(SafekeeperTimeline t) throws IOException {
    Identity id = t.identity();
    int seg = id.segmentSize();
    long next = Lsn.max(t.backupLsn(), id.startLsn()).value() / seg;
    Lsn end = Lsn.of((next + 1) * seg);
    if (end.isAfter(t.servableLsn())) {
      return false;
    }
    Lsn oldest = t.oldestLsn();
    if (oldest.value() / seg > next) {
      // Retention removed these before offload was on: nothing holds them to upload any more.
      Lsn from = Lsn.of(oldest.value() / seg * seg);
      log.warn(
          "{}: WAL below {} was removed before it was offloaded; remote WAL starts there", t, from);
      t.recordBackupLsn(from);
      return true;
    }
    byte[] object = WalSegmentObject.encode(Lsn.of(next * seg), t.readSegment(next));
    RemoteKey key = RemoteWal.segmentKey(id.tenant(), id.timeline(), next, seg);
    storage.put(key, object).timeout(settings.callTimeout()).block();
    t.recordBackupLsn(end);
    uploadedSegments.increment();
    uploadedBytes.increment(object.length);
    log.debug("{}: uploaded {} ({} bytes); backup_lsn {}", t, key, object.length, end);
    return true;
  }

  /** One timeline's retry state; used by the one backup thread only. */
  private static final class TimelineBackup {
    boolean uploading;
    long nextAttemptNanos;
    long backoffNanos;
    long loggedAtNanos;
    int suppressed;
    volatile @Nullable String failure;

    void succeeded() {
      backoffNanos = 0;
      failure = null;
      suppressed = 0;
    }

    void failed(SafekeeperTimeline t, Exception e, Settings s) {
      boolean permanent =
          e instanceof RemoteStorageException r
              && r.kind() == RemoteStorageException.Kind.PERMANENT;
      backoffNanos =
          permanent
              ? s.backoffMax().toNanos()
              : Math.min(
                  s.backoffMax().toNanos(),
                  backoffNanos == 0 ? s.backoffMin().toNanos() : backoffNanos * 2);
      long now = System.nanoTime();
      nextAttemptNanos = now + backoffNanos;
      failure = String.valueOf(e.getMessage());
      if (loggedAtNanos == 0 || now - loggedAtNanos >= LOG_EVERY.toNanos()) {
        String line = "{}: offloading WAL failed ({} more left out), retrying in {} ms: {}";
        Object[] args = {t, suppressed, backoffNanos / 1_000_000, failure};
        if (permanent) {
          log.error(line, args);
        } else {
          log.warn(line, args);
        }
        loggedAtNanos = now;
        suppressed = 0;
      } else {
        suppressed++;
      }
    }
  }

  @Override
  public void close() {
    loop.dispose();
    thread.dispose();
  }
}
