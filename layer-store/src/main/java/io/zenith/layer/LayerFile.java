package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.Serial;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;
import net.jpountz.lz4.LZ4Compressor;
import net.jpountz.lz4.LZ4Exception;
import net.jpountz.lz4.LZ4Factory;
import net.jpountz.lz4.LZ4SafeDecompressor;

/**
 * An immutable layer file: the versions of a key range over an LSN range of one timeline. It is the
 * source of truth for its versions: the RocksDB index only repeats what the file's own index says,
 * and is rebuilt from the files when lost. All integers big-endian.
 *
 * <pre>
 * header, 128 bytes
 *     0  u32  magic 0x5A4C4159 ("ZLAY")
 *     4  u16  format version (1)
 *     6  u8   kind: 1 delta (WAL-derived versions), 2 image (one LSN, images only)
 *     7  u8   level: 0 for a flushed (L0) delta, 1 for a compacted (L1) delta or an image
 *     8  16B  tenant id
 *    24  16B  timeline id
 *    40  18B  first key (inclusive)
 *    58  18B  last key (exclusive)
 *    76  u64  LSN from (exclusive: versions have lsn &gt; from)
 *    84  u64  LSN to (inclusive)
 *    92  u64  layer id
 *   100  24B  zero
 *   124  u32  CRC32C of bytes [0, 124)
 * blobs, from offset 128, one per version, in index order
 *     u8   flags: 1 = LZ4-compressed
 *     u32  stored length n
 *     u32  raw length
 *     n B  stored bytes (the encoded {@link Value}, possibly compressed)
 *     u32  CRC32C of the 9 header bytes and the n stored bytes
 * index, sorted by (key, lsn): entries of 39 bytes
 *     18B key, u64 lsn, u64 blob offset, u32 blob length (all of the blob's bytes), u8 flags
 *     (1 = base version, 2 = tombstone)
 * footer, the last 32 bytes
 *     u64 index offset, u64 entry count, u32 CRC32C of the index, u32 0,
 *     u32 magic 0x5A4C4146 ("ZLAF"), u32 CRC32C of the footer's first 28 bytes
 * </pre>
 *
 * Changelog: version 1 (2026-11): first format. 2026-12: byte 7, written 0 until then, is the level
 * (compaction writes level 1); readers of older files see level 0, which they are.
 *
 * <p>Written once by {@link Writer} through {@link DurableFiles#write} (temp, fsync, rename, fsync
 * directory), its bytes through a {@link LayerDisk}; a file with a valid footer is complete.
 */
public final class LayerFile {
  private LayerFile() {}

  static final int MAGIC = 0x5A4C4159;
  static final int FOOTER_MAGIC = 0x5A4C4146;
  static final int FORMAT_VERSION = 1;
  static final int HEADER_SIZE = 128;
  static final int FOOTER_SIZE = 32;
  static final int INDEX_ENTRY_SIZE = Key.SIZE + 8 + 8 + 4 + 1;
  static final int BLOB_HEADER = 9;
  static final int BLOB_OVERHEAD = BLOB_HEADER + 4;

  /** Values larger than this are LZ4-compressed when that saves space. */
  static final int COMPRESS_THRESHOLD = 256;

  static final int FLAG_BASE = 1;
  static final int FLAG_TOMBSTONE = 2;

  private static final LZ4Factory LZ4 = LZ4Factory.fastestInstance();

  public enum Kind {
    DELTA(1),
    IMAGE(2);

    final int code;

    Kind(int code) {
      this.code = code;
    }

    static Kind of(int code) {
      for (Kind k : values()) {
        if (k.code == code) {
          return k;
        }
      }
      return null;
    }
  }

  /**
   * What the header says.
   *
   * @param level 0 for a delta layer written by a flush (it covers every key the layer had), 1 for
   *     a delta layer written by compaction (a key range of merged L0 layers) and for images
   */
  public record Header(
      Kind kind,
      TenantId tenant,
      TimelineId timeline,
      KeyRange keys,
      Lsn lsnFrom,
      Lsn lsnTo,
      long layerId,
      int level) {
    /** A flushed (level 0) layer's header. */
    public Header(
        Kind kind,
        TenantId tenant,
        TimelineId timeline,
        KeyRange keys,
        Lsn lsnFrom,
        Lsn lsnTo,
        long layerId) {
      this(kind, tenant, timeline, keys, lsnFrom, lsnTo, layerId, 0);
    }
  }

