package io.zenith.layer;

import io.zenith.wal.Lsn;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.ConcurrentNavigableMap;
import java.util.concurrent.ConcurrentSkipListMap;

/**
 * The newest versions of a timeline, not yet in a layer file: encoded values appended to an
 * ephemeral file (not fsynced: after a crash the WAL is ingested again from the timeline's
 * disk-consistent LSN) and an in-memory index of them.
 *
 * <p>One writer (the ingest stage) calls {@link #put}; any number of readers read concurrently.
 * Once {@link #freeze frozen} it never changes again and waits to be written to a layer file.
 */
final class InMemoryLayer {
  /** Where a version's encoded value is in the ephemeral file. */
  record Entry(long offset, int length, int flags) {}

  private final Path file;

  /** The single writer's channel. */
  private final FileChannel ch;

  /**
   * Readers' own: an interrupt of a reader's thread (a cancelled basebackup or compaction) closes
   * the channel it reads, which must never be the writer's.
   */
  private final ReadOnlyFile reads;

  private final Lsn from;
  private final ConcurrentSkipListMap<VersionKey, Entry> index = new ConcurrentSkipListMap<>();
  private final long createdNanos = System.nanoTime();

  /** Guarded by the single writer; read by others only through {@link #bytes()}. */
  private volatile long size;

  private volatile Lsn to;
  private volatile Lsn prevRecordAtTo = Lsn.INVALID;
  private volatile boolean frozen;

  /** The id of the layer file it is flushed to, once its first flush attempt allocated one. */
  private volatile long layerId;

  InMemoryLayer(Path file, Lsn from) throws IOException {
    this.file = file;
    this.from = from;
    this.to = from;
    this.ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
    ReadOnlyFile r;
    try {
      r = new ReadOnlyFile(file);
    } catch (IOException e) {
      ch.close();
      throw e;
    }
    this.reads = r;
  }

  /** Versions here have LSNs above this. */
  Lsn from() {
    return from;
  }

  /** The last record end ingested into this layer (inclusive upper bound of its versions). */
  Lsn to() {
    return to;
  }

  Lsn prevRecordAtTo() {
    return prevRecordAtTo;
  }

  long bytes() {
    return size;
  }

  long ageNanos() {
    return System.nanoTime() - createdNanos;
  }

  boolean isEmpty() {
    return index.isEmpty();
  }

  int entryCount() {
    return index.size();
  }

  void put(Key key, Lsn lsn, Value value) throws IOException {
    if (frozen) {
      throw new IllegalStateException("layer is frozen");
    }
    if (!lsn.isAfter(from)) {
      throw new IllegalArgumentException(
          "version " + key + "@" + lsn + " is not after the layer start " + from);
    }
    byte[] encoded = value.encode();
    ByteBuffer b = ByteBuffer.wrap(encoded);
    long at = size;
    while (b.hasRemaining()) {
      at += ch.write(b, at);
    }
    index.put(
        new VersionKey(key, lsn.value()),
        new Entry(size, encoded.length, LayerFile.flagsOf(value)));
    size = at;
  }

  /** Records that everything up to {@code end} (a record end) is in this layer. */
  void advance(Lsn end, Lsn prevRecord) {
    this.to = end;
    this.prevRecordAtTo = prevRecord;
  }

  void freeze() {
    frozen = true;
  }

  boolean isFrozen() {
    return frozen;
  }

  /** 0 until {@link #setLayerId}. */
  long layerId() {
    return layerId;
  }

  void setLayerId(long id) {
    this.layerId = id;
  }

  /** Versions of {@code key} at or below {@code lsn}, newest first. */
  Iterator<Map.Entry<VersionKey, Entry>> versionsDescending(Key key, Lsn lsn) {
    ConcurrentNavigableMap<VersionKey, Entry> m =
        index.subMap(new VersionKey(key, 0), true, new VersionKey(key, lsn.value()), true);
    return m.descendingMap().entrySet().iterator();
  }

  /** The smallest key at or after {@code from} with any version here, or null. */
  Key ceilingKey(Key from) {
    VersionKey k = index.ceilingKey(new VersionKey(from, 0));
    return k == null ? null : k.key();
  }

  Value read(Entry e) throws IOException {
    return Value.decode(bytes(e));
  }

  private byte[] bytes(Entry e) throws IOException {
    ByteBuffer b = reads.read(e.offset(), e.length());
    if (b == null) {
      throw new IOException("ephemeral file " + file + " is shorter than its index");
    }
    return b.array();
  }

  /** Writes every version, in order, to a layer file writer. */
  void writeTo(LayerFile.Writer w) throws IOException {
    for (Map.Entry<VersionKey, Entry> e : index.entrySet()) {
      Entry en = e.getValue();
      w.add(e.getKey().key(), Lsn.of(e.getKey().lsn()), bytes(en), en.flags());
    }
  }

  /** Smallest and largest key (for the layer file header). */
  KeyRange keyRange() {
    Key first = index.firstKey().key();
    Key last = index.lastKey().key();
    Key end = last.next();
    return new KeyRange(first, end == null ? Key.MAX : end);
  }

  void delete() {
    try {
      reads.close();
      ch.close();
      Files.deleteIfExists(file);
    } catch (IOException e) {
      // an ephemeral file left behind is removed at the next start
    }
  }
}
