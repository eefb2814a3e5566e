package io.zenith.gateway.pageserver;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.zenith.ingest.IngestPipeline;
import io.zenith.ingest.IngestStart;
import io.zenith.ingest.WalIngest;
import io.zenith.layer.Timeline;
import io.zenith.page.PageReconstructor;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.ReplicationClient;
import io.zenith.replication.client.ReplicationClient.Progress;
import io.zenith.replication.client.ReplicationOptions;
import io.zenith.replication.client.StreamMetrics;
import io.zenith.replication.client.WalChunk;
import io.zenith.replication.client.WalSenderFollower;
import io.zenith.replication.offload.RemoteWal;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.safekeeper.serving.WalService;
import io.zenith.wal.FsyncFailedException;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.remote.RemoteStorage;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;
import reactor.util.retry.Retry;

/**
 * Streams one timeline's WAL into the layer store: {@code START_REPLICATION} at the timeline's last
 * record, chunks through the {@link IngestPipeline}, standby status updates with its progress.
 *
 * <ul>
 *   <li><b>From a compute</b> (its walsender): reports write = ingested, flush = apply =
 *       disk-consistent LSN, so a compute with the pageserver as a {@code remote_write} synchronous
 *       standby commits once its commit record is ingested.
 *   <li><b>From safekeepers</b> (their libpq WAL service, ADR 0005): asks each for IDENTIFY_SYSTEM
 *       (its position is its commit LSN) and streams committed WAL from the one with the highest;
 *       the startup options name the timeline. Reports write / flush / apply = ingested /
 *       disk-consistent LSN / durable position (DESIGN.md §4, ADR 0007: disk-consistent until
 *       remote storage exists), which the safekeepers' lag limits hold the compute against and
 *       their retention follows. Every {@link #SWITCH_CHECK} it asks the others again and switches
 *       when the current one's commit LSN lags the best other one's by more than {@link
 *       #SWITCH_LAG}, or nothing arrived for {@link #STALL} while it has nothing more and another
 *       has. Nothing beyond a commit LSN is ever served, so nothing ingested is truncated later.
 * </ul>
 *
 * <p>Connecting, IDENTIFY_SYSTEM, the system id check and the slot are {@link WalSenderFollower}'s
 * (shared with the safekeeper's intake from a compute); choosing the source, switching, stall
 * detection and reconnecting are this class's.
 *
 * <p>Reconnects with backoff (0.5 s doubling to 10 s) after errors and after the source ends the
 * stream, until {@link #stop()}; a switch reconnects the same way, and so does a stalled stream
 * (whatever the source: {@link #stallReason}), to the same source when it is the only one, with a
 * WARN line saying why. Thread-safe.
 */
final class WalReceiver {
  private static final Logger log = LoggerFactory.getLogger(WalReceiver.class);

  enum State {
    CONNECTING,
    STREAMING,
    STOPPED,
    FAILED
  }

  /** How often a safekeeper stream checks whether another safekeeper is better. */
  static final Duration SWITCH_CHECK = Duration.ofSeconds(2);

  /** How far the current safekeeper's commit LSN may lag the best other one's. */
  static final long SWITCH_LAG = 16L << 20;

  /** How long a safekeeper stream may bring nothing while another safekeeper is ahead. */
  static final Duration STALL = Duration.ofSeconds(10);

  /** How often the durable position is reported again with remote storage (ADR 0025). */
  static final Duration DURABLE_REFRESH = Duration.ofSeconds(5);

  /** How long asking one safekeeper for IDENTIFY_SYSTEM may take. */
  private static final Duration PROBE_TIMEOUT = Duration.ofSeconds(3);

  private final Timeline timeline;
  private final ApiModel.WalSource source;

  /** The endpoint streamed from or tried last (the compute's for a compute source). */
  private volatile Endpoint endpoint;

  private volatile Lsn received = Lsn.INVALID;
  private volatile long receivedAtNanos = System.nanoTime();
  private final PageReconstructor pages;
  private final MeterRegistry meters;
  private final AtomicReference<State> state = new AtomicReference<>(State.CONNECTING);
  private volatile String lastError;
  private volatile Disposable running;
  private volatile @Nullable Gauge lag;
  private volatile IngestPipeline current;
  private volatile ReplicationClient client;
  private final reactor.core.publisher.Sinks.Empty<Void> terminated =
      reactor.core.publisher.Sinks.empty();

