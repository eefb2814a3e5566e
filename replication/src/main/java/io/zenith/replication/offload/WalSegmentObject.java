package io.zenith.replication.offload;

import io.zenith.replication.offload.RemoteWalException.Kind;
import io.zenith.wal.Lsn;
import io.zenith.wal.remote.RemoteKey;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;
import net.jpountz.lz4.LZ4Compressor;
import net.jpountz.lz4.LZ4Exception;
import net.jpountz.lz4.LZ4Factory;
import net.jpountz.lz4.LZ4SafeDecompressor;

/**
 * The remote object of one offloaded WAL segment (ADR 0025, {@code docs/formats/wal-offload.md}): a
 * 36-byte header, then the segment's bytes as one LZ4 block. Big-endian:
 *
 * <pre>
 *  0 u32 magic "ZWSG"           4 u16 version (1)         6 u16 compression (1 = LZ4 block)
 *  8 u64 segment start LSN     16 u32 uncompressed size   20 u32 compressed size
 * 24 u32 CRC32C of the uncompressed bytes                 28 u32 reserved (0)
 * 32 u32 CRC32C of bytes 0..31 (the header)
 * 36 …   compressed bytes (exactly "compressed size" of them)
 * </pre>
 *
 * The header's own checksum tells a damaged header from damaged data; the data checksum is over the
 * uncompressed bytes, so it also catches a decompressor that produced wrong bytes. Static and
 * stateless; thread-safe.
 */
public final class WalSegmentObject {
  private WalSegmentObject() {}

  public static final int MAGIC = 0x5A575347; // "ZWSG"
  public static final int VERSION = 1;
  public static final int LZ4_BLOCK = 1;
  public static final int HEADER_SIZE = 36;

  /** The object's name suffix for the compression used: {@code <segment file name>-lz4}. */
  public static final String SUFFIX = "-lz4";

  private static final LZ4Factory LZ4 = LZ4Factory.fastestInstance();

  /** The object for {@code segment}, the bytes of the segment starting at {@code start}. */
  public static byte[] encode(Lsn start, byte[] segment) {
    LZ4Compressor c = LZ4.fastCompressor();
    byte[] out = new byte[HEADER_SIZE + c.maxCompressedLength(segment.length)];
    int n = c.compress(segment, 0, segment.length, out, HEADER_SIZE);
    CRC32C data = new CRC32C();
    data.update(segment);
    ByteBuffer h = ByteBuffer.wrap(out);
    h.putInt(MAGIC)
        .putShort((short) VERSION)
        .putShort((short) LZ4_BLOCK)
        .putLong(start.value())
        .putInt(segment.length)
        .putInt(n)
        .putInt((int) data.getValue())
        .putInt(0);
    CRC32C header = new CRC32C();
    header.update(out, 0, 32);
    h.putInt((int) header.getValue());
    byte[] exact = new byte[HEADER_SIZE + n];
    System.arraycopy(out, 0, exact, 0, exact.length);
    return exact;
  }

  /**
   * The segment's bytes from {@code object}, read as {@code key}: checked against the expected
   * start LSN and size, decompressed, checksummed.
   *
   * @throws RemoteWalException CORRUPT naming the key and what differs
   */
  public static byte[] decode(RemoteKey key, byte[] object, Lsn expectedStart, int segmentSize) {
    if (object.length < HEADER_SIZE) {
      throw corrupt(key, "is " + object.length + " bytes, shorter than its header");
    }
    ByteBuffer h = ByteBuffer.wrap(object);
    int magic = h.getInt();
    if (magic != MAGIC) {
      throw corrupt(key, "has magic " + Integer.toHexString(magic) + ", expected 5a575347");
    }
    CRC32C header = new CRC32C();
    header.update(object, 0, 32);
    int headerCrc = h.getInt(32);
    if (headerCrc != (int) header.getValue()) {
      throw corrupt(key, "has a damaged header (CRC32C mismatch)");
    }
    int version = h.getShort() & 0xFFFF;
    int compression = h.getShort() & 0xFFFF;
    if (version != VERSION || compression != LZ4_BLOCK) {
      throw corrupt(
          key, "has version " + version + ", compression " + compression + "; expected 1, 1");
    }
    Lsn start = Lsn.of(h.getLong());
    int size = h.getInt();
    int compressed = h.getInt();
    int crc = h.getInt();
    if (!start.equals(expectedStart) || size != segmentSize) {
      throw corrupt(
          key,
          "holds "
              + size
              + " bytes from "
              + start
              + ", expected "
              + segmentSize
              + " from "
              + expectedStart);
    }
    if (compressed != object.length - HEADER_SIZE) {
      throw corrupt(
          key,
          "declares "
              + compressed
              + " compressed bytes but has "
              + (object.length - HEADER_SIZE)
              + " (truncated?)");
    }
    byte[] out = new byte[size];
    LZ4SafeDecompressor d = LZ4.safeDecompressor();
    int n;
    try {
      n = d.decompress(object, HEADER_SIZE, compressed, out, 0);
    } catch (LZ4Exception e) {
      throw corrupt(key, "does not decompress: " + e.getMessage());
    }
    if (n != size) {
      throw corrupt(key, "decompresses to " + n + " bytes, expected " + size);
    }
    CRC32C data = new CRC32C();
    data.update(out);
    if (crc != (int) data.getValue()) {
      throw corrupt(key, "has a damaged segment (CRC32C of the WAL bytes mismatch)");
    }
    return out;
  }

  private static RemoteWalException corrupt(RemoteKey key, String what) {
    return new RemoteWalException(Kind.CORRUPT, key, "remote WAL segment " + key + " " + what);
  }
}
