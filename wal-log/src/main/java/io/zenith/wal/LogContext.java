package io.zenith.wal;

import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;
import org.slf4j.MDC;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;

/**
 * The tenant and timeline a thread works for, in SLF4J's MDC (keys {@value #TENANT} and {@value
 * #TIMELINE}), so that every log line of a timeline's work carries both ids whatever logger writes
 * it. Reactor moves work between threads and the MDC is per thread, so the ids are set where work
 * enters a thread: a {@link #scope} around a task on a shared thread, or a {@link #scheduler} whose
 * every task runs with them (a timeline's own ingest, flush and compaction threads). Each restores
 * what the thread had before, so a pooled thread carries no stale ids into its next task.
 *
 * <p>Static and thread-safe (the MDC is the calling thread's).
 */
public final class LogContext {
  private LogContext() {}

  /** The MDC key of the tenant id. */
  public static final String TENANT = "tenant";

  /** The MDC key of the timeline id. */
  public static final String TIMELINE = "timeline";

  /** Restores the thread's previous ids when closed; close it on the thread that opened it. */
  public interface Scope extends AutoCloseable {
    @Override
    void close();
  }

  /** Sets both ids on this thread until the scope is closed. */
  public static Scope scope(TenantId tenant, TimelineId timeline) {
    return scope(tenant.toString(), timeline.toString());
  }

  /** Sets both ids (as printed) on this thread until the scope is closed. */
  public static Scope scope(String tenant, String timeline) {
    @Nullable String prevTenant = MDC.get(TENANT);
    @Nullable String prevTimeline = MDC.get(TIMELINE);
    MDC.put(TENANT, tenant);
    MDC.put(TIMELINE, timeline);
    return () -> {
      restore(TENANT, prevTenant);
      restore(TIMELINE, prevTimeline);
    };
  }

  private static void restore(String key, @Nullable String value) {
    if (value == null) {
      MDC.remove(key);
    } else {
      MDC.put(key, value);
    }
  }

  /** {@code task} with both ids set while it runs. */
  @SuppressWarnings("try")
  public static Runnable wrap(TenantId tenant, TimelineId timeline, Runnable task) {
    String t = tenant.toString();
    String tl = timeline.toString();
    return () -> {
      try (Scope s = scope(t, tl)) {
        task.run();
      }
    };
  }

  /**
   * {@code delegate} with every task it runs (directly or through its workers: {@code publishOn},
   * {@code subscribeOn}, timers) wrapped by {@link #wrap}. Disposing it disposes {@code delegate}.
   */
  public static Scheduler scheduler(Scheduler delegate, TenantId tenant, TimelineId timeline) {
    return new TimelineScheduler(delegate, tenant, timeline);
  }

  /** Thread-safe as its delegate is. */
  private record TimelineScheduler(Scheduler delegate, TenantId tenant, TimelineId timeline)
      implements Scheduler {
    @Override
    public Disposable schedule(Runnable task) {
      return delegate.schedule(wrap(tenant, timeline, task));
    }

    @Override
    public Disposable schedule(Runnable task, long delay, TimeUnit unit) {
      return delegate.schedule(wrap(tenant, timeline, task), delay, unit);
    }

    @Override
    public Disposable schedulePeriodically(
        Runnable task, long initialDelay, long period, TimeUnit unit) {
      return delegate.schedulePeriodically(
          wrap(tenant, timeline, task), initialDelay, period, unit);
    }

    @Override
    public long now(TimeUnit unit) {
      return delegate.now(unit);
    }

    @Override
    public Worker createWorker() {
      Worker w = delegate.createWorker();
      return new Worker() {
        @Override
        public Disposable schedule(Runnable task) {
          return w.schedule(wrap(tenant, timeline, task));
        }

        @Override
        public Disposable schedule(Runnable task, long delay, TimeUnit unit) {
          return w.schedule(wrap(tenant, timeline, task), delay, unit);
        }

        @Override
        public Disposable schedulePeriodically(
            Runnable task, long initialDelay, long period, TimeUnit unit) {
          return w.schedulePeriodically(wrap(tenant, timeline, task), initialDelay, period, unit);
        }

        @Override
        public void dispose() {
          w.dispose();
        }

        @Override
        public boolean isDisposed() {
          return w.isDisposed();
        }
      };
    }

    @Override
    public void init() {
      delegate.init();
    }

    @Override
    public void dispose() {
      delegate.dispose();
    }

    @Override
    public Mono<Void> disposeGracefully() {
      return delegate.disposeGracefully();
    }

    @Override
    public boolean isDisposed() {
      return delegate.isDisposed();
    }

    @Override
    public String toString() {
      return delegate.toString();
    }
  }
}
