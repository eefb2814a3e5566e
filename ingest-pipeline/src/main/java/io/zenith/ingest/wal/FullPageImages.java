package io.zenith.ingest.wal;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdException;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormatException;
import net.jpountz.lz4.LZ4Exception;
import net.jpountz.lz4.LZ4Factory;
import net.jpountz.lz4.LZ4SafeDecompressor;

/**
 * Restores the 8 KiB page of a full-page image, as PostgreSQL's {@code RestoreBlockImage} does:
 * decompress ({@code wal_compression} = pglz, lz4 or zstd) to {@code BLCKSZ - hole_length} bytes,
 * then put the hole back as zeros. Thread-safe.
 */
public final class FullPageImages {
  private FullPageImages() {}

  private static final LZ4SafeDecompressor LZ4 = LZ4Factory.fastestInstance().safeDecompressor();

  /**
   * The page as redo would restore it, before the record's LSN is stamped on it.
   *
   * @throws WalFormatException of kind {@code BAD_RECORD_CONTENT} if the image does not decompress
   *     to exactly the expected size
   * @throws IllegalArgumentException if the block has no image
   */
  public static byte[] restore(DecodedRecord record, BlockRef block) {
    BlockImage img = block.image();
    if (img == null) {
      throw new IllegalArgumentException("block " + block.id() + " has no image");
    }
    byte[] src = block.record();
    int rawSize = PageLayout.BLCKSZ - img.holeLength();
    byte[] raw;
    int rawOff;
    if (img.isCompressed()) {
      raw = new byte[rawSize];
      rawOff = 0;
      boolean ok =
          switch (img.compression()) {
            case PGLZ -> Pglz.decompress(src, img.dataOffset(), img.length(), raw, 0, rawSize);
            case LZ4 -> lz4(src, img, raw, rawSize);
            case ZSTD -> zstd(src, img, raw, rawSize);
            case NONE -> throw new AssertionError();
          };
      if (!ok) {
        Lsn lsn = record.lsn();
        throw new WalFormatException(
            WalFormatException.Kind.BAD_RECORD_CONTENT,
            lsn,
            "could not decompress "
                + img.compression().name().toLowerCase(java.util.Locale.ROOT)
                + " image at "
                + lsn
                + ", block "
                + block.id());
      }
    } else {
      raw = src;
      rawOff = img.dataOffset();
    }
    byte[] page = new byte[PageLayout.BLCKSZ];
    if (img.holeLength() == 0) {
      System.arraycopy(raw, rawOff, page, 0, PageLayout.BLCKSZ);
    } else {
      System.arraycopy(raw, rawOff, page, 0, img.holeOffset());
      int after = img.holeOffset() + img.holeLength();
      System.arraycopy(raw, rawOff + img.holeOffset(), page, after, PageLayout.BLCKSZ - after);
    }
    return page;
  }

  private static boolean lz4(byte[] src, BlockImage img, byte[] raw, int rawSize) {
    try {
      return LZ4.decompress(src, img.dataOffset(), img.length(), raw, 0, rawSize) == rawSize;
    } catch (LZ4Exception e) {
      return false;
    }
  }

  private static boolean zstd(byte[] src, BlockImage img, byte[] raw, int rawSize) {
    try {
      long n = Zstd.decompressByteArray(raw, 0, rawSize, src, img.dataOffset(), img.length());
      return !Zstd.isError(n) && n == rawSize;
    } catch (ZstdException e) {
      return false;
    }
  }
}
