package io.zenith.page.redo;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.zenith.page.redo.WalRedoException.Kind;
import io.zenith.pg.PgDistribution;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;

/**
 * The pageserver's WAL redo: per tenant, a small pool of {@link WalRedoProcess}es on copies of one
 * {@link ScratchCluster}, fed from a bounded queue.
 *
 * <ul>
 *   <li><b>Threads:</b> each process is driven by its own platform thread ({@code
 *       zenith-walredo-<tenant>-<n>}), which does the blocking pipe I/O; nothing here runs on the
 *       caller's thread or an event loop. At most {@link WalRedoConfig#maxProcessesPerTenant()}
 *       processes and threads per tenant; they start on demand and stop after {@link
 *       WalRedoConfig#idleTimeout()} without work.
 *   <li><b>Order:</b> requests of a tenant are taken first in, first out; with several processes
 *       they complete in any order.
 *   <li><b>Signals:</b> the {@link Mono} of {@link #apply} completes on the worker thread that
 *       served it. Keep downstream work short or {@code publishOn} another scheduler: the next
 *       request of that process waits for it.
 *   <li><b>Cancel:</b> a request cancelled while queued is skipped; one already sent completes and
 *       its result is dropped.
 *   <li><b>Failures:</b> the failed request gets a {@link WalRedoException}; after a crash, timeout
 *       or protocol error its process is discarded and the next request starts a new one.
 * </ul>
 *
 * <p>Metrics (Micrometer): {@code zenith.walredo.requests} (tag {@code outcome}: {@code ok} or the
 * exception kind), {@code zenith.walredo.records} (records applied by successful requests), {@code
 * zenith.walredo.latency} (round trip to the process, queueing and start-up excluded), {@code
 * zenith.walredo.restarts} (processes lost, tag {@code reason}), {@code
 * zenith.walredo.process.starts}, gauge {@code zenith.walredo.processes}.
 *
 * <p>Thread-safe.
 */
