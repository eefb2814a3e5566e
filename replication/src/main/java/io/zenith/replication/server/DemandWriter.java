package io.zenith.replication.server;

import io.netty.channel.ChannelHandlerContext;
import io.netty.util.ReferenceCountUtil;
import java.util.concurrent.atomic.AtomicInteger;
import org.jspecify.annotations.Nullable;
import org.reactivestreams.Publisher;
import org.reactivestreams.Subscription;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.CoreSubscriber;
import reactor.core.publisher.Operators;
import reactor.util.context.Context;

/**
 * Pulls a response's source into the channel: requests one item at a time and only while the
 * channel is writable, so a client that stops reading stops the source and the server holds at most
 * Netty's write-buffer high-water mark plus one item. The owner calls {@link #requestIfWritable()}
 * when the channel's writability changes and {@link #cancel()} when the session ends.
 *
 * <p><b>Ownership:</b> items are reference-counted buffers the source hands over. {@link #write}
 * takes each; items that arrive after the end are released here, and so are items an operator of
 * the source discards when cancelled (the discard hook in {@link #currentContext()}).
 *
 * <p>Signals may come from any thread; all work hops to the event loop, in the order of the signals
 * (an inline signal on the loop waits behind queued ones). Not thread-safe otherwise: confined to
 * the channel's event loop.
 */
abstract class DemandWriter<T> implements CoreSubscriber<T> {
  private static final Logger log = LoggerFactory.getLogger(DemandWriter.class);
  private static final Context RELEASE_DISCARDED =
      Operators.enableOnDiscard(Context.empty(), ReferenceCountUtil::release);

  final ChannelHandlerContext ctx;
  private @Nullable Subscription subscription;
  private boolean requested;
  private boolean done;
  private final AtomicInteger queuedSignals = new AtomicInteger();

  DemandWriter(ChannelHandlerContext ctx) {
    this.ctx = ctx;
  }

  /** Writes one item the source emitted; the item is the writer's from now on. Event loop. */
  abstract void write(T item);

  /** The source completed. Event loop; called at most once, and not after {@link #cancel()}. */
  abstract void sourceCompleted();

  /** The source failed. Event loop; called at most once, and not after {@link #cancel()}. */
  abstract void sourceFailed(Throwable t);

  /** Subscribes to {@code source}; a source that throws instead of signalling fails like one. */
  final void pull(Publisher<? extends T> source) {
    try {
      source.subscribe(this);
    } catch (RuntimeException e) {
      onError(e);
    }
  }

  @Override
  public Context currentContext() {
    return RELEASE_DISCARDED;
  }

  @Override
  public final void onSubscribe(Subscription s) {
    signal(
        () -> {
          subscription = s;
          if (done) {
            s.cancel();
          } else {
            requestIfWritable();
          }
        });
  }

  /** Asks for the next item if none is outstanding and the channel takes more. Event loop. */
  final void requestIfWritable() {
    Subscription s = subscription;
    if (s != null && !done && !requested && ctx.channel().isWritable()) {
      requested = true;
      s.request(1);
    }
  }

  @Override
  public final void onNext(T item) {
    signal(
        () -> {
          requested = false;
          if (done) {
            ReferenceCountUtil.release(item);
            return;
          }
          try {
            write(item);
          } catch (RuntimeException e) {
            // A bug of ours or of a callback the writer calls: end this response, not the loop.
            log.warn("writing a response item failed", e);
            if (cancel()) {
              sourceFailed(e);
            }
            return;
          }
          requestIfWritable();
        });
  }

  @Override
  public final void onError(Throwable t) {
    end(() -> sourceFailed(t));
  }

  @Override
  public final void onComplete() {
    end(this::sourceCompleted);
  }

  private void end(Runnable then) {
    signal(
        () -> {
          if (!done) {
            done = true;
            then.run();
          }
        });
  }

  /**
   * Stops the source; items still on their way are released when they arrive. Event loop.
   *
   * @return false if the source had already ended or been cancelled
   */
  final boolean cancel() {
    if (done) {
      return false;
    }
    done = true;
    Subscription s = subscription;
    if (s != null) {
      s.cancel();
    }
    return true;
  }

  /** The session ended: stop the source. Event loop. */
  void sessionClosed() {
    cancel();
  }

  final void onLoop(Runnable r) {
    onLoop(ctx, r);
  }

  /**
   * Runs a signal of the source on the event loop in the order the source gave them: inline only if
   * called there and no earlier signal (from another thread) still waits in the loop's queue. A
   * source whose items come from other threads may end on the event loop itself (a CopyBoth handler
   * fails on a client message): run at once, its error would overtake the items queued before it.
   */
  private void signal(Runnable r) {
    if (ctx.executor().inEventLoop() && queuedSignals.get() == 0) {
      r.run();
      return;
    }
    queuedSignals.incrementAndGet();
    ctx.executor()
        .execute(
            () -> {
              queuedSignals.decrementAndGet();
              r.run();
            });
  }

  /** Runs {@code r} on the channel's event loop: now if called there, else queued in order. */
  static void onLoop(ChannelHandlerContext ctx, Runnable r) {
    if (ctx.executor().inEventLoop()) {
      r.run();
    } else {
      ctx.executor().execute(r);
    }
  }
}
