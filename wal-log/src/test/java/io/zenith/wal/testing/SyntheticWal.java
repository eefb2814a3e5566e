package io.zenith.wal.testing;

import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormat;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * Writes WAL the way PostgreSQL 15 lays it out (page headers, continuation records, MAXALIGN,
 * CRC32C, xl_prev, XLOG_SWITCH), independently of the reader, so tests can build WAL with any
 * shape: records across pages and segments, split headers, switch records, torn tails.
 *
 * <p>Not thread-safe.
 */
public final class SyntheticWal {
  /** A record as written: where it starts and ends (EndRecPtr) and its full bytes. */
  public record Written(Lsn lsn, Lsn end, byte[] bytes) {}

  private final int segmentSize;
  private final long systemId;
  private final int timeline;
  private final long start;
  private byte[] buf = new byte[1 << 16];
  private long pos;
  private long prevRecord;
  private final List<Written> written = new ArrayList<>();

  /** WAL starting at {@code start}, which must be a segment start. */
  public SyntheticWal(int segmentSize, long systemId, int timeline, Lsn start) {
    if (start.segmentOffset(segmentSize) != 0) {
      throw new IllegalArgumentException("start must be a segment start");
    }
    this.segmentSize = segmentSize;
    this.systemId = systemId;
    this.timeline = timeline;
    this.start = start.value();
    this.pos = start.value();
  }

  public static SyntheticWal small() {
    return new SyntheticWal(1024 * 1024, 7_000_000_000_000_000_001L, 1, Lsn.of(1024 * 1024));
  }

  public int segmentSize() {
    return segmentSize;
  }

  public long systemId() {
    return systemId;
  }

  public Lsn startLsn() {
    return Lsn.of(start);
  }

  /** Appends a record with a body of {@code bodyLength} deterministic bytes. */
  public Written append(int rmid, int info, int xid, int bodyLength) {
    byte[] body = new byte[bodyLength];
    for (int i = 0; i < bodyLength; i++) {
      body[i] = (byte) (i * 31 + bodyLength);
    }
    return append(rmid, info, xid, body);
  }

  public Written append(int rmid, int info, int xid, byte[] body) {
    int total = WalFormat.RECORD_HEADER_SIZE + body.length;
    byte[] rec = new byte[total];
    ByteBuffer b = ByteBuffer.wrap(rec).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(0, total);
    b.putInt(4, xid);
    b.putLong(8, prevRecord);
    b.put(16, (byte) info);
    b.put(17, (byte) rmid);
    System.arraycopy(body, 0, rec, WalFormat.RECORD_HEADER_SIZE, body.length);
    CRC32C crc = new CRC32C();
    crc.update(rec, WalFormat.RECORD_HEADER_SIZE, total - WalFormat.RECORD_HEADER_SIZE);
    crc.update(rec, 0, WalFormat.RECORD_CRC_OFFSET);
    b.putInt(20, (int) crc.getValue());
    return appendRaw(rec);
  }

  /** An XLOG_SWITCH record: the rest of the segment stays unused. */
  public Written appendSwitch() {
    Written w = append(WalFormat.RM_XLOG_ID, WalFormat.XLOG_SWITCH, 0, new byte[0]);
    return w;
  }

  private Written appendRaw(byte[] rec) {
    if (pageOffset(pos) == 0) {
      writePageHeader(0);
    }
    long recStart = pos;
    int off = 0;
    while (off < rec.length) {
      if (pageOffset(pos) == 0) {
        writePageHeader(rec.length - off);
      }
      int n = Math.min(rec.length - off, WalFormat.XLOG_BLCKSZ - pageOffset(pos));
      put(rec, off, n);
      off += n;
    }
    long end = (pos + 7) & ~7L;
    boolean isSwitch = rec[17] == WalFormat.RM_XLOG_ID && (rec[16] & 0xF0) == WalFormat.XLOG_SWITCH;
    if (isSwitch) {
      end = (pos + segmentSize - 1) & -(long) segmentSize;
      // PostgreSQL fills the rest of the segment with initialized, empty pages.
      while (pos < end) {
        if (pageOffset(pos) == 0) {
          writePageHeader(0);
        } else {
          int n = (int) Math.min(end - pos, WalFormat.XLOG_BLCKSZ - pageOffset(pos));
          put(new byte[n], 0, n);
        }
      }
    }
    put(new byte[(int) (end - pos)], 0, (int) (end - pos));
    prevRecord = recStart;
    Written w = new Written(Lsn.of(recStart), Lsn.of(end), rec);
    written.add(w);
    return w;
  }

  private void writePageHeader(int remaining) {
    boolean isLong = (pos & (segmentSize - 1)) == 0;
    byte[] h =
        new byte[isLong ? WalFormat.LONG_PAGE_HEADER_SIZE : WalFormat.SHORT_PAGE_HEADER_SIZE];
    ByteBuffer b = ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN);
    int info =
        (remaining > 0 ? WalFormat.XLP_FIRST_IS_CONTRECORD : 0)
            | (isLong ? WalFormat.XLP_LONG_HEADER : 0);
    b.putShort(0, (short) WalFormat.XLOG_PAGE_MAGIC);
    b.putShort(2, (short) info);
    b.putInt(4, timeline);
    b.putLong(8, pos);
    b.putInt(16, remaining);
    if (isLong) {
      b.putLong(24, systemId);
      b.putInt(32, segmentSize);
      b.putInt(36, WalFormat.XLOG_BLCKSZ);
    }
    put(h, 0, h.length);
  }

  private void put(byte[] src, int off, int n) {
    int at = (int) (pos - start);
    if (at + n > buf.length) {
      buf = Arrays.copyOf(buf, Math.max(buf.length * 2, at + n));
    }
    System.arraycopy(src, off, buf, at, n);
    pos += n;
  }

  private static int pageOffset(long lsn) {
    return (int) (lsn & (WalFormat.XLOG_BLCKSZ - 1));
  }

  /** Records written so far, in order. */
  public List<Written> records() {
    return List.copyOf(written);
  }

  /** Current insert position (end of the last record). */
  public Lsn position() {
    return Lsn.of(pos);
  }

  /** All bytes from the start up to the current position. */
  public byte[] bytes() {
    return Arrays.copyOf(buf, (int) (pos - start));
  }

  /** All bytes up to the current position, zero-filled to the end of the current segment. */
  public byte[] bytesToSegmentEnd() {
    long end = (pos + segmentSize - 1) & -(long) segmentSize;
    if (end == pos && pos == start) {
      end = start + segmentSize;
    }
    return Arrays.copyOf(buf, (int) (end - start));
  }
}