  /** The safekeeper a switch rule just left (to be avoided by the next choice), or null. */
  private volatile @Nullable Endpoint left;

  /** One IDENTIFY_SYSTEM connection per safekeeper, opened on the first probe. */
  private final Map<Endpoint, Mono<ReplicationClient>> probes = new ConcurrentHashMap<>();

  /** What the ingest pipeline runs after its flushes. */
  private final IngestPipeline.Compactor compactor;

  /** The pageserver's {@code safekeeperdata} token for safekeepers (ADR 0016), or null. */
  private final Supplier<@Nullable String> token;

  /**
   * This pageserver's remote storage, null without: its durable position is then remote, and WAL
   * the safekeepers no longer hold is read from there (ADR 0025).
   */
  private final Supplier<@Nullable RemoteStorage> remoteStorage;

  /** The last stream failed because the safekeeper no longer holds its start (58P01). */
  private volatile boolean startRemoved;

  WalReceiver(
      Timeline timeline,
      ApiModel.WalSource source,
      PageReconstructor pages,
      MeterRegistry meters,
      IngestPipeline.Compactor compactor,
      Supplier<@Nullable String> token,
      Supplier<@Nullable PageserverRemote> remote) {
    this.token = token;
    this.remoteStorage = () -> PageserverRemote.storage(remote.get());
    this.timeline = timeline;
    this.compactor = compactor;
    this.source = source;
    this.pages = pages;
    this.meters = meters;
    this.endpoint =
        source.usesSafekeepers()
            ? Endpoint.of(source.safekeepers().getFirst())
            : new Endpoint(null, source.host(), source.port());
  }

  /**
   * A walsender to connect to.
   *
   * @param safekeeperId null for a compute
   */
  record Endpoint(@Nullable Integer safekeeperId, String host, int port) {
    static Endpoint of(ApiModel.SafekeeperEndpoint e) {
      return new Endpoint(e.id(), e.host(), e.port());
    }

    @Override
    public String toString() {
      return (safekeeperId == null ? "" : "safekeeper " + safekeeperId + " at ")
          + host
          + ":"
          + port;
    }
  }

  ApiModel.WalSource source() {
    return source;
  }

  ApiModel.WalReceiverInfo info() {
    Endpoint e = endpoint;
    return new ApiModel.WalReceiverInfo(
        e.host(),
        e.port(),
        e.safekeeperId(),
        state.get().name().toLowerCase(java.util.Locale.ROOT),
        lastError);
  }

  /** This timeline's ids in the log lines written on shared (network, retry) threads. */
  private LogContext.Scope logContext() {
    return LogContext.scope(timeline.tenant(), timeline.id());
  }

  @SuppressWarnings("try")
  void start() {
    // WAL received but not yet ingested: the ingest stage's queue and the WAL in flight to it.
    lag =
        Gauge.builder(
                "zenith.ingest.lag_bytes",
                this,
                r -> Math.max(0, r.received.minus(r.timeline.lastRecordLsn())))
            .tags("tenant", timeline.tenant().toString(), "timeline", timeline.id().toString())
            .baseUnit("bytes")
            .description("WAL received from the source but not yet ingested")
            .register(meters);
    running =
        Mono.defer(this::streamOnce)
            .repeat()
            .retryWhen(
                Retry.backoff(Long.MAX_VALUE, Duration.ofMillis(500))
                    .maxBackoff(Duration.ofSeconds(10))
                    // a failed fsync is never retried (Fsync): the receiver ends
                    .filter(e -> !(e instanceof FsyncFailedException))
                    .doBeforeRetry(
                        s -> {
                          state.set(State.FAILED);
                          lastError = s.failure().getMessage();
                          startRemoved = isWalRemoved(s.failure());
                          try (LogContext.Scope c = logContext()) {
                            log.warn(
                                "WAL receiver of {} from {} failed, retrying: {}",
                                timeline,
                                endpoint,
                                lastError);
                          }
                        }))
            .doFinally(s -> terminated.tryEmitEmpty())
            .subscribe();
  }

