package io.zenith.replication.client;

import io.netty.channel.EventLoop;
import java.util.ArrayDeque;
import org.jspecify.annotations.Nullable;
import org.reactivestreams.Subscriber;
import org.reactivestreams.Subscription;
import reactor.core.publisher.Operators;

/**
 * The subscriber side shared by exchanges that stream what a connection receives ({@link
 * CopyOutExchange}, {@link WalStreamExchange}): demand accounting, a queue drained on the
 * connection's event loop, and the terminal signal once the queue is empty. Subclasses fill the
 * queue from their protocol handling and decide, after every drain, whether the socket reads on.
 *
 * <p>Not thread-safe except {@link #request} and {@link #cancel}, which hop to the event loop;
 * everything else, and every signal to the subscriber, runs there.
 */
abstract class LoopEmitter<T> implements Subscription {
  protected final EventLoop loop;
  protected final Subscriber<? super T> actual;
  protected final ArrayDeque<T> queue = new ArrayDeque<>();
  protected long demand;
  protected boolean cancelled;
  protected boolean terminated;
  private boolean draining;
  private boolean missed;

  LoopEmitter(EventLoop loop, Subscriber<? super T> actual) {
    this.loop = loop;
    this.actual = actual;
  }

  protected final void onLoop(Runnable r) {
    if (loop.inEventLoop()) {
      r.run();
    } else {
      loop.execute(r);
    }
  }

  // ---- Subscription (any thread) ----

  @Override
  public final void request(long n) {
    if (n <= 0) {
      onLoop(
          () -> {
            cancelOnLoop();
            if (!terminated) {
              terminated = true;
              actual.onError(
                  new IllegalArgumentException("§3.9 violated: positive request amount required"));
            }
          });
      return;
    }
    onLoop(
        () -> {
          demand = Operators.addCap(demand, n);
          drain();
        });
  }

  @Override
  public final void cancel() {
    onLoop(this::cancelOnLoop);
  }

  // ---- subclass contract (event loop) ----

  /** The subscriber cancelled (or broke the rules): drop the queue, end the exchange politely. */
  protected abstract void cancelOnLoop();

  /** Called with each item as it leaves the queue, before the subscriber gets it. */
  protected void dequeued(T item) {}

  /**
   * Whether the exchange may end once the queue is empty: with {@link #failure()} if there is one,
   * else complete.
   */
  protected abstract boolean finished();

  protected abstract @Nullable Throwable failure();

  /** Sets socket auto-read from the exchange's phase, the demand and the queue. */
  protected abstract void updateReading();

  /** Hands queued items over as far as demand allows; ends the subscriber when finished. */
  protected final void drain() {
    if (draining) {
      missed = true;
      return;
    }
    draining = true;
    try {
      do {
        missed = false;
        while (demand > 0 && !queue.isEmpty() && !cancelled && !terminated) {
          T item = queue.poll();
          dequeued(item);
          demand--;
          actual.onNext(item);
        }
        if (!terminated && !cancelled && queue.isEmpty() && finished()) {
          terminated = true;
          Throwable e = failure();
          if (e != null) {
            actual.onError(e);
          } else {
            actual.onComplete();
          }
        }
      } while (missed);
    } finally {
      draining = false;
    }
    updateReading();
  }
}