  /** One index entry: where a version's blob is. */
  public record IndexEntry(Key key, Lsn lsn, long offset, int length, int flags) {
    public boolean isBase() {
      return (flags & FLAG_BASE) != 0;
    }

    public boolean isTombstone() {
      return (flags & FLAG_TOMBSTONE) != 0;
    }
  }

  static int flagsOf(Value v) {
    return (v.isBase() ? FLAG_BASE : 0) | (v.isTombstone() ? FLAG_TOMBSTONE : 0);
  }

  /**
   * Writing a layer file's bytes failed (typically {@code ENOSPC}: the disk is full), before
   * anything of it was durable; its temporary file is deleted. Not a failed fsync.
   */
  static final class WriteException extends IOException {
    @Serial private static final long serialVersionUID = 1L;

    WriteException(Path path, IOException cause) {
      super("cannot write layer file " + path + ": " + cause.getMessage(), cause);
    }
  }

  /**
   * Writes a layer file. Add versions in (key, lsn) order with {@link #add}, then {@link
   * #finish()}: the file is durable when it returns. Not thread-safe.
   */
  static final class Writer {
    private final Header header;
    private final FileChannel ch;
    private final Path path;
    private final LayerDisk disk;
    private final List<IndexEntry> index = new ArrayList<>();
    private final LZ4Compressor compressor = LZ4.fastCompressor();
    private final CRC32C crc = new CRC32C();
    private long offset = HEADER_SIZE;
    private IndexEntry last;
    private ByteBuffer out = ByteBuffer.allocate(1 << 16);

    private Writer(Header header, FileChannel ch, Path path, LayerDisk disk) throws IOException {
      this.header = header;
      this.ch = ch;
      this.path = path;
      this.disk = disk;
      put(encodeHeader(header));
    }

    /**
     * Writes the file at {@code target} durably from the versions {@code source} adds.
     *
     * @return the index entries written
     */
    static List<IndexEntry> write(Path target, Header header, Source source) throws IOException {
      return write(target, header, LayerDisk.DIRECT, source);
    }

    /**
     * Writes the file at {@code target} durably, its bytes through {@code disk}.
     *
     * @return the index entries written
     * @throws WriteException when {@code disk} fails (the temporary file is deleted)
     */
    static List<IndexEntry> write(Path target, Header header, LayerDisk disk, Source source)
        throws IOException {
      List<IndexEntry> entries = new ArrayList<>();
      DurableFiles.write(
          target,
          ch -> {
            Writer w = new Writer(header, ch, target, disk);
            source.addTo(w);
            entries.addAll(w.finish());
          });
      return entries;
    }

    /** Supplies a layer's versions, in order. */
    @FunctionalInterface
    interface Source {
      void addTo(Writer w) throws IOException;
    }

    void add(Key key, Lsn lsn, Value value) throws IOException {
      add(key, lsn, value.encode(), flagsOf(value));
    }

    /**
     * Adds a version as the blob another layer file holds (checked by {@link Reader#readBlob}):
     * compaction moves versions without decoding, recompressing or re-checksumming them (a blob's
     * CRC does not depend on where it is).
     */
    void addBlob(Key key, Lsn lsn, ByteBuffer blob, int flags) throws IOException {
      checkOrder(key, lsn);
      int length = blob.remaining();
      append(blob);
      last = new IndexEntry(key, lsn, offset, length, flags);
      index.add(last);
      offset += length;
    }

    private void checkOrder(Key key, Lsn lsn) {
      if (!header.keys().contains(key)
          || !lsn.isAfter(header.lsnFrom())
          || lsn.isAfter(header.lsnTo())) {
        throw new IllegalArgumentException(
            "version " + key + "@" + lsn + " outside the layer's ranges " + header);
      }
      if (last != null) {
        int c = last.key().compareTo(key);
        if (c > 0 || (c == 0 && !lsn.isAfter(last.lsn()))) {
          throw new IllegalArgumentException(
              "versions out of order: "
                  + key
                  + "@"
                  + lsn
                  + " after "
                  + last.key()
                  + "@"
                  + last.lsn());
        }
      }
    }

