package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.BiPredicate;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;

/**
 * One timeline of a tenant: its versions, in the open in-memory layer, frozen layers waiting to be
 * flushed, and layer files indexed by RocksDB; and, below its branch point, its ancestor's.
 *
 * <p><b>Writing</b> (one thread, the ingest stage): {@link #put} versions of a record, then {@link
 * #finishRecord} with the record's end. {@link #freezeIfDue} freezes the open layer between
 * records; {@link #flushOldestFrozen} (blocking I/O, a dedicated thread) writes a frozen layer to a
 * file and commits it to RocksDB together with the new disk-consistent LSN, in one synced batch. A
 * flush that cannot write its file (a full disk) changes nothing and may be retried: {@link
 * #flushFailure} says why while it fails.
 *
 * <p><b>Reading</b> (any thread): {@link #history}, {@link #newest}, {@link #nextKey}. A reader
 * holds the layer-list read lock while it collects versions, so a layer is never removed under it;
 * in-memory layers cover LSNs above the index's, so nothing is read twice.
 */
public final class Timeline {
  private static final Logger log = LoggerFactory.getLogger(Timeline.class);

  /** The last ingested record: its end, and its start (the next record's xl_prev). */
  public record RecordPosition(Lsn last, Lsn prev) {}

  private final TimelineMetadata metadata;
  private final Path dir;
  private final LayerIndex index;
  private final LayerStoreConfig config;
  private final LayerDisk disk;
  private final Map<Long, LayerFile.Reader> readers = new ConcurrentHashMap<>();
  private final ReentrantReadWriteLock layersLock = new ReentrantReadWriteLock();
  private final AtomicLong ephemeralSeq = new AtomicLong();

  /** Guarded by layersLock (write to change; read to look). Newest last. */
  private final ArrayDeque<InMemoryLayer> frozen = new ArrayDeque<>();

  /** Guarded by layersLock. */
  private InMemoryLayer open;

  private volatile Timeline ancestor;
  private volatile RecordPosition position;
  private volatile Lsn diskConsistentLsn;
  private volatile Lsn remoteConsistentLsn;
  private volatile String broken;
  private volatile boolean closed;

  /** Why flushing fails, while it does; null while it works. Changed under flushStateLock. */
  private volatile String flushFailure;

  private final AtomicLong flushFailures = new AtomicLong();
  private final Object flushStateLock = new Object();

  /** When the current spell of failed flushes began, and the failure count then. */
  private long failingSinceNanos;

  private long failuresBefore;

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

  Timeline(
      TimelineMetadata metadata,
      Path dir,
      LayerIndex index,
      LayerStoreConfig config,
      LayerDisk disk,
      LayerIndex.TimelineState state) {
    this.metadata = metadata;
    this.dir = dir;
    this.index = index;
    this.config = config;
    this.disk = disk;
    this.position = new RecordPosition(state.diskConsistentLsn(), state.prevRecordLsn());
    this.diskConsistentLsn = state.diskConsistentLsn();
    this.remoteConsistentLsn = state.remoteConsistentLsn();
  }

  public TenantId tenant() {
    return metadata.tenant();
  }

  public TimelineId id() {
    return metadata.timeline();
  }

  public TimelineMetadata metadata() {
    return metadata;
  }

  public Optional<Timeline> ancestor() {
    return Optional.ofNullable(ancestor);
  }

  void setAncestor(Timeline a) {
    this.ancestor = a;
  }

  /** The lowest LSN readable on this timeline: where the history of its root starts. */
  public Lsn startLsn() {
    return metadata.initdbLsn();
  }

  public RecordPosition position() {
    return position;
  }

  public Lsn lastRecordLsn() {
    return position.last();
  }

  public Lsn diskConsistentLsn() {
    return diskConsistentLsn;
  }

  public Lsn remoteConsistentLsn() {
    return remoteConsistentLsn;
  }

  /** Why the timeline cannot be used, if it cannot (a corrupt file found on start). */
  public Optional<String> brokenReason() {
    return Optional.ofNullable(broken);
  }

  void markBroken(String reason) {
    this.broken = reason;
    log.error("timeline {}/{} is broken: {}", tenant(), id(), reason);
  }

