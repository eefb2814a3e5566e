package io.zenith.layer;

import static io.zenith.layer.IndexFormat.VERSION_KEY_SIZE;
import static io.zenith.layer.IndexFormat.decodeLayer;
import static io.zenith.layer.IndexFormat.decodeRef;
import static io.zenith.layer.IndexFormat.encodeLayer;
import static io.zenith.layer.IndexFormat.encodeRef;
import static io.zenith.layer.IndexFormat.encodeState;
import static io.zenith.layer.IndexFormat.layerKey;
import static io.zenith.layer.IndexFormat.timelinePrefix;
import static io.zenith.layer.IndexFormat.versionKey;

import io.zenith.wal.Fsync;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.rocksdb.BlockBasedTableConfig;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.DBOptions;
import org.rocksdb.LRUCache;
import org.rocksdb.ReadOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.Status;
import org.rocksdb.WriteBatch;
import org.rocksdb.WriteOptions;

/**
 * The pageserver's RocksDB: where each version of each key of each timeline is, plus timeline state
 * and the layer registry. Derived data: {@link LayerStore} rebuilds it from the layer files and
 * timeline metadata files when it is missing or unreadable.
 *
 * <p>Key layout (big-endian, so byte order is numeric order):
 *
 * <pre>
 * CF versions:  tenant 16B | timeline 16B | key 18B | lsn u64
 *               → layer id u64 | blob offset u64 | blob length u32 | flags u8 (1 base, 2 tombstone)
 * CF timelines: tenant 16B | timeline 16B
 *               → u8 version (1) | disk_consistent_lsn u64 | prev_record_lsn at it u64
 *                 | remote_consistent_lsn u64
 * CF layers:    tenant 16B | timeline 16B | layer id u64
 *               → u8 kind | u64 lsn from | u64 lsn to | u64 file size | u16 n | file name (n B UTF-8)
 *                 | u8 level (absent in entries written before 2026-12: level 0)
 * default:      "next-layer-id" → u64; "format" → u32 (1)
 * </pre>
 *
 * <p>Thread-safe (RocksDB is). Every write that makes state durable uses a synced WriteBatch. Every
 * use holds {@link #lifecycle} shared and {@link #close} takes it exclusively: a call racing a
 * shutdown fails with a {@link LayerStoreException} instead of touching freed native handles, which
 * would kill the whole process.
 */