    /** Adds an already encoded value. */
    void add(Key key, Lsn lsn, byte[] encoded, int flags) throws IOException {
      checkOrder(key, lsn);
      byte[] stored = encoded;
      int blobFlags = 0;
      if (encoded.length > COMPRESS_THRESHOLD) {
        byte[] c = new byte[compressor.maxCompressedLength(encoded.length)];
        int n = compressor.compress(encoded, 0, encoded.length, c, 0, c.length);
        if (n < encoded.length - encoded.length / 8) {
          stored = java.util.Arrays.copyOf(c, n);
          blobFlags = 1;
        }
      }
      int length = BLOB_OVERHEAD + stored.length;
      ByteBuffer blob = ByteBuffer.allocate(length);
      blob.put((byte) blobFlags).putInt(stored.length).putInt(encoded.length).put(stored);
      crc.reset();
      crc.update(blob.array(), 0, BLOB_HEADER + stored.length);
      blob.putInt((int) crc.getValue());
      blob.flip();
      append(blob);
      last = new IndexEntry(key, lsn, offset, length, flags);
      index.add(last);
      offset += length;
    }

    private void append(ByteBuffer b) throws IOException {
      if (b.remaining() > out.remaining()) {
        flushOut();
        if (b.remaining() > out.capacity()) {
          put(b);
          return;
        }
      }
      out.put(b);
    }

    private void flushOut() throws IOException {
      out.flip();
      put(out);
      out.clear();
    }

    private void put(ByteBuffer b) throws IOException {
      try {
        disk.append(ch, path, b);
      } catch (IOException e) {
        throw new WriteException(path, e);
      }
    }

    private List<IndexEntry> finish() throws IOException {
      long indexOffset = offset;
      ByteBuffer idx = ByteBuffer.allocate(INDEX_ENTRY_SIZE);
      CRC32C indexCrc = new CRC32C();
      byte[] key = new byte[Key.SIZE];
      for (IndexEntry e : index) {
        idx.clear();
        e.key().writeTo(key, 0);
        idx.put(key)
            .putLong(e.lsn().value())
            .putLong(e.offset())
            .putInt(e.length())
            .put((byte) e.flags());
        indexCrc.update(idx.array(), 0, INDEX_ENTRY_SIZE);
        idx.flip();
        append(idx);
      }
      ByteBuffer footer = ByteBuffer.allocate(FOOTER_SIZE);
      footer.putLong(indexOffset).putLong(index.size()).putInt((int) indexCrc.getValue()).putInt(0);
      footer.putInt(FOOTER_MAGIC);
      CRC32C fc = new CRC32C();
      fc.update(footer.array(), 0, 28);
      footer.putInt((int) fc.getValue());
      footer.flip();
      append(footer);
      flushOut();
      return index;
    }
  }

