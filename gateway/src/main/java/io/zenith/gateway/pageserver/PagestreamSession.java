package io.zenith.gateway.pageserver;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.Timeline;
import io.zenith.layer.TimelineView;
import io.zenith.page.PageReconstructor;
import io.zenith.page.stream.PagestreamException;
import io.zenith.page.stream.PagestreamReader;
import io.zenith.page.stream.PagestreamRequest;
import io.zenith.page.stream.PagestreamResponse;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.replication.server.PgSession;
import io.zenith.replication.server.QueryResponse;
import io.zenith.wal.Lsn;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;

/**
 * The pagestream endpoint ({@code pagestream <tenant> <timeline>}, {@code
 * docs/formats/pagestream.md}): a CopyBoth stream of requests and answers for one timeline.
 *
 * <ul>
 *   <li><b>Threads:</b> requests are decoded on the connection's event loop (cheap, no I/O); each
 *       waits for its not-modified-since LSN without a thread ({@link TimelineView#waitForLsn},
 *       bounded by {@code wait_lsn_timeout}), then is answered on the pageserver's blocking
 *       scheduler, where page reconstruction runs.
 *   <li><b>Demand and bound:</b> at most {@value #IN_FLIGHT} requests of a connection are worked on
 *       at once ({@code flatMapSequential}); the connection reads no further request until one is
 *       answered and its answer is written, so memory per connection is at most {@value #IN_FLIGHT}
 *       answers (≤ 256 KiB each) plus one socket read.
 *   <li><b>Order:</b> answers go out in request order.
 *   <li><b>GC:</b> each request holds its read LSN ({@link Timeline#pin}) while it reads, so GC
 *       never removes versions under it; a stream opened with an LSN holds that one until it ends.
 *   <li><b>Errors:</b> a request that cannot be answered (unknown relation, LSN below the GC cutoff
 *       or before the timeline, LSN wait timeout) gets an error answer and the stream goes on; a
 *       malformed request ends the session with FATAL 08P01 after the answers to the requests
 *       before it.
 * </ul>
 *
 * <p>Metrics: {@value #TIMER} (GetPage and batch GetPage latency from the request's arrival to its
 * answer, percentile histogram, tags {@code request=getpage|getpages}, {@code
 * outcome=ok|error|timeout}). Thread-safe.
 */
final class PagestreamSession {
  private static final Logger log = LoggerFactory.getLogger(PagestreamSession.class);

  /** Requests of one connection worked on at once. */
  static final int IN_FLIGHT = 8;

  static final String TIMER = "zenith.pagestream.getpage";

  private final PageReconstructor pages;
  private final Scheduler blocking;
  private final Duration waitTimeout;
  private final MeterRegistry meters;

  PagestreamSession(
      PageReconstructor pages, Scheduler blocking, Duration waitTimeout, MeterRegistry meters) {
    this.pages = pages;
    this.blocking = blocking;
    this.waitTimeout = waitTimeout;
    this.meters = meters;
  }

  /**
   * The CopyBoth response that serves {@code t} to {@code session}; with {@code pin}, GC keeps the
   * timeline's cutoff at or below that LSN for as long as the stream runs (a read-only compute's
   * agent reads at it for its whole life).
   *
   * @throws LayerStoreException INVALID_LSN if {@code pin} is below the GC cutoff already
   */
  QueryResponse start(PgSession session, TimelineView t, Optional<Lsn> pin) {
    if (pin.isPresent()) {
      // refused now, as an ErrorResponse before the stream; the stream pins again for itself
      release(pin(t, pin.get()));
    }
    log.info(
        "pagestream of {} for connection {}{}",
        t,
        session.id(),
        pin.map(l -> ", holding " + l).orElse(""));
    PagestreamReader reader = new PagestreamReader(t, pages);
    return new QueryResponse.CopyBoth(
        in ->
            Flux.using(
                () -> pin.isPresent() ? held(session, t, pin.get()) : NOT_PINNED,
                held ->
                    in.map(message -> decode(session, message))
                        .flatMapSequentialDelayError(r -> answer(t, reader, r), IN_FLIGHT, 1)
                        .concatMapIterable(PagestreamSession::buffers, 1),
                PagestreamSession::release));
  }

  private static final AutoCloseable NOT_PINNED = () -> {};

