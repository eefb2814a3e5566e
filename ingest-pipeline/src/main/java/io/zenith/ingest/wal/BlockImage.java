package io.zenith.ingest.wal;

/**
 * A full-page image carried by a block reference ({@code XLogRecordBlockImageHeader}): where its
 * bytes are in the record, the hole PostgreSQL cut out of the page, and how it is compressed. Use
 * {@link FullPageImages#restore} to get the 8 KiB page back.
 *
 * @param length bytes of image data in the record ({@code bimg_len})
 * @param holeOffset start of the zeroed hole in the page
 * @param holeLength length of the hole (0 when there is none)
 * @param info {@code bimg_info} flags
 * @param dataOffset where the image bytes start in the record
 */
public record BlockImage(int length, int holeOffset, int holeLength, int info, int dataOffset) {
  public static final int HAS_HOLE = 0x01;
  public static final int APPLY = 0x02;
  public static final int COMPRESS_PGLZ = 0x04;
  public static final int COMPRESS_LZ4 = 0x08;
  public static final int COMPRESS_ZSTD = 0x10;

  /** Compression methods of {@code wal_compression}. */
  public enum Compression {
    NONE,
    PGLZ,
    LZ4,
    ZSTD
  }

  /** Whether redo restores the page from this image ({@code BKPIMAGE_APPLY}). */
  public boolean apply() {
    return (info & APPLY) != 0;
  }

  public boolean hasHole() {
    return (info & HAS_HOLE) != 0;
  }

  public boolean isCompressed() {
    return (info & (COMPRESS_PGLZ | COMPRESS_LZ4 | COMPRESS_ZSTD)) != 0;
  }

  /** The method, checked in PostgreSQL's order (pglz, lz4, zstd). */
  public Compression compression() {
    if ((info & COMPRESS_PGLZ) != 0) {
      return Compression.PGLZ;
    } else if ((info & COMPRESS_LZ4) != 0) {
      return Compression.LZ4;
    } else if ((info & COMPRESS_ZSTD) != 0) {
      return Compression.ZSTD;
    }
    return Compression.NONE;
  }
}
