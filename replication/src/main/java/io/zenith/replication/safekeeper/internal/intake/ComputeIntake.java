package io.zenith.replication.safekeeper.internal.intake;

import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.ReplicationClient;
import io.zenith.replication.client.ReplicationClient.Progress;
import io.zenith.replication.client.ReplicationOptions;
import io.zenith.replication.client.WalChunk;
import io.zenith.replication.client.WalSenderFollower;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.wal.FsyncFailedException;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.ComputeSource;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;
import reactor.util.retry.Retry;

/**
 * Pulls one timeline's WAL from the compute of the current term: a physical-replication standby
 * (slot and {@code application_name} {@code sk_<id>}) that appends what it receives to the log,
 * fsyncs in groups and reports the flush LSN its timeline allows (whole records, held back by the
 * lag limits), so the compute's synchronous quorum counts it. Reconnects with backoff until
 * stopped.
 *
 * <p>Connecting, identifying the compute, checking its system id and creating the slot are {@link
 * WalSenderFollower}'s; the reconnect policy (backoff, never after a failed fsync) and the appends
 * are this class's.
 *
 * <p>Threads: chunks are appended on the timeline's I/O thread; a flush is scheduled behind the
 * chunks already queued there, so one fsync covers every chunk that arrived meanwhile. Thread-safe:
 * {@link #report} and {@link #stop} may be called from any thread.
 */
final class ComputeIntake {
  private static final Logger log = LoggerFactory.getLogger(ComputeIntake.class);

  /** How far ahead of the I/O thread the stream may run (chunks of at most 128 KiB). */
  private static final int PREFETCH = 16;

  private final TimelineIntake timeline;
  private final ComputeSource source;
  private final String name;
  private final Scheduler io;
  private final AtomicBoolean flushScheduled = new AtomicBoolean();
  private final Sinks.Empty<Void> terminated = Sinks.empty();
  private final Disposable running;
  private volatile @Nullable ReplicationClient client;
  private volatile String state = "connecting";
  private volatile @Nullable String lastError;

  ComputeIntake(
      TimelineIntake timeline,
      ComputeSource source,
      String name,
      Scheduler io,
      Duration reconnectMax) {
    this.timeline = timeline;
    this.source = source;
    this.name = name;
    this.io = io;
    this.running =
        Mono.defer(this::streamOnce)
            .doOnError(this::failed)
            .retryWhen(
                Retry.backoff(Long.MAX_VALUE, Duration.ofMillis(200))
                    .maxBackoff(reconnectMax)
                    .jitter(0.2)
                    // a failed fsync is never retried (Fsync): the intake ends
                    .filter(e -> !(e instanceof FsyncFailedException)))
            .doFinally(s -> terminated.tryEmitEmpty())
            .subscribe(v -> {}, e -> {});
  }

  /** {@code connecting}, {@code streaming}, {@code failed} or {@code behind}. */
  String state() {
    return state;
  }

  @Nullable String lastError() {
    return lastError;
  }

  /** Sends {@code ack} as written, flushed and applied with the next status update. */
  void report(Lsn ack) {
    ReplicationClient c = client;
    if (c != null) {
      c.reportProgress(ack, ack, ack);
    }
  }

  /**
   * Stops pulling and waits (up to 10 s) until no chunk is being appended and the last flush is
   * done.
   */
  void stop() {
    running.dispose();
    terminated.asMono().timeout(Duration.ofSeconds(10)).onErrorComplete().block();
    // The flush scheduled behind the last chunks runs on the I/O thread: wait for it.
    Mono.fromRunnable(() -> {}).subscribeOn(io).block(Duration.ofSeconds(10));
    ReplicationClient c = client;
    if (c != null) {
      c.close().onErrorComplete().subscribe();
    }
  }

  private Mono<Void> streamOnce() {
    state = "connecting";
    PgConnectOptions opts =
        PgConnectOptions.builder()
            .host(source.host())
            .port(source.port())
            .user(source.user())
            .database("postgres")
            .applicationName(name)
            .replication(true)
            .connectTimeout(Duration.ofSeconds(5))
            .build();
    long expected = timeline.identity().systemId();
    WalSenderFollower follower =
        new WalSenderFollower(
            opts,
            ReplicationOptions.DEFAULT,
            name,
            id -> {
              if (id.systemId() != expected) {
                throw new IllegalStateException(
                    "the compute at "
                        + source.host()
                        + ":"
                        + source.port()
                        + " is database system "
                        + Long.toUnsignedString(id.systemId())
                        + ", this timeline belongs to "
                        + Long.toUnsignedString(expected));
              }
            });
    return follower.follow(
        new WalSenderFollower.Session<Void>() {
          @Override
          public Mono<Void> stream(WalSenderFollower.Connection c) {
            return ComputeIntake.this.stream(c);
          }

          @Override
          public void released(ReplicationClient c) {
            client = null;
          }
        });
  }

  private Mono<Void> stream(WalSenderFollower.Connection c) {
    Lsn start = timeline.intakeStart(source.term());
    client = c.client();
    // The start is the end of what was written, not necessarily fsynced (a reconnect while chunks
    // await their flush): acknowledge only what is durable and the limits allow.
    Lsn ack = timeline.ackLsn();
    log.info(
        "{}: pulling WAL of term {} from {}:{} at {}",
        timeline,
        source.term(),
        source.host(),
        source.port(),
        start);
    return c.startReplication(start, 0, new Progress(ack, ack, ack))
        .doOnSubscribe(
            s -> {
              state = "streaming";
              lastError = null;
            })
        .publishOn(io, PREFETCH)
        .doOnNext(this::append)
        .then(
            Mono.error(
                () ->
                    new IllegalStateException(
                        "the compute at "
                            + source.host()
                            + ":"
                            + source.port()
                            + " ended the stream")));
  }

  private void append(WalChunk chunk) {
    timeline.appendFromCompute(source.term(), chunk.start(), chunk.data());
    if (flushScheduled.compareAndSet(false, true)) {
      io.schedule(this::flush);
    }
  }

  private void flush() {
    flushScheduled.set(false);
    try {
      report(timeline.flushAndAck());
    } catch (RuntimeException e) {
      // The stream fails on its next chunk or reconnect; the acknowledged position stays put.
      log.warn("{}: flush failed: {}", timeline, e.getMessage());
    }
  }

  private void failed(Throwable e) {
    if (e instanceof PgServerException pe && SqlState.UNDEFINED_FILE.equals(pe.sqlState())) {
      state = "behind";
    } else {
      state = "failed";
    }
    String message = e.getMessage() == null ? e.toString() : e.getMessage();
    if (!message.equals(lastError)) {
      log.warn(
          "{}: pulling from {}:{} failed, retrying: {}",
          timeline,
          source.host(),
          source.port(),
          message);
    }
    lastError = message;
  }
}