public final class WalRedoManager implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(WalRedoManager.class);

  private final WalRedoConfig config;
  private final ScratchCluster scratch;
  private final boolean ownsScratch;
  private final Map<String, TenantPool> pools = new ConcurrentHashMap<>();
  private boolean closed; // guarded by pools

  private final AtomicInteger liveProcesses = new AtomicInteger();
  private final AtomicInteger threadNumbers = new AtomicInteger();
  private final Counter ok;
  private final Map<Kind, Counter> failures = new EnumMap<>(Kind.class);
  private final Map<Kind, Counter> restarts = new EnumMap<>(Kind.class);
  private final Counter records;
  private final Counter starts;
  private final Timer latency;

  private WalRedoManager(
      WalRedoConfig config, ScratchCluster scratch, boolean ownsScratch, MeterRegistry registry) {
    this.config = config;
    this.scratch = scratch;
    this.ownsScratch = ownsScratch;
    String requests = "zenith.walredo.requests";
    ok =
        Counter.builder(requests)
            .description("WAL redo requests")
            .tag("outcome", "ok")
            .register(registry);
    for (Kind k : Kind.values()) {
      String name = k.name().toLowerCase(Locale.ROOT);
      failures.put(
          k,
          Counter.builder(requests)
              .description("WAL redo requests")
              .tag("outcome", name)
              .register(registry));
      if (k.processLost()) {
        restarts.put(
            k,
            Counter.builder("zenith.walredo.restarts")
                .description("WAL redo processes lost and replaced")
                .tag("reason", name)
                .register(registry));
      }
    }
    records =
        Counter.builder("zenith.walredo.records")
            .description("WAL records applied by successful requests")
            .register(registry);
    starts =
        Counter.builder("zenith.walredo.process.starts")
            .description("WAL redo processes started")
            .register(registry);
    latency =
        Timer.builder("zenith.walredo.latency")
            .description("round trip of one request to its redo process")
            .register(registry);
    Gauge.builder("zenith.walredo.processes", liveProcesses, AtomicInteger::get)
        .description("WAL redo processes running")
        .strongReference(true)
        .register(registry);
  }

  /**
   * Creates the scratch cluster (initdb of the template: a second or two) and returns a manager
   * with no process running yet.
   *
   * @throws WalRedoException of kind {@link Kind#START_FAILED} if the scratch cluster cannot be
   *     made
   */
  public static WalRedoManager start(
      PgDistribution pg, WalRedoConfig config, MeterRegistry registry) {
    ScratchCluster scratch =
        ScratchCluster.create(
            pg, config.scratchParent(), config.dataChecksums(), config.walLogHints());
    return new WalRedoManager(config, scratch, true, registry);
  }

  /**
   * A manager whose processes run on copies of {@code scratch}, which the caller keeps and closes
   * (after this manager). The scratch settings in {@code config} are not used.
   */
  public static WalRedoManager start(
      ScratchCluster scratch, WalRedoConfig config, MeterRegistry registry) {
    return new WalRedoManager(config, scratch, false, registry);
  }

  /**
   * Rebuilds one page of {@code tenantId}'s. Lazy: nothing happens until subscription.
   *
   * @return the 8 KiB page as redo left it ({@code pd_checksum} not recomputed; see {@link
   *     io.zenith.page.PageChecksum}), or a {@link WalRedoException}
   */
  public Mono<byte[]> apply(String tenantId, RedoRequest request) {
    if (tenantId == null || request == null) {
      throw new IllegalArgumentException("tenant and request are required");
    }
    return Mono.create(
        sink -> {
          TenantPool pool;
          synchronized (pools) {
            if (closed) {
              sink.error(closedError(request));
              return;
            }
            pool = pools.computeIfAbsent(tenantId, TenantPool::new);
          }
          Task task = new Task(request, sink);
          sink.onCancel(() -> task.cancelled = true);
          pool.submit(task);
        });
  }

  /** The scratch cluster the processes run on. */
  public ScratchCluster scratch() {
    return scratch;
  }

  /** Processes running for all tenants. */
  public int liveProcesses() {
    return liveProcesses.get();
  }

  /** The processes of a tenant right now (for tests and diagnostics). */
  List<WalRedoProcess> processes(String tenantId) {
    TenantPool p = pools.get(tenantId);
    return p == null ? List.of() : List.copyOf(p.processes);
  }

  /**
   * Fails queued requests with {@link Kind#CLOSED}, lets requests in flight finish, stops every
   * process cleanly and deletes the scratch cluster if this manager made it. Idempotent.
   */
  @Override
  public void close() {
    List<TenantPool> all;
    synchronized (pools) {
      if (closed) {
        return;
      }
      closed = true;
      all = new ArrayList<>(pools.values());
    }
    for (TenantPool p : all) {
      p.close();
    }
    Duration wait = config.requestTimeout().plusSeconds(20);
    for (TenantPool p : all) {
      p.awaitWorkers(wait);
    }
    if (ownsScratch) {
      scratch.close();
    }
  }

  private WalRedoException closedError(RedoRequest request) {
    failures.get(Kind.CLOSED).increment();
    return new WalRedoException(Kind.CLOSED, request, "the WAL redo manager is closed");
  }

  /** A queued request. */
  private static final class Task {
    final RedoRequest request;
    final MonoSink<byte[]> sink;
    volatile boolean cancelled;

    Task(RedoRequest request, MonoSink<byte[]> sink) {
      this.request = request;
      this.sink = sink;
    }
  }

  /** One tenant's queue, workers and processes. */
  private final class TenantPool {
    final String tenant;
    final ReentrantLock lock = new ReentrantLock();
    final Condition work = lock.newCondition();
    final ArrayDeque<Task> queue = new ArrayDeque<>(); // guarded by lock
    final List<Thread> threads = new ArrayList<>(); // guarded by lock
    int workers; // guarded by lock
    int idle; // guarded by lock
    boolean poolClosed; // guarded by lock
    final Set<WalRedoProcess> processes = ConcurrentHashMap.newKeySet();

    TenantPool(String tenant) {
      this.tenant = tenant;
    }

    void submit(Task task) {
      lock.lock();
      try {
        if (poolClosed) {
          task.sink.error(closedError(task.request));
          return;
        }
        if (queue.size() >= config.maxQueuedPerTenant()) {
          failures.get(Kind.OVERLOADED).increment();
          task.sink.error(
              new WalRedoException(
                  Kind.OVERLOADED,
                  task.request,
                  config.maxQueuedPerTenant() + " requests already queued for tenant " + tenant));
          return;
        }
        queue.add(task);
        if (idle == 0 && workers < config.maxProcessesPerTenant()) {
          startWorker();
        } else {
          work.signal();
        }
      } finally {
        lock.unlock();
      }
    }

    /** Caller holds the lock. */
    private void startWorker() {
      workers++;
      Thread t =
          Thread.ofPlatform()
              .name("zenith-walredo-" + tenant + "-" + threadNumbers.incrementAndGet())
              .daemon(true)
              .unstarted(() -> work(this));
      threads.removeIf(th -> !th.isAlive());
      threads.add(t);
      t.start();
    }

    /**
     * The next tasks (at least one, at most {@link WalRedoProcess#PIPELINE}, no more than this
     * worker's share of the queue so that the other processes get work too), or null when the
     * worker is to stop (idle too long, or the pool closed); in that case the worker is already
     * counted out.
     */
    List<Task> next() throws InterruptedException {
      lock.lock();
      try {
        long nanos = config.idleTimeout().toNanos();
        idle++;
        try {
          while (queue.isEmpty()) {
            if (poolClosed || nanos <= 0) {
              workers--;
              return null;
            }
            nanos = work.awaitNanos(nanos);
          }
        } finally {
          idle--;
        }
        int share = Math.max(1, queue.size() / Math.max(1, workers));
        int n = Math.min(WalRedoProcess.PIPELINE, share);
        List<Task> out = new ArrayList<>(n);
        while (out.size() < n && !queue.isEmpty()) {
          out.add(queue.poll());
        }
        return out;
      } finally {
        lock.unlock();
      }
    }

    /** Tasks a lost process did not answer: first in line again, for another process. */
    void requeue(List<Task> tasks) {
      lock.lock();
      try {
        if (poolClosed) {
          tasks.forEach(t -> t.sink.error(closedError(t.request)));
          return;
        }
        for (int i = tasks.size() - 1; i >= 0; i--) {
          queue.addFirst(tasks.get(i));
        }
        work.signal();
      } finally {
        lock.unlock();
      }
    }

    /** A worker that ended without {@link #next} returning null. */
    void workerFailed() {
      lock.lock();
      try {
        workers--;
        if (!poolClosed && !queue.isEmpty() && workers < config.maxProcessesPerTenant()) {
          startWorker();
        }
      } finally {
        lock.unlock();
      }
    }

    void close() {
      List<Task> dropped;
      lock.lock();
      try {
        poolClosed = true;
        dropped = new ArrayList<>(queue);
        queue.clear();
        work.signalAll();
      } finally {
        lock.unlock();
      }
      for (Task t : dropped) {
        t.sink.error(closedError(t.request));
      }
    }

    void awaitWorkers(Duration wait) {
      List<Thread> ts;
      lock.lock();
      try {
        ts = new ArrayList<>(threads);
      } finally {
        lock.unlock();
      }
      long deadline = System.nanoTime() + wait.toNanos();
      for (Thread t : ts) {
        try {
          long left = deadline - System.nanoTime();
          if (left <= 0 || !t.join(Duration.ofNanos(left))) {
            log.warn("WAL redo worker {} did not stop; killing its process", t.getName());
          }
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
      for (WalRedoProcess p : processes) {
        p.kill();
      }
    }
  }

  /** A worker thread: one process, requests from the pool's queue until idle or closed. */
  private void work(TenantPool pool) {
    WalRedoProcess process = null;
    boolean countedOut = false;
    try {
      while (true) {
        List<Task> tasks = pool.next();
        if (tasks == null) {
          countedOut = true;
          return;
        }
        tasks.removeIf(t -> t.cancelled);
        if (tasks.isEmpty()) {
          continue;
        }
        if (process == null) {
          try {
            process = WalRedoProcess.start(scratch, config.startTimeout());
          } catch (WalRedoException e) {
            failures.get(Kind.START_FAILED).increment();
            log.warn(
                "cannot start a WAL redo process for tenant {}: {}", pool.tenant, e.getMessage());
            for (Task t : tasks) {
              t.sink.error(e.forRequest(t.request));
            }
            continue;
          }
          starts.increment();
          liveProcesses.incrementAndGet();
          pool.processes.add(process);
        }
        WalRedoProcess p = process;
        process =
            tasks.size() > 1 && tasks.stream().allMatch(t -> p.pipelines(t.request))
                ? servePipelined(pool, process, tasks)
                : serveEach(pool, process, tasks);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (RuntimeException | Error e) {
      log.error("WAL redo worker for tenant {} failed", pool.tenant, e);
    } finally {
      if (process != null) {
        retire(pool, process);
      }
      if (!countedOut) {
        pool.workerFailed();
      }
    }
  }

  /** Runs tasks one after another; returns the process to keep using, or null if retired. */
  private WalRedoProcess serveEach(TenantPool pool, WalRedoProcess process, List<Task> tasks) {
    for (int i = 0; i < tasks.size(); i++) {
      if (process == null) {
        pool.requeue(tasks.subList(i, tasks.size()));
        return null;
      }
      process = serve(pool, process, tasks.get(i));
    }
    return process;
  }

  /**
   * Runs tasks with their requests pipelined to the process ({@link
   * WalRedoProcess#applyPipelined}); tasks a lost process did not answer go back to the queue.
   * Returns the process to keep using, or null when it was retired.
   */
  private WalRedoProcess servePipelined(TenantPool pool, WalRedoProcess process, List<Task> tasks) {
    long t0 = System.nanoTime();
    List<WalRedoProcess.Result> results;
    try {
      results =
          process.applyPipelined(
              tasks.stream().map(t -> t.request).toList(), config.requestTimeout());
    } catch (RuntimeException e) {
      tasks.forEach(t -> t.sink.error(e));
      retire(pool, process);
      return null;
    }
    long each = (System.nanoTime() - t0) / tasks.size();
    List<Task> again = new ArrayList<>();
    boolean lost = false;
    for (int i = 0; i < tasks.size(); i++) {
      Task task = tasks.get(i);
      switch (results.get(i)) {
        case WalRedoProcess.Result.Done(byte[] page) -> {
          latency.record(each, TimeUnit.NANOSECONDS);
          ok.increment();
          records.increment(task.request.records().size());
          task.sink.success(page);
        }
        case WalRedoProcess.Result.Failed(WalRedoException e) -> {
          latency.record(each, TimeUnit.NANOSECONDS);
          failures.get(e.kind()).increment();
          if (e.kind().processLost()) {
            restarts.get(e.kind()).increment();
            log.warn("{}; replacing the process", e.getMessage());
            lost = true;
          }
          task.sink.error(e);
        }
        case WalRedoProcess.Result.NotAnswered n -> again.add(task);
      }
    }
    if (!again.isEmpty()) {
      pool.requeue(again);
    }
    if (lost || !process.isAlive() || process.requestsServed() >= config.maxRequestsPerProcess()) {
      retire(pool, process);
      return null;
    }
    return process;
  }

  /** Runs one task; returns the process to keep using, or null when it was retired. */
  private WalRedoProcess serve(TenantPool pool, WalRedoProcess process, Task task) {
    long t0 = System.nanoTime();
    try {
      byte[] page = process.apply(task.request, config.requestTimeout());
      latency.record(System.nanoTime() - t0, TimeUnit.NANOSECONDS);
      ok.increment();
      records.increment(task.request.records().size());
      task.sink.success(page);
    } catch (WalRedoException e) {
      latency.record(System.nanoTime() - t0, TimeUnit.NANOSECONDS);
      failures.get(e.kind()).increment();
      if (e.kind().processLost()) {
        restarts.get(e.kind()).increment();
        log.warn("{}; replacing the process", e.getMessage());
        retire(pool, process);
        process = null;
      }
      task.sink.error(e);
    } catch (RuntimeException e) {
      task.sink.error(e);
    }
    if (process != null
        && (!process.isAlive() || process.requestsServed() >= config.maxRequestsPerProcess())) {
      retire(pool, process);
      process = null;
    }
    return process;
  }

  private void retire(TenantPool pool, WalRedoProcess process) {
    process.close();
    if (pool.processes.remove(process)) {
      liveProcesses.decrementAndGet();
    }
  }
}
