package io.zenith.layer;

import io.zenith.wal.Lsn;
import java.time.Duration;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import reactor.core.publisher.Mono;

/**
 * Readers of one timeline waiting for its last record LSN to reach theirs ({@link
 * TimelineView#waitForLsn}), ordered by LSN so that a new record end wakes exactly the due ones.
 *
 * <p>Thread-safe: waiters register from any thread, the ingest thread wakes them. A waiter that
 * registers while the position moves past its LSN is not lost: it looks at the position again after
 * registering ({@link #await}).
 */
final class LsnWaiters {
  /** A reader waiting for an LSN; ordered by LSN, then arrival. */
  private record Waiter(long lsn, long seq) implements Comparable<Waiter> {
    @Override
    public int compareTo(Waiter o) {
      int c = Long.compareUnsigned(lsn, o.lsn);
      return c != 0 ? c : Long.compare(seq, o.seq);
    }
  }

  private final ConcurrentSkipListMap<Waiter, CompletableFuture<Void>> waiters =
      new ConcurrentSkipListMap<>();

  private final AtomicLong waiterSeq = new AtomicLong();

  /** Called after the last record LSN moved to {@code upTo}: completes the waits it satisfies. */
  void reached(Lsn upTo) {
    if (!waiters.isEmpty()) {
      wake(upTo);
    }
  }

  private void wake(Lsn upTo) {
    Map<Waiter, CompletableFuture<Void>> due =
        waiters.headMap(new Waiter(upTo.value(), Long.MAX_VALUE), true);
    for (Iterator<CompletableFuture<Void>> it = due.values().iterator(); it.hasNext(); ) {
      it.next().complete(null);
      it.remove();
    }
  }

  /**
   * Completes once {@code last} reaches {@code lsn}; fails with {@code timeoutError} after {@code
   * timeout}. Nothing is registered until subscription; cancel and timeout deregister.
   */
  Mono<Void> await(
      Lsn lsn, Duration timeout, Supplier<Lsn> last, Supplier<LayerStoreException> timeoutError) {
    return Mono.defer(
        () -> {
          if (!last.get().isBefore(lsn)) {
            return Mono.empty();
          }
          Waiter w = new Waiter(lsn.value(), waiterSeq.incrementAndGet());
          CompletableFuture<Void> f = new CompletableFuture<>();
          waiters.put(w, f);
          if (!last.get().isBefore(lsn)) {
            wake(last.get());
          }
          return Mono.fromFuture(f)
              .timeout(timeout, Mono.error(timeoutError))
              .doFinally(s -> waiters.remove(w));
        });
  }

  /** Fails every wait (the timeline closes). */
  void failAll(Supplier<LayerStoreException> error) {
    waiters.values().forEach(f -> f.completeExceptionally(error.get()));
  }
}