  /** One connection: choose, connect, identify, stream until the source ends or fails. */
  private Mono<Void> streamOnce() {
    state.set(State.CONNECTING);
    Mono<Endpoint> chosen = source.usesSafekeepers() ? bestSafekeeper() : Mono.just(endpoint);
    return chosen.flatMap(
        e -> {
          endpoint = e;
          WalSenderFollower follower =
              new WalSenderFollower(
                  connectOptions(e, Duration.ofSeconds(10)),
                  ReplicationOptions.DEFAULT,
                  source.slot(),
                  id -> checkSystem(e, id.systemId()));
          return follower.follow(
              new WalSenderFollower.Session<Void>() {
                @Override
                public void connected(ReplicationClient c) {
                  client = c;
                }

                @Override
                public Mono<Void> stream(WalSenderFollower.Connection c) {
                  return WalReceiver.this.stream(c, e);
                }

                @Override
                public void released(ReplicationClient c) {
                  client = null;
                }
              });
        });
  }

  private PgConnectOptions connectOptions(Endpoint e, Duration timeout) {
    PgConnectOptions.Builder b =
        PgConnectOptions.builder()
            .host(e.host())
            .port(e.port())
            .user(source.user() == null ? "postgres" : source.user())
            .database("postgres")
            // Safekeepers count only the status updates of this name as pageserver feedback.
            .applicationName(
                e.safekeeperId() != null || source.applicationName() == null
                    ? WalService.PAGESERVER_APPLICATION
                    : source.applicationName())
            .replication(true)
            .connectTimeout(timeout);
    if (e.safekeeperId() != null) {
      b.parameter("options", WalService.startupOptions(timeline.tenant(), timeline.id()));
      b.password(token.get());
    }
    return b.build();
  }

  private void checkSystem(Endpoint e, long systemId) {
    long expected = timeline.metadata().systemId();
    if (systemId != expected) {
      throw new IllegalStateException(
          "the server at "
              + e.host()
              + ":"
              + e.port()
              + " is database system "
              + Long.toUnsignedString(systemId)
              + ", timeline "
              + timeline
              + " belongs to "
              + Long.toUnsignedString(expected));
    }
  }

  /** What one safekeeper said: its commit LSN, or why it did not answer. */
  record Probe(Endpoint endpoint, @Nullable Lsn commitLsn, @Nullable String error) {}

  /**
   * Asks the safekeepers {@code which} accepts (in parallel, each bounded) for IDENTIFY_SYSTEM,
   * over one connection per safekeeper kept between probes: a probe every {@link #SWITCH_CHECK}
   * would otherwise be a session (and a log line) on every safekeeper every two seconds. A
   * connection that fails or times out is closed and opened again at the next probe.
   */
  private Mono<List<Probe>> probeAll(Predicate<Endpoint> which) {
    return Flux.fromIterable(source.safekeepers())
        .map(Endpoint::of)
        .filter(which)
        .flatMap(
            e ->
                probeConnection(e)
                    .flatMap(ReplicationClient::identifySystem)
                    .timeout(PROBE_TIMEOUT)
                    .doOnError(t -> dropProbeConnection(e))
                    .map(
                        id -> {
                          checkSystem(e, id.systemId());
                          return new Probe(e, id.xlogPos(), null);
                        })
                    .onErrorResume(t -> Mono.just(new Probe(e, null, e + ": " + t.getMessage()))))
        .collectList();
  }

  private Mono<ReplicationClient> probeConnection(Endpoint e) {
    Mono<ReplicationClient> m = probes.computeIfAbsent(e, this::connectProbe);
    return m.flatMap(
        c -> {
          if (!c.isClosed()) {
            return Mono.just(c);
          }
          // The safekeeper went away since the last probe (a restart): connect again now.
          probes.remove(e, m);
          return Mono.defer(() -> probes.computeIfAbsent(e, this::connectProbe));
        });
  }

  private Mono<ReplicationClient> connectProbe(Endpoint e) {
    // cache() keeps a failure too: dropping a failed one must not connect again to close it.
    return ReplicationClient.connect(connectOptions(e, PROBE_TIMEOUT)).cache();
  }

  private void dropProbeConnection(Endpoint e) {
    Mono<ReplicationClient> m = probes.remove(e);
    if (m != null) {
      // Closes the connection if one was made; one still being made is closed as it arrives.
      m.flatMap(c -> c.close()).onErrorComplete().subscribe();
    }
  }

  /** The safekeeper with the highest commit LSN; an error naming each failure if none answered. */
  private Mono<Endpoint> bestSafekeeper() {
    Endpoint avoid = left;
    left = null;
    if (avoid == null) {
      return bestOf(probeAll(e -> true));
    }
    // Just left for another: choosing among the others spares waiting out its probe's timeout
    // (a stalled safekeeper does not answer); all again if none of them answers.
    return bestOf(probeAll(e -> !e.equals(avoid))).onErrorResume(t -> bestOf(probeAll(e -> true)));
  }