final class LayerIndex implements AutoCloseable {
  static final int FORMAT = 1;
  private static final byte[] NEXT_LAYER_ID = "next-layer-id".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] FORMAT_KEY = "format".getBytes(StandardCharsets.US_ASCII);

  /** Where a version's blob is. */
  record Ref(long layerId, long offset, int length, int flags) {
    boolean isBase() {
      return (flags & LayerFile.FLAG_BASE) != 0;
    }

    boolean isTombstone() {
      return (flags & LayerFile.FLAG_TOMBSTONE) != 0;
    }
  }

  /** A registered layer file. */
  record LayerInfo(
      long layerId,
      LayerFile.Kind kind,
      Lsn lsnFrom,
      Lsn lsnTo,
      long size,
      String fileName,
      int level) {
    /** The registry entry of an open layer file. */
    static LayerInfo of(LayerFile.Reader r, long size) {
      LayerFile.Header h = r.header();
      return new LayerInfo(
          h.layerId(),
          h.kind(),
          h.lsnFrom(),
          h.lsnTo(),
          size,
          r.path().getFileName().toString(),
          h.level());
    }

    boolean isL0Delta() {
      return kind == LayerFile.Kind.DELTA && level == 0;
    }
  }

  /** A layer file to register, with the versions it holds. */
  record NewLayer(LayerInfo info, List<LayerFile.IndexEntry> entries) {}

  /**
   * What one maintenance step changes in a timeline's index, committed in one synced batch: layers
   * (and their versions) added, versions removed, layers unregistered (their files are deleted
   * after the commit). A version both added and removed stays added.
   */
  record Changes(
      List<NewLayer> added, List<VersionRef> removedVersions, List<Long> removedLayers) {}

  /** A version of a key: where it is in the index. */
  record VersionRef(Key key, Lsn lsn) {}

  /** One version as a scan sees it. */
  record Entry(Key key, Lsn lsn, Ref ref) {}

  /** Durable per-timeline state. */
  record TimelineState(Lsn diskConsistentLsn, Lsn prevRecordLsn, Lsn remoteConsistentLsn) {}

  static {
    RocksDB.loadLibrary();
  }

  private final DBOptions dbOptions;
  private final ColumnFamilyOptions cfOptions;
  private final LRUCache cache;
  private final RocksDB db;
  private final List<ColumnFamilyHandle> handles;
  private final ColumnFamilyHandle versions;
  private final ColumnFamilyHandle timelines;
  private final ColumnFamilyHandle layers;
  private final WriteOptions sync = new WriteOptions().setSync(true);
  private final Path dir;
  private final ReadOptions read = new ReadOptions();
  private final Object idLock = new Object();
  private final ReentrantReadWriteLock lifecycle = new ReentrantReadWriteLock();
  private final Set<Cursor> cursors = ConcurrentHashMap.newKeySet();

  /** Guarded by {@link #lifecycle}. */
  private boolean closed;

  private LayerIndex(
      DBOptions o, ColumnFamilyOptions c, LRUCache cache, RocksDB db, List<ColumnFamilyHandle> h) {
    this.dbOptions = o;
    this.cfOptions = c;
    this.cache = cache;
    this.db = db;
    this.handles = h;
    this.versions = h.get(1);
    this.timelines = h.get(2);
    this.layers = h.get(3);
    this.dir = Path.of(db.getName());
  }

  /**
   * Runs a write with {@code sync=true} through {@link Fsync}: RocksDB fsyncs its WAL, and an I/O
   * error it reports is a failed fsync (fatal), as is one a test device injects. "No space" is not:
   * the write failed before any fsync, and the caller handles it as the write failure it is.
   */
  private void synced(Fsync.SyncedWrite<RocksDBException> write) throws RocksDBException {
    Fsync.syncedWrite(dir, write, LayerIndex::isSyncFailure);
  }

  /** RocksDB's "no space" I/O error: a write that failed for want of space, before any fsync. */
  static boolean isNoSpace(RocksDBException e) {
    Status s = e.getStatus();
    return s != null
        && s.getCode() == Status.Code.IOError
        && s.getSubCode() == Status.SubCode.NoSpace;
  }

  static boolean isSyncFailure(RocksDBException e) {
    Status s = e.getStatus();
    return s != null
        && s.getCode() == Status.Code.IOError
        && s.getSubCode() != Status.SubCode.NoSpace;
  }

  /**
   * Opens (creating if missing) the index in {@code dir}.
   *
   * @throws RocksDBException when RocksDB cannot open it (the caller rebuilds)
   */
  static LayerIndex open(Path dir, long blockCacheBytes) throws RocksDBException {
    return open(dir, blockCacheBytes, MAX_WAL_BYTES);
  }

  /**
   * RocksDB's own write-ahead log, at most (about). A log file is deleted only once every column
   * family's memtable holding its writes is flushed; the small column families (layers, timeline
   * states) take a few bytes per layer flush and would never fill a memtable, so without a cap
   * every log since the start is kept: 479 MiB of them after a 10-minute pgbench (the bounded
   * storage benchmark). Past the cap RocksDB flushes the column families that pin the oldest log.
   */
  static final long MAX_WAL_BYTES = 64L << 20;

  static LayerIndex open(Path dir, long blockCacheBytes, long maxWalBytes) throws RocksDBException {
    LRUCache cache = new LRUCache(blockCacheBytes);
    ColumnFamilyOptions cf =
        new ColumnFamilyOptions()
            .setTableFormatConfig(new BlockBasedTableConfig().setBlockCache(cache));
    DBOptions o =
        new DBOptions()
            .setCreateIfMissing(true)
            .setCreateMissingColumnFamilies(true)
            .setMaxBackgroundJobs(2)
            .setKeepLogFileNum(3)
            .setMaxTotalWalSize(maxWalBytes);
    List<ColumnFamilyDescriptor> d =
        List.of(
            new ColumnFamilyDescriptor(RocksDB.DEFAULT_COLUMN_FAMILY, cf),
            new ColumnFamilyDescriptor("versions".getBytes(StandardCharsets.US_ASCII), cf),
            new ColumnFamilyDescriptor("timelines".getBytes(StandardCharsets.US_ASCII), cf),
            new ColumnFamilyDescriptor("layers".getBytes(StandardCharsets.US_ASCII), cf));
    List<ColumnFamilyHandle> h = new ArrayList<>();
    RocksDB db;
    try {
      db = RocksDB.open(o, dir.toString(), d, h);
    } catch (RocksDBException e) {
      o.close();
      cf.close();
      cache.close();
      throw e;
    }
    LayerIndex idx = new LayerIndex(o, cf, cache, db, h);
    byte[] format = db.get(FORMAT_KEY);
    if (format == null) {
      idx.synced(() -> db.put(idx.sync, FORMAT_KEY, ByteBuffer.allocate(4).putInt(FORMAT).array()));
    } else if (ByteBuffer.wrap(format).getInt() != FORMAT) {
      idx.close();
      throw new RocksDBException(
          "index format " + ByteBuffer.wrap(format).getInt() + " is not " + FORMAT);
    }
    return idx;
  }

  /** Long-lived work that walks versions; close it. Not thread-safe. */
  final class Cursor implements AutoCloseable {
    private final RocksIterator it;
    private final byte[] prefix;
    private boolean released;

    private Cursor(TenantId t, TimelineId tl) {
      prefix = timelinePrefix(t, tl);
      it = db.newIterator(versions, read);
    }

    /**
     * Visits versions of {@code key} at or below {@code lsn}, newest first, until the visitor says
     * stop.
     */
    void history(Key key, Lsn lsn, java.util.function.BiPredicate<Lsn, Ref> visitor) {
      enter();
      try {
        historyLocked(key, lsn, visitor);
      } finally {
        exit();
      }
    }

    private void historyLocked(Key key, Lsn lsn, java.util.function.BiPredicate<Lsn, Ref> visitor) {
      byte[] target = new byte[VERSION_KEY_SIZE];
      System.arraycopy(prefix, 0, target, 0, 32);
      key.writeTo(target, 32);
      ByteBuffer.wrap(target).putLong(32 + Key.SIZE, lsn.value());
      it.seekForPrev(target);
      while (it.isValid()) {
        byte[] k = it.key();
        if (!Arrays.equals(k, 0, 32 + Key.SIZE, target, 0, 32 + Key.SIZE)) {
          return;
        }
        Lsn at = Lsn.of(ByteBuffer.wrap(k).getLong(32 + Key.SIZE));
        if (!visitor.test(at, decodeRef(it.value()))) {
          return;
        }
        it.prev();
      }
    }

    /** The smallest key at or after {@code from} with any version in this timeline, or null. */
    Key ceilingKey(Key from) {
      enter();
      try {
        return ceilingKeyLocked(from);
      } finally {
        exit();
      }
    }

    private Key ceilingKeyLocked(Key from) {
      byte[] target = new byte[32 + Key.SIZE];
      System.arraycopy(prefix, 0, target, 0, 32);
      from.writeTo(target, 32);
      it.seek(target);
      if (!it.isValid()) {
        return null;
      }
      byte[] k = it.key();
      if (!Arrays.equals(k, 0, 32, prefix, 0, 32)) {
        return null;
      }
      return Key.readFrom(k, 32);
    }

    /** Idempotent; a no-op once the index is closed (which released the iterator). */
    @Override
    public void close() {
      lifecycle.readLock().lock();
      try {
        if (!closed) {
          release();
        }
      } finally {
        lifecycle.readLock().unlock();
      }
    }

    private synchronized void release() {
      if (!released) {
        released = true;
        cursors.remove(this);
        it.close();
      }
    }
  }

  Cursor cursor(TenantId t, TimelineId tl) {
    enter();
    try {
      Cursor c = new Cursor(t, tl);
      cursors.add(c);
      return c;
    } finally {
      exit();
    }
  }

  /** Enters a use of the native handles: fails once closed (see {@link #lifecycle}). */
  void enter() {
    lifecycle.readLock().lock();
    if (closed) {
      lifecycle.readLock().unlock();
      throw new LayerStoreException(LayerStoreException.Kind.IO, "the layer index is closed");
    }
  }

  void exit() {
    lifecycle.readLock().unlock();
  }

  /**
   * Makes the next allocated layer id greater than {@code id}: a rebuilt index must never hand out
   * the id of a layer file that exists (ids name files and key the version entries).
   */
  void reserveLayerIdsUpTo(long id) throws RocksDBException {
    enter();
    try {
      synchronized (idLock) {
        byte[] v = db.get(NEXT_LAYER_ID);
        long next = v == null ? 1 : ByteBuffer.wrap(v).getLong();
        if (next <= id) {
          synced(() -> db.put(sync, NEXT_LAYER_ID, ByteBuffer.allocate(8).putLong(id + 1).array()));
        }
      }
    } finally {
      exit();
    }
  }

  long allocateLayerId() throws RocksDBException {
    enter();
    try {
      synchronized (idLock) {
        byte[] v = db.get(NEXT_LAYER_ID);
        long id = v == null ? 1 : ByteBuffer.wrap(v).getLong();
        synced(() -> db.put(sync, NEXT_LAYER_ID, ByteBuffer.allocate(8).putLong(id + 1).array()));
        return id;
      }
    } finally {
      exit();
    }
  }

  /** Makes a flushed layer visible, together with the timeline's new state: one synced batch. */
  void commitLayer(
      TenantId t,
      TimelineId tl,
      LayerInfo info,
      List<LayerFile.IndexEntry> entries,
      TimelineState state)
      throws RocksDBException {
    enter();
    try {
      try (WriteBatch batch = new WriteBatch()) {
        if (info != null) {
          addLayer(batch, t, tl, info, entries);
        }
        batch.put(timelines, timelinePrefix(t, tl), encodeState(state));
        synced(() -> db.write(sync, batch));
      }
    } finally {
      exit();
    }
  }

  private void addLayer(
      WriteBatch batch,
      TenantId t,
      TimelineId tl,
      LayerInfo info,
      List<LayerFile.IndexEntry> entries)
      throws RocksDBException {
    for (LayerFile.IndexEntry e : entries) {
      batch.put(
          versions,
          versionKey(t, tl, e.key(), e.lsn()),
          encodeRef(new Ref(info.layerId(), e.offset(), e.length(), e.flags())));
    }
    batch.put(layers, layerKey(t, tl, info.layerId()), encodeLayer(info));
  }

  /**
   * Rebuild step: registers an existing layer file without touching timeline state, and moves the
   * layer id counter past its id (the counter was lost with the index: a new layer must never reuse
   * the id, hence the file name and the index references, of one on disk).
   */
  void registerLayer(TenantId t, TimelineId tl, LayerInfo info, List<LayerFile.IndexEntry> entries)
      throws RocksDBException {
    enter();
    try {
      synchronized (idLock) {
        try (WriteBatch batch = new WriteBatch()) {
          addLayer(batch, t, tl, info, entries);
          byte[] v = db.get(NEXT_LAYER_ID);
          long next = v == null ? 1 : ByteBuffer.wrap(v).getLong();
          if (info.layerId() >= next) {
            batch.put(NEXT_LAYER_ID, ByteBuffer.allocate(8).putLong(info.layerId() + 1).array());
          }
          synced(() -> db.write(sync, batch));
        }
      }
    } finally {
      exit();
    }
  }

  void putState(TenantId t, TimelineId tl, TimelineState state) throws RocksDBException {
    enter();
    try {
      synced(() -> db.put(timelines, sync, timelinePrefix(t, tl), encodeState(state)));
    } finally {
      exit();
    }
  }

  TimelineState state(TenantId t, TimelineId tl) throws RocksDBException {
    enter();
    try {
      byte[] v = db.get(timelines, timelinePrefix(t, tl));
      if (v == null) {
        return null;
      }
      ByteBuffer b = ByteBuffer.wrap(v);
      if (b.get() != 1) {
        throw new RocksDBException("unknown timeline state version");
      }
      return new TimelineState(Lsn.of(b.getLong()), Lsn.of(b.getLong()), Lsn.of(b.getLong()));
    } finally {
      exit();
    }
  }

  /** The registered layers of a timeline, by id. */
  List<LayerInfo> layers(TenantId t, TimelineId tl) {
    enter();
    try {
      byte[] prefix = timelinePrefix(t, tl);
      List<LayerInfo> out = new ArrayList<>();
      try (RocksIterator it = db.newIterator(layers, read)) {
        collectLayers(it, prefix, out);
      }
      return out;
    } finally {
      exit();
    }
  }

  static void collectLayers(RocksIterator it, byte[] prefix, List<LayerInfo> out) {
    for (it.seek(prefix); it.isValid(); it.next()) {
      byte[] k = it.key();
      if (!Arrays.equals(k, 0, 32, prefix, 0, 32)) {
        break;
      }
      out.add(decodeLayer(k, it.value()));
    }
  }

  /** A consistent view of one timeline's index for a maintenance pass; close it. */
  IndexSnapshot snapshot(TenantId t, TimelineId tl) {
    enter();
    try {
      return new IndexSnapshot(this, db, versions, layers, timelinePrefix(t, tl));
    } finally {
      exit();
    }
  }

  /** Commits one maintenance step of a timeline ({@link Changes}) in one synced batch. */
  void commit(TenantId t, TimelineId tl, Changes changes) throws RocksDBException {
    enter();
    try {
      try (WriteBatch batch = new WriteBatch()) {
        for (VersionRef v : changes.removedVersions()) {
          batch.delete(versions, versionKey(t, tl, v.key(), v.lsn()));
        }
        for (NewLayer l : changes.added()) {
          addLayer(batch, t, tl, l.info(), l.entries());
        }
        for (long id : changes.removedLayers()) {
          batch.delete(layers, layerKey(t, tl, id));
        }
        synced(() -> db.write(sync, batch));
      }
    } finally {
      exit();
    }
  }

  /** Removes everything of a timeline (used when its files are rebuilt or it is deleted). */
  void deleteTimeline(TenantId t, TimelineId tl) throws RocksDBException {
    enter();
    try {
      byte[] from = timelinePrefix(t, tl);
      byte[] to = timelinePrefix(t, tl);
      // the prefix + 1 in the last byte position that does not overflow
      int i = to.length - 1;
      while (i >= 0 && ++to[i] == 0) {
        i--;
      }
      try (WriteBatch batch = new WriteBatch()) {
        batch.deleteRange(versions, from, to);
        batch.deleteRange(layers, from, to);
        batch.delete(timelines, from);
        synced(() -> db.write(sync, batch));
      }
    } finally {
      exit();
    }
  }

  /** Waits for calls in progress; later calls fail. Idempotent. */
  @Override
  public void close() {
    lifecycle.writeLock().lock();
    try {
      if (closed) {
        return;
      }
      closed = true;
      List.copyOf(cursors).forEach(Cursor::release);
      closeHandles();
    } finally {
      lifecycle.writeLock().unlock();
    }
  }

  private void closeHandles() {
    for (ColumnFamilyHandle h : handles) {
      h.close();
    }
    db.close();
    sync.close();
    read.close();
    dbOptions.close();
    cfOptions.close();
    cache.close();
  }
}
