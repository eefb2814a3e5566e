package io.zenith.replication.safekeeper.peers;

import io.zenith.replication.safekeeper.Safekeeper;
import io.zenith.replication.safekeeper.TimelineStatus;
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
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;

/**
 * Peer gossip: every {@code interval} it asks each peer for the statuses of its timelines and hands
 * each to {@link Safekeeper#onPeerStatus}: a timeline held here gets it (commit LSN, donors, the
 * compute of the term, the pageserver's positions), one not held here is created with the peer's
 * identity and then caught up from the most advanced peer. Peers are asked in parallel, each call
 * bounded by {@code interval} × 10; a round starts only after the previous one ended (ticks
 * meanwhile are dropped). An unreachable peer is skipped; its state changes are logged once each,
 * and so is a status that cannot be taken (a timeline that cannot be created here), while the
 * problem lasts.
 *
 * <p>Threads: calls and hand-overs run on {@code blocking}. Thread-safe; {@link #close} stops it.
 */
public final class Gossip implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Gossip.class);

  private final Safekeeper sk;
  private final PeerStatusSource source;
  private final Map<Integer, String> peerState = new ConcurrentHashMap<>();

  /** Why a peer's status of a timeline was not taken, by peer and timeline (logged on change). */
  private final Map<String, String> problems = new ConcurrentHashMap<>();

  private final Disposable loop;
  private volatile boolean closed;

  public Gossip(
      Safekeeper sk,
      List<Integer> peerIds,
      PeerStatusSource source,
      Duration interval,
      Scheduler blocking) {
    this.sk = sk;
    this.source = source;
    Duration callTimeout = interval.multipliedBy(10);
    this.loop =
        Flux.interval(interval, blocking)
            .onBackpressureDrop()
            .concatMap(
                tick ->
                    Flux.fromIterable(peerIds)
                        .flatMap(
                            id ->
                                Mono.fromCallable(() -> ask(id))
                                    .subscribeOn(blocking)
                                    .timeout(callTimeout)
                                    .doOnNext(s -> heard(id, s))
                                    .doOnError(e -> unreachable(id, e))
                                    .onErrorComplete())
                        .then(),
                0)
            .subscribe();
  }

  /** A call interrupted by {@link #close} is no news: nothing is left to tell it to. */
  private List<TimelineStatus> ask(int peerId) throws Exception {
    try {
      return source.statuses(peerId);
    } catch (Exception e) {
      if (closed) {
        return List.of();
      }
      throw e;
    }
  }

  private void heard(int peerId, List<TimelineStatus> statuses) {
    changed(peerId, "reachable", null);
    for (TimelineStatus s : statuses) {
      String key = peerId + " " + s.identity().tenant() + "/" + s.identity().timeline();
      try {
        sk.onPeerStatus(s);
        problems.remove(key);
      } catch (IOException | RuntimeException e) {
        String why = String.valueOf(e.getMessage());
        if (!why.equals(problems.put(key, why))) {
          log.warn(
              "safekeeper {}: status of timeline {}/{} from safekeeper {} not taken: {}",
              sk.config().id(),
              s.identity().tenant(),
              s.identity().timeline(),
              peerId,
              why);
        }
      }
    }
  }

  private void unreachable(int peerId, Throwable e) {
    String why =
        e instanceof java.util.concurrent.TimeoutException
            ? "no answer in time"
            : String.valueOf(e.getMessage());
    changed(peerId, "unreachable", why);
  }

  private void changed(int peerId, String state, @Nullable String why) {
    String before = peerState.put(peerId, state);
    if (!state.equals(before)) {
      if (why == null) {
        log.info("safekeeper {}: peer {} is {}", sk.config().id(), peerId, state);
      } else {
        log.info("safekeeper {}: peer {} is {}: {}", sk.config().id(), peerId, state, why);
      }
    }
  }

  /** {@code reachable} / {@code unreachable} per peer id, as of the last round (for status). */
  public Map<Integer, String> peerStates() {
    return Map.copyOf(peerState);
  }

  @Override
  public void close() {
    closed = true;
    loop.dispose();
  }
}
