package io.zenith.page.redo;

import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.wal.Lsn;
import io.zenith.wal.RecordHeader;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalRecord;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.zip.CRC32C;

/** Hand-made and damaged WAL records for failure tests. */
final class TestRecords {
  private TestRecords() {}

  /** A record over {@code bytes} (header included), with its CRC32C recomputed. */
  static WalRecord withValidCrc(Lsn lsn, Lsn end, byte[] bytes) {
    CRC32C crc = new CRC32C();
    crc.update(bytes, WalFormat.RECORD_HEADER_SIZE, bytes.length - WalFormat.RECORD_HEADER_SIZE);
    crc.update(bytes, 0, WalFormat.RECORD_CRC_OFFSET);
    ByteBuffer.wrap(bytes)
        .order(ByteOrder.LITTLE_ENDIAN)
        .putInt(WalFormat.RECORD_CRC_OFFSET, (int) crc.getValue());
    return new WalRecord(lsn, end, RecordHeader.read(bytes, 0), bytes);
  }

  /**
   * An {@code XLOG_FPI} record whose only block reference carries no image: redo raises {@code
   * ERROR: XLOG_FPI record did not contain a full-page image}.
   */
  static WalRecord fpiWithoutImage(RelTag rel, int block, Lsn lsn) {
    ByteBuffer b = ByteBuffer.allocate(44).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(44); // xl_tot_len
    b.putInt(0); // xl_xid
    b.putLong(0); // xl_prev
    b.put((byte) 0xB0); // xl_info: XLOG_FPI
    b.put((byte) 0); // xl_rmid: XLOG
    b.putShort((short) 0); // padding
    b.putInt(0); // xl_crc, set below
    b.put((byte) 0); // block id 0
    b.put((byte) 0); // fork_flags: main fork, no image, no data
    b.putShort((short) 0); // data_length
    b.putInt(rel.spcOid()).putInt(rel.dbOid()).putInt(rel.relNumber());
    b.putInt(block);
    return withValidCrc(lsn, lsn.plus(48), b.array());
  }

  /** A copy of the record with one byte of its body changed: the CRC no longer matches. */
  static WalRecord corrupted(WalRecord r) {
    byte[] bytes = r.copyBytes();
    bytes[bytes.length - 1] ^= 0x5A;
    return new WalRecord(r.lsn(), r.end(), RecordHeader.read(bytes, 0), bytes);
  }

  /**
   * The record's first {@code len} bytes with {@code xl_tot_len} still claiming the whole record
   * (the CRC is left alone).
   */
  static WalRecord cutShort(WalRecord r, int len) {
    byte[] bytes = Arrays.copyOf(r.copyBytes(), len);
    RecordHeader h = RecordHeader.read(bytes, 0);
    RecordHeader claimed = new RecordHeader(len, h.xid(), h.prev(), h.info(), h.rmid(), h.crc());
    return new WalRecord(r.lsn(), r.end(), claimed, bytes);
  }

  /** The record's first {@code len} bytes, with {@code xl_tot_len} and the CRC made to match. */
  static WalRecord truncatedConsistently(WalRecord r, int len) {
    byte[] bytes = Arrays.copyOf(r.copyBytes(), len);
    ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putInt(0, len);
    return withValidCrc(r.lsn(), r.end(), bytes);
  }

  /** An initialized, empty heap page (no items) with LSN 0. */
  static byte[] emptyHeapPage() {
    ByteBuffer b = ByteBuffer.allocate(WalFormat.BLCKSZ).order(ByteOrder.LITTLE_ENDIAN);
    b.putShort(12, (short) 24); // pd_lower
    b.putShort(14, (short) WalFormat.BLCKSZ); // pd_upper
    b.putShort(16, (short) WalFormat.BLCKSZ); // pd_special
    b.putShort(18, (short) (WalFormat.BLCKSZ | 4)); // pd_pagesize_version
    return b.array();
  }

  static boolean isType(DecodedRecord r, String rmgr, String type) {
    return r.rmgr() != null && r.rmgr().pgName().equals(rmgr) && r.typeName().equals(type);
  }
}
