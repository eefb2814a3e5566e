package io.zenith.wal;

/**
 * Constants of PostgreSQL 15's WAL format ({@code access/xlog_internal.h}, {@code
 * access/xlogrecord.h}). All multi-byte fields are little-endian on the platforms we run on.
 */
public final class WalFormat {
  private WalFormat() {}

  /** {@code XLOG_PAGE_MAGIC} of PostgreSQL 15. Changes with every major version. */
  public static final int XLOG_PAGE_MAGIC = 0xD110;

  /** WAL page size ({@code XLOG_BLCKSZ}). */
  public static final int XLOG_BLCKSZ = 8192;

  /** Relation page size ({@code BLCKSZ}). */
  public static final int BLCKSZ = 8192;

  /** {@code SizeOfXLogShortPHD}: 20 bytes of fields, MAXALIGNed. */
  public static final int SHORT_PAGE_HEADER_SIZE = 24;

  /** {@code SizeOfXLogLongPHD}: 36 bytes of fields, MAXALIGNed. */
  public static final int LONG_PAGE_HEADER_SIZE = 40;

  /** {@code SizeOfXLogRecord}: xl_tot_len .. xl_crc. */
  public static final int RECORD_HEADER_SIZE = 24;

  /** Offset of {@code xl_crc} in the record header; the CRC covers the header up to here. */
  public static final int RECORD_CRC_OFFSET = 20;

  public static final int XLP_FIRST_IS_CONTRECORD = 0x0001;
  public static final int XLP_LONG_HEADER = 0x0002;
  public static final int XLP_BKP_REMOVABLE = 0x0004;
  public static final int XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008;
  public static final int XLP_ALL_FLAGS = 0x000F;

  /** Low bits of {@code xl_info} reserved for the WAL machinery ({@code XLR_INFO_MASK}). */
  public static final int XLR_INFO_MASK = 0x0F;

  /** Resource manager id and info of {@code XLOG_SWITCH}, which ends a segment early. */
  public static final int RM_XLOG_ID = 0;

  public static final int XLOG_SWITCH = 0x40;

  /** Largest builtin resource manager id in PostgreSQL 15 ({@code RM_MAX_BUILTIN_ID}). */
  public static final int RM_MAX_BUILTIN_ID = 21;

  /** First id available to custom resource managers ({@code RM_MIN_CUSTOM_ID}). */
  public static final int RM_MIN_CUSTOM_ID = 128;

  /**
   * Largest record PostgreSQL 15 can read back: its reader refuses anything that does not fit a
   * palloc ({@code AllocSizeIsValid}: below 1 GiB).
   */
  public static final int MAX_RECORD_SIZE = 0x3fff_ffff;

  public static final int DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;
  public static final int MIN_SEGMENT_SIZE = 1024 * 1024;
  public static final int MAX_SEGMENT_SIZE = 1024 * 1024 * 1024;

  /** {@code IsValidWalSegSize}: a power of two from 1 MiB to 1 GiB. */
  public static boolean isValidSegmentSize(long size) {
    return size >= MIN_SEGMENT_SIZE && size <= MAX_SEGMENT_SIZE && Long.bitCount(size) == 1;
  }

  /** {@code RmgrIdIsValid}: a builtin or a custom resource manager id. */
  public static boolean isValidRmgrId(int rmid) {
    return rmid <= RM_MAX_BUILTIN_ID || (rmid >= RM_MIN_CUSTOM_ID && rmid <= 255);
  }

  public static int maxAlign(int n) {
    return (n + 7) & ~7;
  }
}
