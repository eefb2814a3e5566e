package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.BiPredicate;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The layers of one timeline (not its ancestors'): the open in-memory layer, the frozen ones
 * waiting to be flushed, and the open readers of its layer files; and the read path over them and
 * the RocksDB index.
 *
 * <p>Thread-safe. The layer list is guarded by a read-write lock: readers hold the read lock while
 * they collect versions, so a layer is never removed under them; the open layer is created, frozen
 * and removed under the write lock. The ingest thread (the single writer) reads the open layer
 * without the lock, since only it replaces it.
 */
final class TimelineLayers {
  private static final Logger log = LoggerFactory.getLogger(TimelineLayers.class);

  private final TenantId tenant;
  private final TimelineId id;
  private final Path dir;
  private final LayerIndex index;
  private final LayerStoreConfig config;
  private final Map<Long, LayerFile.Reader> readers = new ConcurrentHashMap<>();
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  private final AtomicLong ephemeralSeq = new AtomicLong();

  /** Guarded by lock (write to change; read to look). Newest last. */
  private final ArrayDeque<InMemoryLayer> frozen = new ArrayDeque<>();

  /**
   * Changed under the write lock; volatile so that the ingest thread can look at it without the
   * lock ({@link #freezeIfDue} once per record, {@link #openLayer}) while a checkpoint on another
   * thread freezes it.
   */
  private volatile InMemoryLayer open;

  TimelineLayers(
      TenantId tenant, TimelineId id, Path dir, LayerIndex index, LayerStoreConfig config) {
    this.tenant = tenant;
    this.id = id;
    this.dir = dir;
    this.index = index;
    this.config = config;
  }

  // ---------------------------------------------------------------- writing (ingest thread)

  /** The open layer, created (starting at {@code from}) if there is none. */
  InMemoryLayer openLayer(Supplier<Lsn> from) throws IOException {
    InMemoryLayer l = open;
    if (l == null) {
      lock.writeLock().lock();
      try {
        if (open == null) {
          Path f = nextEphemeralFile();
          Files.deleteIfExists(f);
          open = new InMemoryLayer(f, from.get());
        }
        l = open;
      } finally {
        lock.writeLock().unlock();
      }
    }
    return l;
  }

  /** The open layer, or null; for the ingest thread, which alone replaces it. */
  InMemoryLayer openOrNull() {
    return open;
  }

  private Path nextEphemeralFile() {
    return dir.resolve("ephemeral-" + ephemeralSeq.incrementAndGet() + TimelineFiles.EPHEMERAL);
  }

  /** True when the open layer should be frozen: big enough, or old enough and not empty. */
  boolean freezeDue() {
    InMemoryLayer l = open;
    return l != null
        && !l.isEmpty()
        && (l.bytes() >= config.checkpointDistance()
            || l.ageNanos() >= config.checkpointTimeout().toNanos());
  }

  /**
   * Freezes the open layer if {@link #freezeDue()} or {@code force}; with {@code force} and no open
   * layer, freezes an empty one when {@code position} moved past {@code diskConsistentLsn} (read
   * under the lock, since a flush moves it under the lock too), so that the LSN becomes durable.
   */
  boolean freezeIfDue(
      boolean force, Supplier<Timeline.RecordPosition> position, Supplier<Lsn> diskConsistentLsn)
      throws IOException {
    if (!force && !freezeDue()) {
      // The ingest thread asks after every record. Taking the write lock each time made it wait
      // for every read in flight (image creation, basebackups), and a waiting writer holds up the
      // readers that come after it: ingest slowed down to the readers' pace.
      return false;
    }
    lock.writeLock().lock();
    try {
      InMemoryLayer l = open;
      Timeline.RecordPosition p = position.get();
      Lsn disk = diskConsistentLsn.get();
      boolean advancedWithoutVersions = l == null && p.last().isAfter(disk) && frozen.isEmpty();
      if (l == null && !(force && advancedWithoutVersions)) {
        return false;
      }
      if (l != null && !force && !freezeDue()) {
        return false;
      }
      if (l == null) {
        // Nothing was stored since the last flush, but the LSN moved: record that durably too.
        l = new InMemoryLayer(nextEphemeralFile(), disk);
        l.advance(p.last(), p.prev());
      }
      l.freeze();
      frozen.addLast(l);
      open = null;
      return true;
    } finally {
      lock.writeLock().unlock();
    }
  }

  int frozenCount() {
    lock.readLock().lock();
    try {
      return frozen.size();
    } finally {
      lock.readLock().unlock();
    }
  }

  long openLayerBytes() {
    InMemoryLayer l = open;
    return l == null ? 0 : l.bytes();
  }

  /** The oldest frozen layer, or null. */
  InMemoryLayer oldestFrozen() {
    lock.readLock().lock();
    try {
      return frozen.peekFirst();
    } finally {
      lock.readLock().unlock();
    }
  }

  /**
   * Drops the oldest frozen layer once its file is committed, and runs {@code alsoUnderLock} (the
   * move of the disk-consistent LSN) in the same critical section: a reader sees the versions
   * either in the frozen layer or in the index, never in neither.
   */
  void removeOldestFrozen(Runnable alsoUnderLock) {
    lock.writeLock().lock();
    try {
      frozen.removeFirst();
      alsoUnderLock.run();
    } finally {
      lock.writeLock().unlock();
    }
  }

  void addReader(long layerId, LayerFile.Reader r) {
    readers.put(layerId, r);
  }

  void closeReader(long layerId) {
    LayerFile.Reader r = readers.remove(layerId);
    if (r != null) {
      r.close();
    }
  }

  /**
   * Writes a layer file durably into this timeline's directory and opens it (not registered: the
   * caller commits it). On failure, deletes what it wrote, so that a retry starts from the same
   * directory; a file it cannot delete is deleted at the next start, which keeps no unregistered
   * file. Not on a failed fsync (an Error): that stops the process as is.
   */
  LayerIndex.NewLayer write(LayerFile.Header h, LayerDisk disk, LayerFile.Writer.Source content)
      throws IOException {
    String name = TimelineFiles.layerFileName(h.layerId(), h.lsnFrom(), h.lsnTo());
    Path path = dir.resolve(name);
    try {
      List<LayerFile.IndexEntry> entries = LayerFile.Writer.write(path, h, disk, content);
      LayerFile.Reader r = LayerFile.Reader.open(path);
      addReader(h.layerId(), r);
      return new LayerIndex.NewLayer(LayerIndex.LayerInfo.of(r, Files.size(path)), entries);
    } catch (IOException | RuntimeException e) {
      closeReader(h.layerId());
      deleteQuietly(path);
      deleteQuietly(path.resolveSibling(name + DurableFiles.TEMP_SUFFIX));
      throw e;
    }
  }

  private static void deleteQuietly(Path f) {
    try {
      Files.deleteIfExists(f);
    } catch (IOException e) {
      log.warn("cannot delete {} (it is deleted at the next start): {}", f, e.getMessage());
    }
  }

  /**
   * The open reader of a layer file the index names.
   *
   * @throws LayerStoreException CORRUPT_FILE when it is not open (the index names a missing file)
   */
  LayerFile.Reader reader(long layerId) {
    LayerFile.Reader r = readers.get(layerId);
    if (r == null) {
      throw new LayerStoreException(
          LayerStoreException.Kind.CORRUPT_FILE,
          "the index of " + tenant + "/" + id + " names layer " + layerId + ", which is not open");
    }
    return r;
  }

  /** The open readers of the registered layer files (eviction looks at them). */
  List<LayerFile.Reader> readers() {
    return List.copyOf(readers.values());
  }

  /** The headers of the registered layer files (their ids, kinds, levels, ranges). */
  List<LayerFile.Header> headers() {
    return readers.values().stream().map(LayerFile.Reader::header).toList();
  }

  /** Counts and bytes of the registered layer files by level. */
  LayerStats stats() {
    int l0 = 0;
    int l1 = 0;
    int images = 0;
    long bytes = 0;
    for (LayerFile.Reader r : readers.values()) {
      LayerFile.Header h = r.header();
      if (h.kind() == LayerFile.Kind.IMAGE) {
        images++;
      } else if (h.level() == 0) {
        l0++;
      } else {
        l1++;
      }
      bytes += r.size();
    }
    return new LayerStats(l0, l1, images, bytes);
  }

  /**
   * Closes and deletes layer files that the index no longer names (committed before this call). The
   * readers are removed under the write lock: a reader that collected versions before the commit
   * holds the read lock until it has read them, and one that starts after it sees the new index.
   * The files are deleted after the lock; a crash before that leaves unregistered files, which the
   * next start deletes.
   *
   * @return the bytes freed
   */
  long retire(java.util.Collection<Long> layerIds) throws IOException {
    List<LayerFile.Reader> gone = new ArrayList<>();
    lock.writeLock().lock();
    try {
      for (long id : layerIds) {
        LayerFile.Reader r = readers.remove(id);
        if (r != null) {
          gone.add(r);
        }
      }
    } finally {
      lock.writeLock().unlock();
    }
    long bytes = 0;
    for (int i = 0; i < gone.size(); i++) {
      LayerFile.Reader r = gone.get(i);
      r.close();
      bytes += r.size();
      Files.deleteIfExists(LayerStub.pathOf(r.path())); // before the file: never a stub alone
      Files.deleteIfExists(r.path());
      if (i == 0 && gone.size() > 1) {
        Seams.reached(Seams.Seam.RETIRING);
      }
    }
    if (!gone.isEmpty()) {
      io.zenith.wal.DurableFiles.fsyncDirectory(dir);
    }
    return bytes;
  }

  // ---------------------------------------------------------------- reading (any thread)

  /** Visits this timeline's own versions; false when the visitor stopped. */
  boolean visitOwn(Key key, Lsn lsn, BiPredicate<Lsn, Value> visitor) {
    lock.readLock().lock();
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
      try (LayerIndex.Cursor c = index.cursor(tenant, id)) {
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
          "cannot read " + tenant + "/" + id + ": " + e.getMessage(),
          e);
    } finally {
      lock.readLock().unlock();
    }
  }

  /** Guarded by the caller holding lock. */
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
    return reader(ref.layerId()).readValue(ref.offset(), ref.length());
  }

  /** The smallest key at or after {@code from} with a version of this timeline's own, or null. */
  Key ownCeilingKey(Key from) {
    lock.readLock().lock();
    try {
      Key best = null;
      for (InMemoryLayer m : inMemoryNewestFirst()) {
        Key c = m.ceilingKey(from);
        if (c != null && (best == null || c.compareTo(best) < 0)) {
          best = c;
        }
      }
      try (LayerIndex.Cursor c = index.cursor(tenant, id)) {
        Key k = c.ceilingKey(from);
        if (k != null && (best == null || k.compareTo(best) < 0)) {
          best = k;
        }
      }
      return best;
    } finally {
      lock.readLock().unlock();
    }
  }

  /**
   * Deletes the in-memory layers and closes the readers, in one critical section with {@code first}
   * (the timeline marks itself closed, so no reader starts on a closed set) and {@code last} (it
   * fails the readers waiting for an LSN).
   */
  void close(Runnable first, Runnable last) {
    lock.writeLock().lock();
    try {
      first.run();
      if (open != null) {
        open.delete();
        open = null;
      }
      frozen.forEach(InMemoryLayer::delete);
      frozen.clear();
      readers.values().forEach(LayerFile.Reader::close);
      readers.clear();
      last.run();
    } finally {
      lock.writeLock().unlock();
    }
  }
}