  static ByteBuffer encodeHeader(Header h) {
    ByteBuffer b = ByteBuffer.allocate(HEADER_SIZE);
    b.putInt(MAGIC)
        .putShort((short) FORMAT_VERSION)
        .put((byte) h.kind().code)
        .put((byte) h.level());
    b.put(h.tenant().toBytes()).put(h.timeline().toBytes());
    b.put(h.keys().start().toBytes()).put(h.keys().end().toBytes());
    b.putLong(h.lsnFrom().value()).putLong(h.lsnTo().value()).putLong(h.layerId());
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, 124);
    b.putInt(124, (int) c.getValue());
    b.position(0).limit(HEADER_SIZE);
    return b;
  }

  /**
   * An open layer file: header and footer checked, blobs read on demand with their CRC checked.
   * Thread-safe (positional reads).
   */
  public static final class Reader implements AutoCloseable {
    private final Path path;

    /** Survives interrupts of the threads reading it (compaction tasks get cancelled). */
    private final ReadOnlyFile file;

    private final Header header;
    private final long indexOffset;
    private final long entryCount;
    private final int indexCrc;
    private final long size;

    private Reader(Path path, ReadOnlyFile file) throws IOException {
      this.path = path;
      this.file = file;
      this.size = file.size();
      if (size < HEADER_SIZE + FOOTER_SIZE) {
        throw corrupt("it is " + size + " bytes, shorter than a header and a footer");
      }
      ByteBuffer h = read(0, HEADER_SIZE);
      if (h.getInt(0) != MAGIC) {
        throw corrupt(String.format("bad magic %08X", h.getInt(0)));
      }
      CRC32C c = new CRC32C();
      c.update(h.array(), 0, 124);
      if ((int) c.getValue() != h.getInt(124)) {
        throw corrupt("header CRC mismatch");
      }
      int version = Short.toUnsignedInt(h.getShort(4));
      if (version != FORMAT_VERSION) {
        throw corrupt(
            "unknown format version " + version + " (this build reads " + FORMAT_VERSION + ")");
      }
      Kind kind = Kind.of(h.get(6));
      if (kind == null) {
        throw corrupt("unknown layer kind " + h.get(6));
      }
      byte[] hb = h.array();
      header =
          new Header(
              kind,
              TenantId.fromBytes(hb, 8),
              TimelineId.fromBytes(hb, 24),
              new KeyRange(Key.readFrom(hb, 40), Key.readFrom(hb, 58)),
              Lsn.of(h.getLong(76)),
              Lsn.of(h.getLong(84)),
              h.getLong(92),
              h.get(7) & 0xFF);
      ByteBuffer f = read(size - FOOTER_SIZE, FOOTER_SIZE);
      CRC32C fc = new CRC32C();
      fc.update(f.array(), 0, 28);
      if (f.getInt(24) != FOOTER_MAGIC || (int) fc.getValue() != f.getInt(28)) {
        throw corrupt("footer is damaged (incomplete or overwritten file)");
      }
      indexOffset = f.getLong(0);
      entryCount = f.getLong(8);
      indexCrc = f.getInt(16);
      if (indexOffset < HEADER_SIZE
          || entryCount < 0
          || indexOffset + entryCount * INDEX_ENTRY_SIZE != size - FOOTER_SIZE) {
        throw corrupt("footer bounds do not match the file size");
      }
    }

    /**
     * Opens and checks header and footer.
     *
     * @throws LayerStoreException CORRUPT_FILE naming the file, or IO
     */
    public static Reader open(Path path) {
      ReadOnlyFile f = null;
      try {
        f = new ReadOnlyFile(path);
        return new Reader(path, f);
      } catch (IOException e) {
        if (f != null) {
          f.close();
        }
        throw new LayerStoreException(
            LayerStoreException.Kind.IO,
            "cannot read layer file " + path + ": " + e.getMessage(),
            e);
      } catch (RuntimeException e) {
        if (f != null) {
          f.close();
        }
        throw e;
      }
    }

    /** Opens a layer file that is in remote storage only, from its stub: no download. */
    static Reader openRemote(Path path, LayerStub stub, ReadOnlyFile.Fetcher fetcher)
        throws IOException {
      return new Reader(path, new ReadOnlyFile(path, stub, fetcher));
    }

    /** Its bytes, local or remote (residency, eviction). */
    ReadOnlyFile file() {
      return file;
    }

    public Header header() {
      return header;
    }

    public Path path() {
      return path;
    }

    public long entryCount() {
      return entryCount;
    }

    /** The file's size in bytes. */
    public long size() {
      return size;
    }

    /** Reads and checks the whole index (for rebuilding the RocksDB index, and for dumps). */
    public List<IndexEntry> readIndex() {
      return readIndex(this::readChecked);
    }

    /**
     * The index read through {@code ranged} (offset, length: the bytes), an attach's ranged GET.
     */
    List<IndexEntry> readIndex(java.util.function.BiFunction<Long, Integer, ByteBuffer> ranged) {
      ByteBuffer b = ranged.apply(indexOffset, Math.toIntExact(entryCount * INDEX_ENTRY_SIZE));
      CRC32C c = new CRC32C();
      c.update(b.array(), 0, b.limit());
      if ((int) c.getValue() != indexCrc) {
        throw corrupt("index CRC mismatch");
      }
      List<IndexEntry> out = new ArrayList<>((int) entryCount);
      byte[] a = b.array();
      IndexEntry prev = null;
      for (int i = 0; i < entryCount; i++) {
        int o = i * INDEX_ENTRY_SIZE;
        IndexEntry e =
            new IndexEntry(
                Key.readFrom(a, o),
                Lsn.of(b.getLong(o + 18)),
                b.getLong(o + 26),
                b.getInt(o + 34),
                a[o + 38] & 0xFF);
        if (e.offset() < HEADER_SIZE
            || e.offset() + e.length() > indexOffset
            || e.length() < BLOB_OVERHEAD) {
          throw corrupt("index entry " + i + " points outside the blob area");
        }
        if (prev != null
            && (prev.key().compareTo(e.key()) > 0
                || prev.key().equals(e.key()) && !e.lsn().isAfter(prev.lsn()))) {
          throw corrupt("index entries out of order at entry " + i);
        }
        out.add(e);
        prev = e;
      }
      return out;
    }

    /** Reads a version's whole blob as stored, its lengths and CRC checked. */
    ByteBuffer readBlob(long offset, int length) {
      if (offset < HEADER_SIZE || length < BLOB_OVERHEAD || offset + length > indexOffset) {
        throw corrupt("blob at " + offset + " (" + length + " bytes) is outside the blob area");
      }
      ByteBuffer b = readChecked(offset, length);
      byte[] a = b.array();
      int stored = b.getInt(1);
      int raw = b.getInt(5);
      if (stored != length - BLOB_OVERHEAD || raw < 0) {
        throw corrupt("blob at " + offset + " has inconsistent lengths");
      }
      CRC32C c = new CRC32C();
      c.update(a, 0, BLOB_HEADER + stored);
      if ((int) c.getValue() != b.getInt(BLOB_HEADER + stored)) {
        throw corrupt("blob CRC mismatch at offset " + offset);
      }
      return b;
    }

    /** Reads a version's value, checking the blob's CRC. */
    public Value readValue(long offset, int length) {
      ByteBuffer b = readBlob(offset, length);
      byte[] a = b.array();
      int flags = a[0];
      int stored = b.getInt(1);
      int raw = b.getInt(5);
      byte[] encoded;
      if ((flags & 1) != 0) {
        encoded = new byte[raw];
        try {
          // The safe decompressor is the native one where lz4-java's JNI library loads; its
          // "fast" decompressor is pure Java whatever the factory (a quarter of a basebackup's
          // CPU was spent in it).
          LZ4SafeDecompressor d = LZ4.safeDecompressor();
          int read = d.decompress(a, BLOB_HEADER, stored, encoded, 0, raw);
          if (read != raw) {
            throw corrupt("blob at " + offset + " does not decompress to its stated size");
          }
        } catch (LZ4Exception e) {
          throw corrupt("blob at " + offset + " does not decompress: " + e.getMessage());
        }
      } else {
        encoded = java.util.Arrays.copyOfRange(a, BLOB_HEADER, BLOB_HEADER + stored);
      }
      try {
        return Value.decode(encoded);
      } catch (IllegalArgumentException e) {
        throw corrupt("blob at " + offset + ": " + e.getMessage());
      }
    }

    private ByteBuffer readChecked(long offset, int length) {
      try {
        return read(offset, length);
      } catch (IOException e) {
        throw new LayerStoreException(
            LayerStoreException.Kind.IO,
            "cannot read layer file " + path + ": " + e.getMessage(),
            e);
      }
    }

    private ByteBuffer read(long offset, int length) throws IOException {
      ByteBuffer b = file.read(offset, length);
      if (b == null) {
        throw corrupt("unexpected end of file at or after " + offset);
      }
      return b;
    }

    private LayerStoreException corrupt(String what) {
      return new LayerStoreException(
          LayerStoreException.Kind.CORRUPT_FILE, "corrupt layer file " + path + ": " + what);
    }

    @Override
    public void close() {
      file.close();
    }
  }
}