  private void checkUsable() {
    if (closed) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO, "timeline " + tenant() + "/" + id() + " is closed");
    }
    String b = broken;
    if (b != null) {
      throw new LayerStoreException(
          LayerStoreException.Kind.CORRUPT_FILE,
          "timeline " + tenant() + "/" + id() + " is unusable: " + b);
    }
  }

  /** The timeline's directory (its layer files, metadata, and files of the layers above). */
  public Path dir() {
    return dir;
  }

  void addReader(long layerId, LayerFile.Reader r) {
    readers.put(layerId, r);
  }

  // ---------------------------------------------------------------- writing

  /**
   * Adds a version. Visible to readers once {@link #finishRecord} has moved the last record LSN to
   * or past {@code lsn}. Buffered: durable after the layer holding it is flushed.
   */
  public void put(Key key, Lsn lsn, Value value) {
    checkUsable();
    try {
      openLayer().put(key, lsn, value);
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot write the in-memory layer of " + tenant() + "/" + id() + ": " + e.getMessage(),
          e);
    }
  }

  private InMemoryLayer openLayer() throws IOException {
    InMemoryLayer l = open;
    if (l == null) {
      layersLock.writeLock().lock();
      try {
        if (open == null) {
          Path f =
              dir.resolve(
                  "ephemeral-" + ephemeralSeq.incrementAndGet() + DurableFilesSuffix.EPHEMERAL);
          Files.deleteIfExists(f);
          open = new InMemoryLayer(f, position.last());
        }
        l = open;
      } finally {
        layersLock.writeLock().unlock();
      }
    }
    return l;
  }

  /** Publishes everything up to the end of a record; wakes readers waiting for it. */
  public void finishRecord(Lsn end, Lsn start) {
    if (!end.isAfter(position.last())) {
      throw new IllegalArgumentException(
          "record end " + end + " is not after the last record " + position.last());
    }
    InMemoryLayer l = open;
    RecordPosition p = new RecordPosition(end, start);
    if (l != null) {
      l.advance(end, start);
    }
    position = p;
    if (!waiters.isEmpty()) {
      wake(end);
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
   * Completes once the last record LSN reaches {@code lsn}; fails with LSN_TIMEOUT after {@code
   * timeout}.
   */
  public Mono<Void> waitForLsn(Lsn lsn, Duration timeout) {
    return Mono.defer(
        () -> {
          if (!position.last().isBefore(lsn)) {
            return Mono.empty();
          }
          Waiter w = new Waiter(lsn.value(), waiterSeq.incrementAndGet());
          CompletableFuture<Void> f = new CompletableFuture<>();
          waiters.put(w, f);
          if (!position.last().isBefore(lsn)) {
            wake(position.last());
          }
          return Mono.fromFuture(f)
              .timeout(
                  timeout,
                  Mono.error(
                      () ->
                          new LayerStoreException(
                              LayerStoreException.Kind.LSN_TIMEOUT,
                              "timed out after "
                                  + timeout.toMillis()
                                  + " ms waiting for LSN "
                                  + lsn
                                  + " on timeline "
                                  + tenant()
                                  + "/"
                                  + id()
                                  + " (last record "
                                  + position.last()
                                  + ")")))
              .doFinally(s -> waiters.remove(w));
        });
  }

  /** True when the open layer should be frozen: big enough, or old enough and not empty. */
  public boolean freezeDue() {
    InMemoryLayer l = open;
    return l != null
        && !l.isEmpty()
        && (l.bytes() >= config.checkpointDistance()
            || l.ageNanos() >= config.checkpointTimeout().toNanos());
  }

  /**
   * Freezes the open layer (cheap, no I/O) if {@link #freezeDue()} or {@code force}; call between
   * records. Returns true if a layer was frozen.
   */
  public boolean freezeIfDue(boolean force) {
    layersLock.writeLock().lock();
    try {
      InMemoryLayer l = open;
      boolean advancedWithoutVersions =
          l == null && position.last().isAfter(diskConsistentLsn) && frozen.isEmpty();
      if (l == null && !(force && advancedWithoutVersions)) {
        return false;
      }
      if (l != null && !force && !freezeDue()) {
        return false;
      }
      if (l == null) {
        // Nothing was stored since the last flush, but the LSN moved: record that durably too.
        Path f =
            dir.resolve(
                "ephemeral-" + ephemeralSeq.incrementAndGet() + DurableFilesSuffix.EPHEMERAL);
        l = new InMemoryLayer(f, diskConsistentLsn);
        l.advance(position.last(), position.prev());
      }
      l.freeze();
      frozen.addLast(l);
      open = null;
      return true;
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO, "cannot freeze: " + e.getMessage(), e);
    } finally {
      layersLock.writeLock().unlock();
    }
  }

  public int frozenCount() {
    layersLock.readLock().lock();
    try {
      return frozen.size();
    } finally {
      layersLock.readLock().unlock();
    }
  }

  /** Bytes in the open layer (for metrics and backpressure). */
  public long openLayerBytes() {
    InMemoryLayer l = open;
    return l == null ? 0 : l.bytes();
  }

  /**
   * Writes the oldest frozen layer to a layer file and commits it with the new disk-consistent LSN.
   * Blocking I/O: run it on a thread that may block. Durable on return. Returns false when nothing
   * was frozen.
   *
   * <p>A failure before the commit leaves the store as it was: the layer file and its temporary
   * file are deleted, RocksDB and the disk-consistent LSN are unchanged, and the frozen layer stays
   * queued with its versions, so the flush can simply be called again (a retry reuses the layer id
   * the first attempt allocated). A failed commit leaves the file to recovery. A failed fsync is an
   * Error that passes through untouched.
   *
   * @throws LayerStoreException NO_SPACE when the layer file could not get its bytes, or RocksDB
   *     reported no space (a full disk: retry later; the first failure of a spell is logged at
   *     WARN, the flush that works again at INFO); IO for other failures
   */
  public boolean flushOldestFrozen() {
    checkUsable();
    InMemoryLayer l;
    layersLock.readLock().lock();
    try {
      l = frozen.peekFirst();
    } finally {
      layersLock.readLock().unlock();
    }
    if (l == null) {
      return false;
    }
    Lsn to = l.to();
    LayerIndex.TimelineState state =
        new LayerIndex.TimelineState(to, l.prevRecordAtTo(), remoteConsistentLsn);
    try {
      if (l.isEmpty()) {
        index.commitLayer(tenant(), id(), null, List.of(), state);
      } else {
        writeAndCommit(l, to, state);
      }
    } catch (LayerFile.WriteException e) {
      throw flushFailed(e, e.getCause() == null ? e.getMessage() : e.getCause().getMessage());
    } catch (RocksDBException e) {
      if (LayerIndex.isNoSpace(e)) {
        throw flushFailed(e, e.getMessage());
      }
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot flush a layer of " + tenant() + "/" + id() + ": " + e.getMessage(),
          e);
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot flush a layer of " + tenant() + "/" + id() + ": " + e.getMessage(),
          e);
    }
    flushWorked();
    layersLock.writeLock().lock();
    try {
      frozen.removeFirst();
      diskConsistentLsn = to;
    } finally {
      layersLock.writeLock().unlock();
    }
    l.delete();
    return true;
  }

  /** Writes {@code l}'s layer file and commits it; on failure, deletes what it wrote. */
  private void writeAndCommit(InMemoryLayer l, Lsn to, LayerIndex.TimelineState state)
      throws IOException, RocksDBException {
    if (l.layerId() == 0) {
      // Once per layer: a retry after a failure changes nothing in RocksDB before its commit.
      l.setLayerId(index.allocateLayerId());
    }
    long id = l.layerId();
    String name = layerFileName(id, l.from(), to);
    Path path = dir.resolve(name);
    LayerFile.Header h =
        new LayerFile.Header(LayerFile.Kind.DELTA, tenant(), id(), l.keyRange(), l.from(), to, id);
    List<LayerFile.IndexEntry> entries;
    LayerIndex.LayerInfo info;
    try {
      entries = LayerFile.Writer.write(path, h, disk, l::writeTo);
      info =
          new LayerIndex.LayerInfo(id, LayerFile.Kind.DELTA, l.from(), to, Files.size(path), name);
      readers.put(id, LayerFile.Reader.open(path));
    } catch (IOException | RuntimeException e) {
      // Nothing refers to the file (recovery would delete it): gone now, so that a retry starts
      // from the same directory. Not on a failed fsync (an Error): that stops the process as is.
      closeReader(id);
      deleteQuietly(path);
      deleteQuietly(path.resolveSibling(name + DurableFiles.TEMP_SUFFIX));
      throw e;
    }
    try {
      index.commitLayer(tenant(), id(), info, entries, state);
    } catch (RocksDBException | RuntimeException e) {
      // Whether the batch is in RocksDB is for its recovery to say: the file stays (a restart
      // deletes it if it is not registered; a retry writes it again under the same name).
      closeReader(id);
      throw e;
    }
    log.info(
        "flushed layer {} of {}/{}: {} versions, {} bytes, LSN {}..{}",
        name,
        tenant(),
        id(),
        entries.size(),
        info.size(),
        l.from(),
        to);
  }

  private void closeReader(long layerId) {
    LayerFile.Reader r = readers.remove(layerId);
    if (r != null) {
      r.close();
    }
  }

  private static void deleteQuietly(Path f) {
    try {
      Files.deleteIfExists(f);
    } catch (IOException e) {
      log.warn("cannot delete {} (it is deleted at the next start): {}", f, e.getMessage());
    }
  }

  private LayerStoreException flushFailed(Exception e, String why) {
    synchronized (flushStateLock) {
      long n = flushFailures.incrementAndGet();
      if (flushFailure == null) {
        failingSinceNanos = System.nanoTime();
        failuresBefore = n - 1;
        log.warn(
            "cannot flush layers of {}/{}: {}; the frozen layers stay queued and flushes are"
                + " retried (disk-consistent LSN stays at {}; ingest waits once too many layers"
                + " are frozen)",
            tenant(),
            id(),
            e.getMessage(),
            diskConsistentLsn);
      }
      flushFailure = why;
    }
    return new LayerStoreException(
        LayerStoreException.Kind.NO_SPACE,
        "cannot flush a layer of " + tenant() + "/" + id() + ": " + e.getMessage(),
        e);
  }

  private void flushWorked() {
    if (flushFailure == null) {
      return;
    }
    synchronized (flushStateLock) {
      if (flushFailure != null) {
        log.info(
            "flushing layers of {}/{} works again, after {} failed attempts in {} s",
            tenant(),
            id(),
            flushFailures.get() - failuresBefore,
            Duration.ofNanos(System.nanoTime() - failingSinceNanos).toSeconds());
        flushFailure = null;
      }
    }
  }

  /**
   * Why flushing this timeline's layers fails, while it does (the cause of the last failure, such
   * as "No space left on device"); empty once a flush works again.
   */
  public Optional<String> flushFailure() {
    return Optional.ofNullable(flushFailure);
  }

  /** Flush attempts that failed for want of space since the timeline was loaded. */
  public long flushFailures() {
    return flushFailures.get();
  }

  /** Freezes and flushes everything ingested so far. Blocking; durable on return. */
  public void checkpoint() {
    freezeIfDue(true);
    while (flushOldestFrozen()) {
      // flush every frozen layer, oldest first
    }
  }

  /** Records the LSN up to which remote storage has this timeline (durable on return). */
  void setRemoteConsistentLsn(Lsn lsn) throws RocksDBException {
    remoteConsistentLsn = lsn;
    index.putState(
        tenant(), id(), new LayerIndex.TimelineState(diskConsistentLsn, Lsn.INVALID, lsn));
  }

  static String layerFileName(long id, Lsn from, Lsn to) {
    return String.format(Locale.ROOT, "%016x__%016X-%016X.layer", id, from.value(), to.value());
  }

  // ---------------------------------------------------------------- reading

  /**
   * The versions of {@code key} that matter at {@code lsn}, newest first: every version at or below
   * {@code lsn} down to and including the newest base (image, will-init record or tombstone),
   * following the timeline into its ancestors below the branch point. If no base exists the list
   * ends with the oldest version there is (reconstruction starts from a zero page). Empty if the
   * key has no version at or below {@code lsn}.
   */
  public List<Version> history(Key key, Lsn lsn) {
    List<Version> out = new ArrayList<>();
    visit(
        key,
        lsn,
        (at, v) -> {
          out.add(new Version(at, v));
          return !v.isBase();
        });
    return out;
  }

  /** The newest version at or below {@code lsn}, unless it is a tombstone. */
  public Optional<Version> newest(Key key, Lsn lsn) {
    Version[] found = new Version[1];
    visit(
        key,
        lsn,
        (at, v) -> {
          found[0] = new Version(at, v);
          return false;
        });
    return found[0] == null || found[0].value().isTombstone()
        ? Optional.empty()
        : Optional.of(found[0]);
  }

  /**
   * Visits versions of {@code key} at or below {@code lsn}, newest first, through the ancestors,
   * while the visitor returns true.
   */
  private void visit(Key key, Lsn lsn, BiPredicate<Lsn, Value> visitor) {
    Lsn at = lsn;
    for (Timeline t = this; t != null; ) {
      t.checkUsable();
      if (!t.visitOwn(key, at, visitor)) {
        return;
      }
      Timeline a = t.ancestor;
      if (a != null) {
        at = Lsn.min(at, t.metadata.ancestorLsn());
      }
      t = a;
    }
  }

  /** Visits this timeline's own versions; false when the visitor stopped. */
  private boolean visitOwn(Key key, Lsn lsn, BiPredicate<Lsn, Value> visitor) {
    layersLock.readLock().lock();
    try {
      Lsn indexCap = lsn;
      List<InMemoryLayer> mem = inMemoryNewestFirst();
      for (InMemoryLayer m : mem) {
        if (!m.from().isBefore(lsn)) {
          indexCap = Lsn.min(indexCap, m.from());
          continue;
        }
        Iterator<Map.Entry<VersionKey, InMemoryLayer.Entry>> it = m.versionsDescending(key, lsn);
        while (it.hasNext()) {
          Map.Entry<VersionKey, InMemoryLayer.Entry> e = it.next();
          if (!visitor.test(Lsn.of(e.getKey().lsn()), m.read(e.getValue()))) {
            return false;
          }
        }
        indexCap = Lsn.min(indexCap, m.from());
      }
      boolean[] more = {true};
      try (LayerIndex.Cursor c = index.cursor(tenant(), id())) {
        c.history(
            key,
            indexCap,
            (at, ref) -> {
              more[0] = visitor.test(at, readRef(ref));
              return more[0];
            });
      }
      return more[0];
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot read " + tenant() + "/" + id() + ": " + e.getMessage(),
          e);
    } finally {
      layersLock.readLock().unlock();
    }
  }

  /** Guarded by the caller holding layersLock. */
  private List<InMemoryLayer> inMemoryNewestFirst() {
    List<InMemoryLayer> out = new ArrayList<>(frozen.size() + 1);
    if (open != null) {
      out.add(open);
    }
    for (Iterator<InMemoryLayer> it = frozen.descendingIterator(); it.hasNext(); ) {
      out.add(it.next());
    }
    return out;
  }

  private Value readRef(LayerIndex.Ref ref) {
    LayerFile.Reader r = readers.get(ref.layerId());
    if (r == null) {
      throw new LayerStoreException(
          LayerStoreException.Kind.CORRUPT_FILE,
          "the index of "
              + tenant()
              + "/"
              + id()
              + " names layer "
              + ref.layerId()
              + ", which is not open");
    }
    return r.readValue(ref.offset(), ref.length());
  }

  /**
   * The smallest key {@code k}, {@code from <= k < end}, that exists at {@code lsn} (its newest
   * version at or below {@code lsn} is not a tombstone), across this timeline and its ancestors.
   */
  public Optional<Key> nextKey(Key from, Key end, Lsn lsn) {
    Key cur = from;
    while (cur != null && cur.compareTo(end) < 0) {
      Key candidate = null;
      for (Timeline t = this; t != null; t = t.ancestor) {
        t.checkUsable();
        Key c = t.ownCeilingKey(cur);
        if (c != null && (candidate == null || c.compareTo(candidate) < 0)) {
          candidate = c;
        }
      }
      if (candidate == null || candidate.compareTo(end) >= 0) {
        return Optional.empty();
      }
      if (newest(candidate, lsn).isPresent()) {
        return Optional.of(candidate);
      }
      cur = candidate.next();
    }
    return Optional.empty();
  }

  private Key ownCeilingKey(Key from) {
    layersLock.readLock().lock();
    try {
      Key best = null;
      for (InMemoryLayer m : inMemoryNewestFirst()) {
        Key c = m.ceilingKey(from);
        if (c != null && (best == null || c.compareTo(best) < 0)) {
          best = c;
        }
      }
      try (LayerIndex.Cursor c = index.cursor(tenant(), id())) {
        Key k = c.ceilingKey(from);
        if (k != null && (best == null || k.compareTo(best) < 0)) {
          best = k;
        }
      }
      return best;
    } finally {
      layersLock.readLock().unlock();
    }
  }

  /** Closes files; unflushed versions are dropped (the WAL is ingested again after a restart). */
  void close() {
    layersLock.writeLock().lock();
    try {
      closed = true;
      if (open != null) {
        open.delete();
        open = null;
      }
      frozen.forEach(InMemoryLayer::delete);
      frozen.clear();
      readers.values().forEach(LayerFile.Reader::close);
      readers.clear();
      waiters
          .values()
          .forEach(
              f ->
                  f.completeExceptionally(
                      new LayerStoreException(
                          LayerStoreException.Kind.IO,
                          "timeline " + tenant() + "/" + id() + " closed")));
    } finally {
      layersLock.writeLock().unlock();
    }
  }

  @Override
  public String toString() {
    return tenant() + "/" + id();
  }

  /** File suffixes of the timeline directory, defined in one place. */
  static final class DurableFilesSuffix {
    static final String EPHEMERAL = ".ephemeral";
    static final String LAYER = ".layer";

    private DurableFilesSuffix() {}
  }
}
