package io.zenith.gateway.pageserver;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.netty.buffer.Unpooled;
import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.PgControl;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.Timeline;
import io.zenith.layer.TimelineView;
import io.zenith.page.Basebackup;
import io.zenith.page.PageChecksum;
import io.zenith.page.PageReconstructor;
import io.zenith.replication.auth.Scope;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.replication.server.PgSession;
import io.zenith.replication.server.QueryResponse;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.SignalType;
import reactor.core.scheduler.Scheduler;

/**
 * The pageserver's libpq commands: {@code basebackup <tenant> <timeline> [<lsn>] [--slim]},
 * streamed as CopyOut (slim: without relation files, {@link Basebackup#streamSlim}), and {@code
 * pagestream <tenant> <timeline> [<lsn>]} ({@link PagestreamSession}, CopyBoth; the LSN is held
 * readable while the stream runs); anything else is a syntax error. Errors are ErrorResponses with
 * a SQLSTATE. Store reads and the backup itself run on the blocking scheduler, never on the
 * connection's event loop, its pages reconstructed ahead of the client in the window {@link
 * Basebackup.Reading} bounds; the backup's LSN is pinned while it streams, so GC never removes what
 * it reads. Thread-safe.
 */
final class LibpqCommands {
  private static final Logger log = LoggerFactory.getLogger(LibpqCommands.class);

  private final LayerStore store;
  private final PageReconstructor pages;
  private final PageserverConfig config;
  private final Scheduler blocking;
  private final Basebackup.Reading reading;
  private final MeterRegistry meters;
  private final PagestreamSession pagestream;

  LibpqCommands(
      LayerStore store,
      PageReconstructor pages,
      PageserverConfig config,
      Scheduler blocking,
      Basebackup.Reading reading,
      MeterRegistry meters) {
    this.meters = meters;
    this.store = store;
    this.pages = pages;
    this.config = config;
    this.blocking = blocking;
    this.reading = reading;
    this.pagestream =
        new PagestreamSession(pages, blocking, config.waitLsnTimeoutDuration(), meters);
  }

  /**
   * {@code basebackup <tenant> <timeline> [<lsn>]} or {@code pagestream <tenant> <timeline>
   * [<lsn>]}; anything else is a syntax error.
   */
  Mono<QueryResponse> handleQuery(PgSession session, String sql) {
    String[] words = sql.trim().replaceAll(";$", "").trim().split("\\s+");
    if (words.length > 0 && words[0].equalsIgnoreCase("pagestream")) {
      return pagestream(session, words);
    }
    if (words.length == 0 || !words[0].equalsIgnoreCase("basebackup")) {
      return Mono.just(
          new QueryResponse.Error(
              PgNotice.error(SqlState.SYNTAX_ERROR, "unknown command: " + sql.trim())));
    }
    boolean slim = words[words.length - 1].equals("--slim");
    if (slim) {
      words = java.util.Arrays.copyOf(words, words.length - 1);
    }
    if (words.length < 3 || words.length > 4) {
      return Mono.just(
          error("22023", "usage: basebackup <tenant_id> <timeline_id> [<lsn>] [--slim]"));
    }
    TenantId tenant;
    TimelineId id;
    Optional<Lsn> at;
    try {
      tenant = TenantId.parse(words[1]);
      id = TimelineId.parse(words[2]);
      at = words.length == 4 ? Optional.of(Lsn.parse(words[3])) : Optional.empty();
    } catch (IllegalArgumentException e) {
      return Mono.just(error("22023", e.getMessage()));
    }
    Optional<QueryResponse> refused = refused(session, tenant);
    if (refused.isPresent()) {
      return Mono.just(refused.get());
    }
    return Mono.fromCallable(() -> store.timeline(tenant, id))
        .subscribeOn(blocking)
        .flatMap(
            t -> {
              Lsn lsn = at.orElse(t.lastRecordLsn());
              if (lsn.isBefore(t.startLsn())) {
                return Mono.just(
                    error(
                        "22023",
                        "LSN "
                            + lsn
                            + " is before the start of timeline "
                            + id
                            + " ("
                            + t.startLsn()
                            + ")"));
              }
              return t.waitForLsn(lsn, config.waitLsnTimeoutDuration())
                  .then(
                      Mono.fromCallable(() -> basebackup(session, t, lsn, slim))
                          .subscribeOn(blocking));
            })
        .onErrorResume(
            LayerStoreException.class, e -> Mono.just(error(sqlState(e), e.getMessage())));
  }

  /**
   * The ErrorResponse (28000) for a session whose token allows no reading of {@code tenant}'s data:
   * an admin token, or a tenant token of that tenant, does.
   */
  private static Optional<QueryResponse> refused(PgSession session, TenantId tenant) {
    try {
      session.authorize(tenant, Scope.TENANT, Scope.ADMIN);
      return Optional.empty();
    } catch (PgServerException e) {
      log.info("[{}] refused: {}", session.id(), e.serverMessage());
      return Optional.of(new QueryResponse.Error(e.notice()));
    }
  }

