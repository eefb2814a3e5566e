package io.zenith.wal;

/**
 * The fixed header of every WAL record ({@code XLogRecord}), little-endian:
 *
 * <pre>
 * off size field
 *   0    4 xl_tot_len  total length of the record, header included
 *   4    4 xl_xid      transaction id, 0 if none
 *   8    8 xl_prev     LSN of the previous record
 *  16    1 xl_info     resource-manager specific flags (low 4 bits: XLR_* of the WAL machinery)
 *  17    1 xl_rmid     resource manager
 *  18    2 (padding)
 *  20    4 xl_crc      CRC32C of bytes [24, xl_tot_len) followed by bytes [0, 20)
 * </pre>
 */
public record RecordHeader(int totalLength, int xid, Lsn prev, int info, int rmid, int crc) {

  public static RecordHeader read(byte[] bytes, int offset) {
    return new RecordHeader(
        LittleEndian.i32(bytes, offset),
        LittleEndian.i32(bytes, offset + 4),
        Lsn.of(LittleEndian.i64(bytes, offset + 8)),
        LittleEndian.u8(bytes, offset + 16),
        LittleEndian.u8(bytes, offset + 17),
        LittleEndian.i32(bytes, offset + 20));
  }

  public boolean isSwitch() {
    return rmid == WalFormat.RM_XLOG_ID
        && (info & ~WalFormat.XLR_INFO_MASK) == WalFormat.XLOG_SWITCH;
  }
}