  /** The stream's pin: GC raised the cutoff since the check in {@link #start}, rarely. */
  private static AutoCloseable held(PgSession session, TimelineView t, Lsn lsn) {
    try {
      return pin(t, lsn);
    } catch (LayerStoreException e) {
      throw new PgServerException(
          session.id(), PgNotice.error(SqlState.INVALID_PARAMETER_VALUE, e.getMessage()));
    }
  }

  /**
   * Holds {@code lsn} readable until the handle is closed ({@link Timeline#pin}); views that are no
   * store timeline (none in the pageserver) are not collected.
   */
  private static AutoCloseable pin(TimelineView t, Lsn lsn) {
    return t instanceof Timeline tl ? tl.pin(lsn) : NOT_PINNED;
  }

  private static void release(AutoCloseable pin) {
    try {
      pin.close();
    } catch (Exception e) {
      throw new IllegalStateException("cannot release a pinned LSN", e);
    }
  }

  private static PagestreamRequest decode(PgSession session, byte[] message) {
    try {
      return PagestreamRequest.decode(message);
    } catch (PagestreamException e) {
      throw new PgServerException(
          session.id(),
          PgNotice.fatal(
              SqlState.PROTOCOL_VIOLATION, "malformed pagestream request: " + e.getMessage()));
    }
  }

  private static List<ByteBuf> buffers(PagestreamResponse r) {
    return PagestreamResponse.encode(r).stream().map(Unpooled::wrappedBuffer).toList();
  }

  private Mono<PagestreamResponse> answer(
      TimelineView t, PagestreamReader reader, PagestreamRequest r) {
    long start = System.nanoTime();
    Lsn wanted = r.notModifiedSince();
    Mono<Void> wait =
        t.lastRecordLsn().isBefore(wanted) ? t.waitForLsn(wanted, waitTimeout) : Mono.empty();
    return wait.then(Mono.fromCallable(() -> read(t, reader, r)).subscribeOn(blocking))
        .onErrorResume(e -> Mono.just(failed(t, r, e)))
        .doOnNext(a -> record(r, a, start));
  }

  private static PagestreamResponse read(
      TimelineView t, PagestreamReader reader, PagestreamRequest r) {
    // Nothing changed between not-modified-since and the request LSN: the last record LSN, once
    // it is past not-modified-since, is as good as any LSN up to the request's.
    Lsn at = Lsn.min(r.lsn(), t.lastRecordLsn());
    if (at.isBefore(t.startLsn())) {
      return new PagestreamResponse.Error(
          r.id(),
          SqlState.INVALID_PARAMETER_VALUE,
          "LSN " + at + " is before the start of timeline " + t.id() + " (" + t.startLsn() + ")");
    }
    // GC may raise the cutoff past `at` and remove versions while this request reads them: the
    // pin keeps the cutoff at or below `at` until the answer is made (refused if it is above).
    AutoCloseable pin = pin(t, at);
    try {
      return reader.answer(r, at);
    } finally {
      release(pin);
    }
  }

  private static PagestreamResponse failed(TimelineView t, PagestreamRequest r, Throwable e) {
    if (e instanceof LayerStoreException le) {
      String state =
          switch (le.kind()) {
            case INVALID_LSN -> SqlState.INVALID_PARAMETER_VALUE;
            case LSN_TIMEOUT -> SqlState.QUERY_CANCELED;
            default -> SqlState.INTERNAL_ERROR;
          };
      if (state.equals(SqlState.INTERNAL_ERROR)) {
        log.warn("pagestream request {} on {} failed", r, t, e);
      }
      return new PagestreamResponse.Error(r.id(), state, e.getMessage());
    }
    log.warn("pagestream request {} on {} failed", r, t, e);
    return new PagestreamResponse.Error(
        r.id(), SqlState.INTERNAL_ERROR, "internal error: " + e.getMessage());
  }

  private void record(PagestreamRequest r, PagestreamResponse a, long start) {
    String request =
        switch (r) {
          case PagestreamRequest.GetPage g -> "getpage";
          case PagestreamRequest.GetPages g -> "getpages";
          default -> null;
        };
    if (request == null) {
      return;
    }
    String outcome =
        a instanceof PagestreamResponse.Error e
            ? (e.sqlState().equals(SqlState.QUERY_CANCELED) ? "timeout" : "error")
            : "ok";
    Timer.builder(TIMER)
        .description("pagestream GetPage latency, from the request's arrival to its answer")
        .tag("request", request)
        .tag("outcome", outcome)
        .publishPercentileHistogram()
        .register(meters)
        .record(Duration.ofNanos(System.nanoTime() - start));
  }
}
