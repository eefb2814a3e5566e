package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.LogContext;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * The store's persistent queue of remote deletions (ADR 0024): durable lists in {@code
 * <data>/deletion/<sequence>.list} ({@link DeletionList}: magic, version, CRC32C, generation),
 * written temp → fsync → rename → fsync(dir) before anything is deleted, and a worker that executes
 * them in sequence order, then removes each list durably. A list is written by an upload pass after
 * its index is uploaded (objects the index no longer names) and by a timeline's or tenant's
 * deletion (its whole prefix); a crash between the write and the execution leaves the list, which
 * the worker executes after the next start. Every step may be repeated: deleting a missing object
 * succeeds.
 *
 * <p>The queue exists on disk once remote storage was used with the data directory ({@link #start}
 * creates {@code deletion/}): a store that never uploaded anything writes no lists (a timeline's
 * deletion then has no remote prefix to delete).
 *
 * <p>Before it deletes a timeline's objects the worker holds the timeline's upload passes off
 * ({@link Guard}): it never deletes an object the last uploaded index names or a committed local
 * file, and a prefix is deleted only after the timeline's upload queue is stopped and its pass has
 * ended, so nothing uploads into it afterwards. A list that fails its checks is set aside ({@code
 * .corrupt}) with an error, never half-read; a failed execution is retried with the uploads'
 * backoff, for ever, logging at most every {@link RemoteTimelineClient#LOG_EVERY}.
 *
 * <p>Thread-safe: {@link #enqueue} from any thread; lists execute one at a time on the worker's
 * thread.
 */
public final class RemoteDeletionQueue {
  private static final Logger log = LoggerFactory.getLogger(RemoteDeletionQueue.class);
  static final String DIR = "deletion";
  static final String SUFFIX = ".list";
  static final String CORRUPT = ".corrupt";
  static final String REFUSED = ".refused";

  /**
   * Sums since the start, for metrics.
   *
   * @param deletions objects deleted (including ones already gone)
   * @param pendingLists lists written and not executed yet, now
   * @param failures executions that failed and are retried
   * @param setAside lists that failed their checks or validation and were not executed
   */
  public record Totals(long deletions, long pendingLists, long failures, long setAside) {}

  /** What the worker asks of the upload queues before it deletes (the uploads implement it). */
  interface Guard {
    /**
     * Holds off the upload passes of a timeline (or of every timeline of a tenant) until the hold
     * is closed. With {@code stop}, their queues stop for good first (a prefix deletion).
     *
     * @throws TimeoutException if a pass did not end within {@code timeout}
     */
    Hold hold(TenantId tenant, Optional<TimelineId> timeline, boolean stop, Duration timeout)
        throws TimeoutException, InterruptedException;

    Guard NONE = (t, tl, stop, timeout) -> new Hold(false, Set.of(), () -> {});
  }

  /**
   * A hold on a timeline's (or tenant's) upload passes.
   *
   * @param live the timeline (tenant) exists in the store: its prefix must stay
   * @param keep object names that must stay: named by the last uploaded index, or committed
   */
  record Hold(boolean live, Set<String> keep, Runnable release) implements AutoCloseable {
    @Override
    public void close() {
      release.run();
    }
  }

  private static final int IDLE = 0;
  private static final int RUNNING = 1;
  private static final int RUNNING_AGAIN = 2;

  private final Path dir;
  private final AtomicLong nextSequence;
  private final AtomicLong deletions = new AtomicLong();
  private final AtomicLong failures = new AtomicLong();
  private final AtomicLong setAside = new AtomicLong();
  private final AtomicInteger state = new AtomicInteger(IDLE);
  private volatile boolean enabled;

  // Set by start; read by the worker's thread.
  private volatile RemoteStorage storage;
  private volatile RemoteUploads.Settings settings;
  private volatile Guard guard = Guard.NONE;
  private volatile GenerationCheck check = GenerationCheck.ALWAYS;
  private volatile Consumer<RemoteKey> onDeleting = k -> {};
  private volatile Scheduler scheduler;
  private volatile boolean stopped = true;
  private volatile String failure;
  private String currentList = "";
  private String current = ""; // what the worker executes, for its failure messages
  private DeletionList.Entry currentEntry; // its timeline's ids go into the failure's MDC
  private Duration backoff; // the worker's only
  private long lastLogNanos;
  private long suppressed;

  private RemoteDeletionQueue(Path dir, long nextSequence, boolean enabled) {
    this.dir = dir;
    this.nextSequence = new AtomicLong(nextSequence);
    this.enabled = enabled;
  }

  /**
   * Opens the queue of the store in {@code dataDir}: removes temporary files a crash left and finds
   * the next sequence; executes nothing until {@link #start}.
   */
  static RemoteDeletionQueue open(Path dataDir) throws IOException {
    Path dir = dataDir.resolve(DIR);
    if (!Files.isDirectory(dir)) {
      return new RemoteDeletionQueue(dir, 1, false);
    }
    long max = 0;
    try (Stream<Path> s = Files.list(dir)) {
      for (Path p : s.toList()) {
        String n = p.getFileName().toString();
        if (n.endsWith(DurableFiles.TEMP_SUFFIX)) {
          Files.delete(p); // a list whose write a crash interrupted: it never counted
          continue;
        }
        try {
          max = Math.max(max, Long.parseUnsignedLong(n.substring(0, n.indexOf('.')), 16));
        } catch (RuntimeException e) {
          log.warn("ignoring {}: not a deletion list", p);
        }
      }
    }
    return new RemoteDeletionQueue(dir, max + 1, true);
  }

  /** True once remote storage was used with this data directory: lists are written. */
  boolean enabled() {
    return enabled;
  }

  static String fileName(long sequence) {
    return String.format(Locale.ROOT, "%016x", sequence) + SUFFIX;
  }

  /**
   * Writes a list durably (temp → fsync → rename → fsync(dir)) and wakes the worker. Durable on
   * return, whatever happens to the process then.
   *
   * @param generation the generation of the entries' tenant on this pageserver (lists are written
   *     per tenant): the list is executed only while it is still the tenant's current one
   * @return the list's sequence
   */
  long enqueue(int generation, List<DeletionList.Entry> entries) throws IOException {
    long seq = nextSequence.getAndIncrement();
    DeletionList list = new DeletionList(seq, generation, entries);
    DurableFiles.write(dir.resolve(fileName(seq)), list.toBytes());
    wake();
    return seq;
  }

  /**
   * Starts executing lists (those pending from earlier runs first) on {@code storage}; makes the
   * queue's directory durable first, so that every object uploaded afterwards has a queue that can
   * delete it.
   */
  void start(
      RemoteStorage storage,
      RemoteUploads.Settings settings,
      Guard guard,
      GenerationCheck check,
      Consumer<RemoteKey> onDeleting)
      throws IOException {
    DurableFiles.createDirectories(dir);
    this.storage = storage;
    this.settings = settings;
    this.guard = guard;
    this.onDeleting = onDeleting;
    this.check = check;
    this.backoff = settings.minBackoff();
    this.scheduler = Schedulers.newBoundedElastic(1, 1000, "remote-deletion");
    this.enabled = true;
    this.state.set(IDLE); // a stop may have left a run's state behind
    this.stopped = false;
    wake();
  }

  /**
   * Stops the worker: a list in execution may finish its current call for {@link
   * RemoteUploads#CLOSE_GRACE}; what is pending stays for the next start.
   */
  void stop() {
    stopped = true;
    Scheduler s = scheduler;
    if (s != null) {
      s.disposeGracefully().timeout(RemoteUploads.CLOSE_GRACE).onErrorComplete().block();
      s.dispose();
    }
  }

  public Totals totals() {
    long lists = 0;
    if (enabled) {
      // counted where they are (a small directory): lists written by anyone, at any time, count
      try (Stream<Path> s = Files.list(dir)) {
        lists = s.filter(p -> p.getFileName().toString().endsWith(SUFFIX)).count();
      } catch (IOException e) {
        lists = -1; // shown as such rather than failing a metrics scrape
      }
    }
    return new Totals(deletions.get(), lists, failures.get(), setAside.get());
  }

  /** Why executions fail now, if they do. */
  public Optional<String> failure() {
    return Optional.ofNullable(failure);
  }

  /** Asks for a run of the worker: starts one, or one more after the run in progress. */
  void wake() {
    while (!stopped) {
      int s = state.get();
      if (s == IDLE && state.compareAndSet(IDLE, RUNNING)) {
        schedule(Duration.ZERO);
        return;
      }
      if (s == RUNNING_AGAIN || (s == RUNNING && state.compareAndSet(RUNNING, RUNNING_AGAIN))) {
        return;
      }
    }
  }

  private void schedule(Duration delay) {
    try {
      scheduler.schedule(this::run, delay.toMillis(), TimeUnit.MILLISECONDS);
    } catch (RuntimeException e) {
      stopped = true; // the scheduler is disposed: the queue is stopping
    }
  }

  private void run() {
    if (stopped) {
      return;
    }
    Duration retryIn;
    try {
      for (Path p : pendingLists()) {
        if (stopped) {
          return;
        }
        execute(p);
      }
      backoff = settings.minBackoff();
      if (failure != null) {
        log.info("remote deletions work again after {} failures", failures.get());
        failure = null;
        suppressed = 0;
        lastLogNanos = 0;
      }
      if (state.compareAndSet(RUNNING, IDLE)) {
        return;
      }
      state.set(RUNNING); // woken during the run: one more
      retryIn = Duration.ZERO;
    } catch (RemoteStorageException e) {
      boolean permanent = e.kind() == RemoteStorageException.Kind.PERMANENT;
      retryIn = failed((permanent ? "permanent: " : "transient: ") + e.getMessage(), permanent);
    } catch (TimeoutException e) {
      retryIn = failed("an upload pass did not end: " + e.getMessage(), false);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return; // the stop
    } catch (IOException | RuntimeException e) {
      // RuntimeException: a call that outlived callTimeout (block's IllegalStateException)
      retryIn = failed("local: " + e, false);
    }
    if (!stopped) {
      schedule(retryIn);
    }
  }

  private List<Path> pendingLists() throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> p.getFileName().toString().endsWith(SUFFIX)).sorted().toList();
    }
  }

  /** Executes one list, then removes it durably; sets it aside if it fails its checks. */
  private void execute(Path p) throws IOException, TimeoutException, InterruptedException {
    currentList = "list " + p.getFileName();
    current = currentList;
    currentEntry = null;
    DeletionList list;
    try {
      list = DeletionList.fromBytes(Files.readAllBytes(p), p.toString());
      String name = p.getFileName().toString();
      if (!name.equals(fileName(list.sequence()))) {
        throw new LayerStoreException(
            LayerStoreException.Kind.CORRUPT_FILE,
            "corrupt deletion list " + p + ": it holds sequence " + list.sequence());
      }
    } catch (LayerStoreException e) {
      setAside(p, CORRUPT, e.getMessage());
      return;
    }
    Optional<TenantId> stale = staleTenant(list);
    if (stale.isPresent()) {
      setAside(
          p,
          REFUSED,
          "deletion list "
              + p
              + " was written in generation "
              + list.generation()
              + " of tenant "
              + stale.get()
              + ", and the control plane has issued a newer one since (the tenant is attached"
              + " elsewhere and its objects are that pageserver's now)");
      return;
    }
    Map<String, List<DeletionList.ObjectEntry>> objects = new LinkedHashMap<>();
    for (DeletionList.Entry e : list.entries()) {
      switch (e) {
        case DeletionList.ObjectEntry o ->
            objects.computeIfAbsent(o.tenant() + "/" + o.id(), k -> new ArrayList<>()).add(o);
        case DeletionList.PrefixEntry x -> deletePrefix(x);
      }
    }
    for (List<DeletionList.ObjectEntry> group : objects.values()) {
      deleteObjects(group);
    }
    Files.delete(p);
    DurableFiles.fsyncDirectory(dir);
  }

  /**
   * The tenant of {@code list} whose generation is no longer current, if one is (ADR 0026): asked
   * right before the deletions, after the index that no longer names the objects was uploaded, so a
   * pageserver attached in a newer generation has read that index or a later one, or this check
   * sees its generation. A check that fails throws and the list is retried.
   */
  private Optional<TenantId> staleTenant(DeletionList list) {
    Set<TenantId> tenants = new java.util.TreeSet<>();
    list.entries().forEach(e -> tenants.add(e.tenant()));
    for (TenantId t : tenants) {
      if (!check.current(t, list.generation())) {
        return Optional.of(t);
      }
    }
    return Optional.empty();
  }

  @SuppressWarnings("try")
  private void deleteObjects(List<DeletionList.ObjectEntry> group)
      throws TimeoutException, InterruptedException {
    DeletionList.ObjectEntry first = group.getFirst();
    current = currentList + " (objects of timeline " + first.tenant() + "/" + first.id() + ")";
    currentEntry = first;
    try (LogContext.Scope s = LogContext.scope(first.tenant(), first.id());
        Hold h = guard.hold(first.tenant(), first.timeline(), false, settings.callTimeout())) {
      List<RemoteKey> keys = new ArrayList<>();
      for (DeletionList.ObjectEntry o : group) {
        if (h.keep().contains(o.name())) {
          // never delete what an uploaded index names (a name reused after an index rebuild)
          log.warn("not deleting {}: the timeline's index or its local files name it", o.key());
        } else {
          keys.add(o.key());
        }
      }
      delete(keys);
    }
  }

  @SuppressWarnings("try")
  private void deletePrefix(DeletionList.PrefixEntry x)
      throws TimeoutException, InterruptedException {
    String what =
        x.timeline().map(tl -> "timeline " + x.tenant() + "/" + tl).orElse("tenant " + x.tenant());
    current = currentList + " (prefix of " + what + ")";
    currentEntry = x;
    try (Hold h = guard.hold(x.tenant(), x.timeline(), true, settings.callTimeout())) {
      if (h.live()) {
        // created again with the same id: its own upload passes delete what no index names
        log.warn("not deleting the remote objects of {}: it exists again", what);
        return;
      }
      List<RemoteObject> all = storage.list(x.path()).collectList().block(settings.callTimeout());
      List<RemoteKey> indexes = new ArrayList<>();
      List<RemoteKey> rest = new ArrayList<>();
      for (RemoteObject o : all == null ? List.<RemoteObject>of() : all) {
        (o.key().name().startsWith(RemoteIndex.INDEX_NAME) ? indexes : rest).add(o.key());
      }
      // Indexes first: a deletion cut short never leaves an index naming a deleted layer.
      delete(indexes);
      delete(rest);
      log.info("deleted the {} remote objects of {}", indexes.size() + rest.size(), what);
    }
  }

  /**
   * Deletes {@code keys}: the first one, then the rest ({@link Seams.Seam#REMOTE_DELETION_PARTIAL}
   * between them, where a crash leaves a deletion half done).
   */
  private void delete(List<RemoteKey> keys) {
    if (keys.isEmpty()) {
      return;
    }
    keys.forEach(onDeleting);
    storage.delete(keys.getFirst()).block(settings.callTimeout());
    deletions.incrementAndGet();
    if (keys.size() > 1) {
      Seams.reached(Seams.Seam.REMOTE_DELETION_PARTIAL);
      storage.deleteAll(keys.subList(1, keys.size())).block(settings.callTimeout());
      deletions.addAndGet(keys.size() - 1);
    }
  }

  /** Moves a list that must not run out of the queue, durably, with an error. */
  private void setAside(Path p, String suffix, String why) throws IOException {
    Path aside = p.resolveSibling(p.getFileName() + suffix);
    Files.move(p, aside, StandardCopyOption.ATOMIC_MOVE);
    DurableFiles.fsyncDirectory(dir);
    setAside.incrementAndGet();
    log.error("{}; not executed, kept as {} (its objects stay in remote storage)", why, aside);
  }

  /**
   * Records a failed run, logs it (rate-limited, with the timeline's ids in the MDC when it was one
   * timeline's) and says when to try again.
   */
  @SuppressWarnings("try")
  private Duration failed(String why, boolean permanent) {
    DeletionList.Entry e = currentEntry;
    try (LogContext.Scope s =
        e == null || e.timeline().isEmpty()
            ? null
            : LogContext.scope(e.tenant(), e.timeline().get())) {
      return failedIn(why, permanent);
    }
  }

  private Duration failedIn(String why, boolean permanent) {
    if (stopped) {
      return Duration.ZERO; // interrupted by the stop: not a failure
    }
    failures.incrementAndGet();
    failure = current + ": " + why;
    Duration wait = permanent ? settings.maxBackoff() : backoff;
    long now = System.nanoTime();
    if (lastLogNanos == 0 || now - lastLogNanos >= RemoteTimelineClient.LOG_EVERY.toNanos()) {
      String fmt = "remote deletions fail ({} failures not logged since the last), retry in {}: {}";
      if (permanent) {
        log.error(fmt, suppressed, wait, failure);
      } else {
        log.warn(fmt, suppressed, wait, failure);
      }
      lastLogNanos = now;
      suppressed = 0;
    } else {
      suppressed++;
    }
    Duration doubled = backoff.multipliedBy(2);
    backoff = doubled.compareTo(settings.maxBackoff()) > 0 ? settings.maxBackoff() : doubled;
    return wait;
  }

  @Override
  public String toString() {
    return "remote deletion queue " + dir;
  }
}
