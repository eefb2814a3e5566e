package io.zenith.gateway.pageserver;

import io.micrometer.core.instrument.MeterRegistry;
import io.zenith.ingest.IngestPipeline;
import io.zenith.ingest.WalIngest;
import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.PgControl;
import io.zenith.layer.Timeline;
import io.zenith.page.PageReconstructor;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.ReplicationClient;
import io.zenith.replication.client.StreamMetrics;
import io.zenith.replication.client.WalChunk;
import io.zenith.wal.Lsn;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;
import reactor.util.retry.Retry;

/**
 * Streams one timeline's WAL from a PostgreSQL walsender (the primary compute) into the layer
 * store: {@code START_REPLICATION} at the timeline's last record, chunks through the {@link
 * IngestPipeline}, standby status updates reporting write = ingested, flush = apply =
 * disk-consistent LSN (so a compute with the pageserver as a {@code remote_write} synchronous
 * standby commits once its commit record is ingested).
 *
 * <p>Reconnects with backoff (0.5 s doubling to 10 s) after errors and after the compute ends the
 * stream, until {@link #stop()}. Thread-safe.
 */
final class WalReceiver {
  private static final Logger log = LoggerFactory.getLogger(WalReceiver.class);

  enum State {
    CONNECTING,
    STREAMING,
    STOPPED,
    FAILED
  }

  private final Timeline timeline;
  private final ApiModel.WalSource source;
  private final PageReconstructor pages;
  private final MeterRegistry meters;
  private final AtomicReference<State> state = new AtomicReference<>(State.CONNECTING);
  private volatile String lastError;
  private volatile Disposable running;
  private volatile IngestPipeline current;
  private volatile ReplicationClient client;
  private final reactor.core.publisher.Sinks.Empty<Void> terminated =
      reactor.core.publisher.Sinks.empty();
  private volatile Duration flushDelay = Duration.ZERO;

  WalReceiver(
      Timeline timeline, ApiModel.WalSource source, PageReconstructor pages, MeterRegistry meters) {
    this.timeline = timeline;
    this.source = source;
    this.pages = pages;
    this.meters = meters;
  }

  ApiModel.WalSource source() {
    return source;
  }

  ApiModel.WalReceiverInfo info() {
    return new ApiModel.WalReceiverInfo(
        source.host(),
        source.port(),
        state.get().name().toLowerCase(java.util.Locale.ROOT),
        lastError);
  }

  void start() {
    running =
        Mono.defer(this::streamOnce)
            .repeat()
            .retryWhen(
                Retry.backoff(Long.MAX_VALUE, Duration.ofMillis(500))
                    .maxBackoff(Duration.ofSeconds(10))
                    .doBeforeRetry(
                        s -> {
                          state.set(State.FAILED);
                          lastError = s.failure().getMessage();
                          log.warn(
                              "WAL receiver of {} from {}:{} failed, retrying: {}",
                              timeline,
                              source.host(),
                              source.port(),
                              lastError);
                        }))
            .doFinally(s -> terminated.tryEmitEmpty())
            .subscribe();
  }

  /** One connection: connect, identify, stream until the source ends or fails. */
  private Mono<Void> streamOnce() {
    state.set(State.CONNECTING);
    PgConnectOptions opts =
        PgConnectOptions.builder()
            .host(source.host())
            .port(source.port())
            .user(source.user() == null ? "postgres" : source.user())
            .database("postgres")
            .applicationName(
                source.applicationName() == null ? "pageserver" : source.applicationName())
            .replication(true)
            .connectTimeout(Duration.ofSeconds(10))
            .build();
    return Mono.usingWhen(
        ReplicationClient.connect(opts).doOnNext(c -> this.client = c),
        client ->
            client
                .identifySystem()
                .flatMap(
                    id -> {
                      long expected = timeline.metadata().systemId();
                      if (id.systemId() != expected) {
                        return Mono.error(
                            new IllegalStateException(
                                "the server at "
                                    + source.host()
                                    + ":"
                                    + source.port()
                                    + " is database system "
                                    + Long.toUnsignedString(id.systemId())
                                    + ", timeline "
                                    + timeline
                                    + " belongs to "
                                    + Long.toUnsignedString(expected)));
                      }
                      Mono<?> slot =
                          source.slot() == null
                              ? Mono.empty()
                              : client.createPhysicalSlot(source.slot(), true);
                      return slot.then(Mono.defer(() -> stream(client)));
                    }),
        c -> {
          client = null;
          return c.close();
        });
  }

  private Mono<Void> stream(ReplicationClient client) {
    Lsn start = timeline.lastRecordLsn();
    byte[] control =
        Catalog.image(timeline, KeySpace.CONTROL_FILE, start)
            .orElseThrow(
                () -> new IllegalStateException("timeline " + timeline + " has no pg_control"));
    int segmentSize = PgControl.parse(control).walSegmentSize();
    WalIngest ingest = new WalIngest(timeline, pages::page);
    IngestPipeline pipeline =
        new IngestPipeline(timeline, ingest, IngestPipeline.Options.DEFAULT, meters);
    // Published before the delay is read: a concurrent setFlushDelayForTests reaches it either way.
    current = pipeline;
    pipeline.setFlushDelayForTests(flushDelay);
    log.info("streaming WAL of {} from {}:{} at {}", timeline, source.host(), source.port(), start);
    // The pipeline ends on one of its own threads, which close() waits for: close it elsewhere.
    return Mono.usingWhen(
        Mono.just(pipeline),
        p ->
            p.run(
                client
                    .startReplication(source.slot(), start, 1)
                    .doOnSubscribe(s -> state.set(State.STREAMING))
                    .map(WalChunk::data),
                segmentSize,
                timeline.metadata().systemId(),
                (written, flushed) -> client.reportProgress(written, flushed, flushed)),
        p ->
            Mono.fromRunnable(
                    () -> {
                      p.close();
                      current = null;
                    })
                .subscribeOn(Schedulers.boundedElastic()));
  }

  /** Makes everything received durable; completes when it is (at once if not streaming). */
  Mono<Void> checkpoint() {
    IngestPipeline p = current;
    return p == null ? Mono.fromRunnable(timeline::checkpoint) : p.checkpoint();
  }

  /** Slows the flush stage down (backpressure tests only): the running pipeline and later ones. */
  void setFlushDelayForTests(Duration d) {
    this.flushDelay = d;
    IngestPipeline p = current;
    if (p != null) {
      p.setFlushDelayForTests(d);
    }
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
    // A cancelled usingWhen does not wait for its cleanup: close the pipeline here too, so no
    // flush runs after the caller goes on to close the layer store.
    IngestPipeline p = current;
    if (p != null) {
      p.close();
    }
    state.set(State.STOPPED);
  }
}
