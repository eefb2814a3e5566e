package io.zenith.layer;

import static io.zenith.layer.IndexFormat.decodeRef;

import io.zenith.wal.Lsn;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ReadOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksIterator;
import org.rocksdb.Snapshot;

/**
 * A consistent view of one timeline's index (a RocksDB snapshot) for a maintenance pass: its
 * registered layers and all its versions in (key, lsn) order, as they were when it was taken; what
 * flushes commit meanwhile is not in it. Every use enters the index's lifecycle, so a pass racing a
 * shutdown fails instead of touching freed handles. Not thread-safe; close it.
 */
final class IndexSnapshot implements AutoCloseable {
  private final LayerIndex index;
  private final RocksDB db;
  private final ColumnFamilyHandle versions;
  private final ColumnFamilyHandle layers;
  private final byte[] prefix;
  private final Snapshot snapshot;
  private final ReadOptions options;
  private boolean released;

  IndexSnapshot(
      LayerIndex index,
      RocksDB db,
      ColumnFamilyHandle versions,
      ColumnFamilyHandle layers,
      byte[] timelinePrefix) {
    this.index = index;
    this.db = db;
    this.versions = versions;
    this.layers = layers;
    this.prefix = timelinePrefix;
    this.snapshot = db.getSnapshot();
    this.options = new ReadOptions().setSnapshot(snapshot);
  }

  /** The layers registered when the snapshot was taken. */
  List<LayerIndex.LayerInfo> layers() {
    index.enter();
    try {
      List<LayerIndex.LayerInfo> out = new ArrayList<>();
      try (RocksIterator it = db.newIterator(layers, options)) {
        LayerIndex.collectLayers(it, prefix, out);
      }
      return out;
    } finally {
      index.exit();
    }
  }

  /** What a pass does with each version; may fail with the I/O of writing a layer file. */
  @FunctionalInterface
  interface Visitor {
    void visit(LayerIndex.Entry e) throws IOException;
  }

  /** Visits every version of the timeline in (key, lsn) order. */
  void forEachVersion(Visitor visitor) throws IOException {
    forEachVersion(KeyRange.ALL, visitor);
  }

  /** Visits the versions of the keys in {@code range} in (key, lsn) order. */
  void forEachVersion(KeyRange range, Visitor visitor) throws IOException {
    byte[] start = new byte[32 + Key.SIZE];
    System.arraycopy(prefix, 0, start, 0, 32);
    range.start().writeTo(start, 32);
    index.enter();
    try (RocksIterator it = db.newIterator(versions, options)) {
      for (it.seek(start); it.isValid(); it.next()) {
        byte[] k = it.key();
        if (!Arrays.equals(k, 0, 32, prefix, 0, 32)) {
          break;
        }
        Key key = Key.readFrom(k, 32);
        if (key.compareTo(range.end()) >= 0) {
          break;
        }
        visitor.visit(
            new LayerIndex.Entry(
                key, Lsn.of(ByteBuffer.wrap(k).getLong(32 + Key.SIZE)), decodeRef(it.value())));
      }
    } finally {
      index.exit();
    }
  }

  /** Releases the snapshot; a no-op once the index is closed (which freed it) or twice. */
  @Override
  public void close() {
    if (released) {
      return;
    }
    released = true;
    try {
      index.enter();
    } catch (LayerStoreException closed) {
      return;
    }
    try {
      options.close();
      db.releaseSnapshot(snapshot);
    } finally {
      index.exit();
    }
  }
}