  private Mono<QueryResponse> pagestream(PgSession session, String[] words) {
    if (words.length != 3 && words.length != 4) {
      return Mono.just(error("22023", "usage: pagestream <tenant_id> <timeline_id> [<lsn>]"));
    }
    TenantId tenant;
    TimelineId id;
    Optional<Lsn> pin;
    try {
      tenant = TenantId.parse(words[1]);
      id = TimelineId.parse(words[2]);
      pin = words.length == 4 ? Optional.of(Lsn.parse(words[3])) : Optional.empty();
    } catch (IllegalArgumentException e) {
      return Mono.just(error("22023", e.getMessage()));
    }
    Optional<QueryResponse> refused = refused(session, tenant);
    if (refused.isPresent()) {
      return Mono.just(refused.get());
    }
    return Mono.fromCallable(() -> pagestream.start(session, store.timeline(tenant, id), pin))
        .subscribeOn(blocking)
        .onErrorResume(
            LayerStoreException.class, e -> Mono.just(error(sqlState(e), e.getMessage())));
  }

  @SuppressWarnings("try")
  private QueryResponse basebackup(PgSession session, TimelineView t, Lsn lsn, boolean slim) {
    boolean checksums =
        PgControl.parse(Catalog.image(t, KeySpace.CONTROL_FILE, lsn).orElseThrow())
                .dataChecksumVersion()
            != 0;
    try (LogContext.Scope s = LogContext.scope(t.tenant(), t.id())) {
      log.info(
          "{}basebackup of {} at {} for connection {}", slim ? "slim " : "", t, lsn, session.id());
    }
    long t0 = System.nanoTime();
    // GC keeps its cutoff at or below the LSN while the backup streams: refused now if it is above
    // already; held from the stream's subscription to its end, so a response that is never sent
    // (the client left while it was made) holds nothing.
    if (t instanceof Timeline tl) {
      unpin(tl.pin(lsn)); // LayerStoreException: an ErrorResponse, as the other refusals
    }
    return new QueryResponse.CopyOut(
        Flux.using(
                () -> pin(session, t, lsn),
                p ->
                    slim
                        ? Basebackup.streamSlim(t, lsn, pages, reading)
                        : Basebackup.stream(
                            t,
                            lsn,
                            pages,
                            (page, blk) -> {
                              if (checksums) {
                                PageChecksum.set(page, blk);
                              }
                            },
                            reading),
                LibpqCommands::unpin)
            // its log lines (on the blocking scheduler) name the timeline
            .subscribeOn(LogContext.scheduler(blocking, t.tenant(), t.id()))
            .doFinally(signal -> recordBasebackup(signal, t0))
            .concatMapIterable(LibpqCommands::slices, 1),
        true,
        0,
        "COPY 0");
  }

  /** From the command to the end of the stream, by how it ended: ok, error, cancelled. */
  private void recordBasebackup(SignalType signal, long t0) {
    String outcome =
        switch (signal) {
          case ON_COMPLETE -> "ok";
          case ON_ERROR -> "error";
          default -> "cancelled";
        };
    Timer.builder("zenith.basebackup.duration")
        .tag("outcome", outcome)
        .description("basebackups, from the command to the last byte sent (or the failure)")
        .publishPercentileHistogram()
        .register(meters)
        .record(System.nanoTime() - t0, TimeUnit.NANOSECONDS);
  }

  /** Holds {@code lsn} of {@code t} against GC until closed; 22023 if GC has passed it. */
  private static AutoCloseable pin(PgSession session, TimelineView t, Lsn lsn) {
    try {
      return t instanceof Timeline tl ? tl.pin(lsn) : () -> {};
    } catch (LayerStoreException e) {
      throw new PgServerException(session.id(), PgNotice.error(sqlState(e), e.getMessage()));
    }
  }

  private static void unpin(AutoCloseable pin) {
    try {
      pin.close();
    } catch (Exception e) {
      throw new IllegalStateException("cannot release a pinned LSN", e);
    }
  }

  /** Largest CopyData message of a basebackup (clients bound message sizes; psql does not). */
  static final int MAX_COPY_DATA = 256 * 1024;

  /** A basebackup step (a WAL segment is 16 MiB) as CopyData-sized buffers sharing its memory. */
  static List<io.netty.buffer.ByteBuf> slices(java.nio.ByteBuffer b) {
    if (b.remaining() <= MAX_COPY_DATA) {
      return List.of(Unpooled.wrappedBuffer(b));
    }
    List<io.netty.buffer.ByteBuf> out = new java.util.ArrayList<>();
    for (int off = b.position(); off < b.limit(); off += MAX_COPY_DATA) {
      out.add(Unpooled.wrappedBuffer(b.slice(off, Math.min(MAX_COPY_DATA, b.limit() - off))));
    }
    return out;
  }

  private static String sqlState(LayerStoreException e) {
    return switch (e.kind()) {
      case UNKNOWN_TENANT, UNKNOWN_TIMELINE -> SqlState.UNDEFINED_OBJECT;
      case INVALID_LSN -> "22023";
      case LSN_TIMEOUT -> SqlState.QUERY_CANCELED;
      default -> SqlState.INTERNAL_ERROR;
    };
  }

  private static QueryResponse error(String sqlState, String message) {
    return new QueryResponse.Error(PgNotice.error(sqlState, message));
  }
}
