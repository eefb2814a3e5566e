package io.zenith.wal;

/**
 * A WAL page header ({@code XLogPageHeaderData}, and {@code XLogLongPageHeaderData} on the first
 * page of a segment). Layout, little-endian:
 *
 * <pre>
 * off size field
 *   0    2 xlp_magic        XLOG_PAGE_MAGIC (0xD110 for PostgreSQL 15)
 *   2    2 xlp_info         XLP_* flags
 *   4    4 xlp_tli          timeline of the first record on the page
 *   8    8 xlp_pageaddr     LSN of the page start
 *  16    4 xlp_rem_len      bytes of a record continued from the previous page, 0 if none
 *  20    4 (padding)        -- short header ends at 24 (MAXALIGN)
 *  24    8 xlp_sysid        long header only: system identifier
 *  32    4 xlp_seg_size     long header only: segment size
 *  36    4 xlp_xlog_blcksz  long header only: WAL page size
 *                           -- long header ends at 40 (MAXALIGN)
 * </pre>
 *
 * Page headers carry no checksum: they are validated field by field.
 */
public record PageHeader(
    int magic,
    int info,
    int timeline,
    Lsn pageAddress,
    int remainingLength,
    long systemId,
    int segmentSize,
    int blockSize) {

  public boolean isLong() {
    return (info & WalFormat.XLP_LONG_HEADER) != 0;
  }

  public boolean isContinuation() {
    return (info & WalFormat.XLP_FIRST_IS_CONTRECORD) != 0;
  }

  public boolean isOverwriteContinuation() {
    return (info & WalFormat.XLP_FIRST_IS_OVERWRITE_CONTRECORD) != 0;
  }

  public int size() {
    return isLong() ? WalFormat.LONG_PAGE_HEADER_SIZE : WalFormat.SHORT_PAGE_HEADER_SIZE;
  }

  /**
   * Reads a header from {@code bytes[offset..]}: 24 bytes, or 40 when {@code xlp_info} has {@code
   * XLP_LONG_HEADER} (the caller must then supply 40).
   */
  public static PageHeader read(byte[] bytes, int offset, int length) {
    int magic = LittleEndian.u16(bytes, offset);
    int info = LittleEndian.u16(bytes, offset + 2);
    int tli = LittleEndian.i32(bytes, offset + 4);
    long addr = LittleEndian.i64(bytes, offset + 8);
    int rem = LittleEndian.i32(bytes, offset + 16);
    if ((info & WalFormat.XLP_LONG_HEADER) != 0 && length >= WalFormat.LONG_PAGE_HEADER_SIZE) {
      return new PageHeader(
          magic,
          info,
          tli,
          Lsn.of(addr),
          rem,
          LittleEndian.i64(bytes, offset + 24),
          LittleEndian.i32(bytes, offset + 32),
          LittleEndian.i32(bytes, offset + 36));
    }
    return new PageHeader(magic, info, tli, Lsn.of(addr), rem, 0, 0, 0);
  }

  /** An all-zero header: the page was never written (end of WAL). */
  public boolean isZero() {
    return magic == 0
        && info == 0
        && timeline == 0
        && !pageAddress.isValid()
        && remainingLength == 0;
  }
}