  private static Mono<Endpoint> bestOf(Mono<List<Probe>> probed) {
    return probed.flatMap(
        probes -> {
          Optional<Probe> best =
              probes.stream()
                  .filter(p -> p.commitLsn() != null)
                  .max(Comparator.comparing(Probe::commitLsn));
          if (best.isEmpty()) {
            return Mono.error(
                new IllegalStateException(
                    "no safekeeper answered: "
                        + String.join("; ", probes.stream().map(Probe::error).toList())));
          }
          return Mono.just(best.get().endpoint());
        });
  }

  /**
   * Completes (with the reason) once the stream from {@code current} should be left: checked every
   * {@link #SWITCH_CHECK}. A stalled stream ({@link #stallReason}) is left whatever the source; for
   * a safekeeper among several, also when another is better ({@link #switchReason}).
   */
  private Mono<String> leaveReason(Endpoint current, ReplicationClient client) {
    boolean others = current.safekeeperId() != null && source.safekeepers().size() > 1;
    return Flux.interval(SWITCH_CHECK, SWITCH_CHECK)
        .onBackpressureDrop()
        .concatMap(
            tick -> {
              Duration idle = Duration.ofNanos(System.nanoTime() - receivedAtNanos);
              StreamMetrics m = client.metrics();
              String stalled =
                  WalSourceChoice.stallReason(
                      current, received, Lsn.of(m.serverWalEnd()), m.waiting(), idle);
              if (!stalled.isEmpty() || !others) {
                return Mono.just(stalled);
              }
              return probeAll(e -> true)
                  .map(probes -> WalSourceChoice.switchReason(current, probes, received, idle));
            },
            0)
        .filter(r -> !r.isEmpty())
        .next();
  }

  /**
   * Streams from a connection, its start read off the event loop: pg_control and the checkpoint may
   * need a layer download (ADR 0027), which blocks (on the event loop it failed every retry).
   */
  private Mono<Void> stream(WalSenderFollower.Connection connection, Endpoint e) {
    return Mono.fromCallable(() -> IngestStart.read(timeline, pages::page))
        .subscribeOn(Schedulers.boundedElastic())
        .flatMap(from -> stream(connection, e, from));
  }

  @SuppressWarnings("try")
  private Mono<Void> stream(WalSenderFollower.Connection connection, Endpoint e, IngestStart from) {
    ReplicationClient client = connection.client();
    Lsn start = from.lsn();
    int segmentSize = from.segmentSize();
    WalIngest ingest = from.ingest();
    IngestPipeline pipeline =
        new IngestPipeline(timeline, ingest, IngestPipeline.Options.DEFAULT, meters, compactor);
    current = pipeline;
    try (LogContext.Scope c = logContext()) {
      log.info("streaming WAL of {} from {} at {}", timeline, e, start);
    }
    received = start;
    receivedAtNanos = System.nanoTime();
    boolean safekeeper = e.safekeeperId() != null;
    // Only disk_consistent_lsn is durable here: reporting the start as flushed would let the
    // source drop WAL this pageserver must re-read after a crash. Apply is the durable position
    // (ADR 0007), which the safekeepers' retention follows.
    Lsn durable = timeline.diskConsistentLsn();
    Progress initial = new Progress(start, durable, durablePosition(durable));
    // A switch ends the WAL (takeUntilOther passes demand through unchanged), then fails the
    // stream so that the receiver reconnects to the best safekeeper.
    AtomicReference<String> switchReason = new AtomicReference<>();
    RemoteStorage remote = remoteStorage.get();
    Flux<ByteBuffer> offloaded =
        safekeeper && startRemoved && remote != null
            ? offloaded(remote, start, segmentSize)
            : Flux.empty();
    Flux<ByteBuffer> wal =
        offloaded
            .concatWith(
                Flux.defer(
                    () ->
                        connection
                            .startReplication(received, safekeeper ? 0 : 1, initial)
                            .doOnNext(ch -> received = ch.end())
                            .map(WalChunk::data)))
            .doOnSubscribe(s -> state.set(State.STREAMING))
            .doOnNext(ch -> receivedAtNanos = System.nanoTime())
            .takeUntilOther(
                leaveReason(e, client)
                    .doOnNext(
                        r -> {
                          // The next choice avoids this one (all again if no other answers).
                          left = safekeeper && source.safekeepers().size() > 1 ? e : null;
                          switchReason.set(r);
                        }))
            .concatWith(
                Mono.defer(
                    () ->
                        switchReason.get() == null
                            ? Mono.empty()
                            : Mono.error(
                                new IllegalStateException(
                                    "leaving " + e + ": " + switchReason.get()))));
    // The pipeline ends on one of its own threads, which close() waits for: close it elsewhere.
    AtomicReference<Disposable> refresh = new AtomicReference<>(() -> {});
    return Mono.usingWhen(
        Mono.just(pipeline),
        p ->
            p.run(
                    wal,
                    segmentSize,
                    timeline.metadata().systemId(),
                    (written, flushed) ->
                        client.reportProgress(written, flushed, durablePosition(flushed)))
                // Uploads move the durable position after the flush that reported it: without
                // new WAL no flush would report it again, and the safekeepers would keep WAL.
                .doOnSubscribe(
                    s -> {
                      if (remote != null) {
                        refresh.set(
                            Flux.interval(DURABLE_REFRESH).subscribe(i -> reportDurable(client)));
                      }
                    })
                .doFinally(s -> refresh.get().dispose()),
        p ->
            Mono.fromRunnable(
                    () -> {
                      p.close();
                      current = null;
                    })
                .subscribeOn(Schedulers.boundedElastic()));
  }

