package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * The durable stand-in of a layer file whose bytes are in remote storage only ({@code <layer file
 * name>.remote}, beside where the file goes): which object holds it, its size and whole-file CRC32C
 * (from the uploaded index, to check a download), and its header and footer, so that the layer
 * opens and serves its metadata without a download. Written by an attach before the layer is
 * registered and by an eviction before the local file goes; deleted with the layer. Binary,
 * big-endian:
 *
 * <pre>
 *  0 u32 magic 0x5A4C5253 ("ZLRS")   4 u16 format version (1)   6 u16 0
 *  8 u32 generation of the object   12 u64 size   20 u32 CRC32C of the whole file
 * 24 128B layer header   152 32B layer footer   184 u32 CRC32C of everything before
 * </pre>
 *
 * Changelog: version 1 (2026-12): first format. Immutable.
 */
record LayerStub(int generation, long size, int crc32c, byte[] header, byte[] footer) {
  static final String SUFFIX = ".remote";
  static final int MAGIC = 0x5A4C5253;
  static final int FORMAT_VERSION = 1;
  static final int SIZE = 24 + LayerFile.HEADER_SIZE + LayerFile.FOOTER_SIZE + 4;

  LayerStub {
    if (header.length != LayerFile.HEADER_SIZE || footer.length != LayerFile.FOOTER_SIZE) {
      throw new IllegalArgumentException("a layer header is 128 bytes and a footer 32");
    }
    header = header.clone();
    footer = footer.clone();
  }

  /** The stub's path beside the layer file {@code layer}. */
  static Path pathOf(Path layer) {
    return layer.resolveSibling(layer.getFileName() + SUFFIX);
  }

  /**
   * The bytes at {@code offset} if they lie within the header or the footer, else null: what a
   * layer that is not resident serves without downloading.
   */
  ByteBuffer serve(long offset, int length) {
    if (offset >= 0 && offset + length <= LayerFile.HEADER_SIZE) {
      return ByteBuffer.wrap(Arrays.copyOfRange(header, (int) offset, (int) offset + length));
    }
    long footerAt = size - LayerFile.FOOTER_SIZE;
    if (offset >= footerAt && offset + length <= size) {
      int from = (int) (offset - footerAt);
      return ByteBuffer.wrap(Arrays.copyOfRange(footer, from, from + length));
    }
    return null;
  }

  byte[] toBytes() {
    ByteBuffer b = ByteBuffer.allocate(SIZE);
    b.putInt(MAGIC).putShort((short) FORMAT_VERSION).putShort((short) 0).putInt(generation);
    b.putLong(size).putInt(crc32c).put(header).put(footer);
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, b.position());
    b.putInt((int) c.getValue());
    return b.array();
  }

  static LayerStub fromBytes(byte[] a, String where) {
    ByteBuffer b = Framed.open(a, "layer stub", where, MAGIC, FORMAT_VERSION, SIZE);
    if (a.length != SIZE) {
      throw Framed.corrupt("layer stub", where, "size " + a.length + ", " + SIZE + " expected");
    }
    b.position(8);
    int generation = b.getInt();
    long size = b.getLong();
    int crc = b.getInt();
    byte[] h = new byte[LayerFile.HEADER_SIZE];
    byte[] f = new byte[LayerFile.FOOTER_SIZE];
    b.get(h).get(f);
    return new LayerStub(generation, size, crc, h, f);
  }

  /** Writes the stub of {@code layer} durably (temp, fsync, rename, fsync of the directory). */
  void write(Path layer) throws IOException {
    DurableFiles.write(pathOf(layer), toBytes());
  }

  /**
   * The stub of {@code layer}, or null when it has none.
   *
   * @throws LayerStoreException CORRUPT_FILE when the stub is damaged
   */
  static LayerStub read(Path layer) throws IOException {
    Path p = pathOf(layer);
    try {
      return fromBytes(Files.readAllBytes(p), p.toString());
    } catch (NoSuchFileException e) {
      return null;
    }
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof LayerStub s
        && s.generation == generation
        && s.size == size
        && s.crc32c == crc32c
        && Arrays.equals(s.header, header)
        && Arrays.equals(s.footer, footer);
  }

  @Override
  public int hashCode() {
    return Long.hashCode(size) * 31 + crc32c;
  }

  @Override
  public String toString() {
    return "LayerStub[generation=" + generation + ", size=" + size + "]";
  }
}