  /** Reports the durable position alone (lower write and flush positions are ignored). */
  private void reportDurable(ReplicationClient client) {
    client.reportProgress(Lsn.INVALID, Lsn.INVALID, durablePosition(timeline.diskConsistentLsn()));
  }

  /**
   * The WAL from {@code start} that remote storage holds (ADR 0025), for a start the safekeepers no
   * longer hold; {@link #received} follows it, so the safekeeper's stream starts where it ends.
   */
  @SuppressWarnings("try")
  private Flux<ByteBuffer> offloaded(RemoteStorage remote, Lsn start, int segmentSize) {
    try (LogContext.Scope c = logContext()) {
      log.info(
          "{}: the safekeepers no longer hold {}: reading it from remote storage", timeline, start);
    }
    return RemoteWal.readOffloaded(
            remote, timeline.tenant(), timeline.id(), segmentSize, start, Duration.ofMinutes(2))
        .doOnNext(b -> received = received.plus(b.remaining()));
  }

  /** Whether {@code e} says the source no longer holds the WAL asked for (SQLSTATE 58P01). */
  private static boolean isWalRemoved(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof PgServerException p && "58P01".equals(p.sqlState())) {
        return true;
      }
    }
    return false;
  }

  /**
   * The pageserver's durable position, reported as {@code apply} (ADR 0007, 0025): the LSN below
   * which it never needs WAL again, even after losing its disk. Without remote storage that is the
   * disk-consistent LSN (it rebuilds from its own layer files); with remote storage it is the
   * remote-consistent LSN (the local disk is a cache), and the safekeepers' retention follows.
   */
  private Lsn durablePosition(Lsn diskConsistent) {
    return remoteStorage.get() != null
        ? Lsn.min(diskConsistent, timeline.remoteConsistentLsn())
        : diskConsistent;
  }

  /** Makes everything received durable; completes when it is (at once if not streaming). */
  Mono<Void> checkpoint() {
    IngestPipeline p = current;
    return p == null ? Mono.fromRunnable(timeline::checkpoint) : p.checkpoint();
  }

  /** The counters of the replication connection, while there is one. */
  Optional<StreamMetrics> streamMetrics() {
    ReplicationClient c = client;
    return c == null ? Optional.empty() : Optional.of(c.metrics());
  }

  /** Stops streaming; returns once no record is being ingested any more. */
  void stop() {
    Disposable d = running;
    if (d != null) {
      d.dispose();
      terminated.asMono().timeout(Duration.ofMinutes(1)).onErrorComplete().block();
    }
    for (Endpoint e : List.copyOf(probes.keySet())) {
      dropProbeConnection(e);
    }
    // A cancelled usingWhen does not wait for its cleanup: close the pipeline here too, so no
    // flush runs after the caller goes on to close the layer store.
    IngestPipeline p = current;
    if (p != null) {
      p.close();
    }
    state.set(State.STOPPED);
    Gauge g = lag;
    if (g != null) {
      meters.remove(g);
    }
  }
}
