package io.zenith.ingest.pg;

import io.zenith.wal.Lsn;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * PostgreSQL 15's {@code CheckPoint} struct (88 bytes, little-endian), as a mutable value the
 * ingest keeps current: the counters a compute started from a basebackup must continue from.
 *
 * <pre>
 *  0 u64 redo   8 u32 ThisTimeLineID  12 u32 PrevTimeLineID  16 bool fullPageWrites
 * 24 u64 nextXid (epoch:xid)  32 u32 nextOid  36 u32 nextMulti  40 u32 nextMultiOffset
 * 44 u32 oldestXid  48 u32 oldestXidDB  52 u32 oldestMulti  56 u32 oldestMultiDB
 * 64 i64 time  72 u32 oldestCommitTsXid  76 u32 newestCommitTsXid  80 u32 oldestActiveXid
 * </pre>
 *
 * Not thread-safe.
 */
public final class CheckPointData {
  public static final int SIZE = 88;

  public long redo;
  public int thisTimeLineId;
  public int prevTimeLineId;
  public boolean fullPageWrites;
  public long nextXid;
  public int nextOid;
  public int nextMulti;
  public int nextMultiOffset;
  public int oldestXid;
  public int oldestXidDb;
  public int oldestMulti;
  public int oldestMultiDb;
  public long time;
  public int oldestCommitTsXid;
  public int newestCommitTsXid;
  public int oldestActiveXid;

  public static CheckPointData decode(byte[] a, int off) {
    ByteBuffer b = ByteBuffer.wrap(a, off, SIZE).slice().order(ByteOrder.LITTLE_ENDIAN);
    CheckPointData c = new CheckPointData();
    c.redo = b.getLong(0);
    c.thisTimeLineId = b.getInt(8);
    c.prevTimeLineId = b.getInt(12);
    c.fullPageWrites = b.get(16) != 0;
    c.nextXid = b.getLong(24);
    c.nextOid = b.getInt(32);
    c.nextMulti = b.getInt(36);
    c.nextMultiOffset = b.getInt(40);
    c.oldestXid = b.getInt(44);
    c.oldestXidDb = b.getInt(48);
    c.oldestMulti = b.getInt(52);
    c.oldestMultiDb = b.getInt(56);
    c.time = b.getLong(64);
    c.oldestCommitTsXid = b.getInt(72);
    c.newestCommitTsXid = b.getInt(76);
    c.oldestActiveXid = b.getInt(80);
    return c;
  }

  public static CheckPointData decode(byte[] a) {
    if (a.length != SIZE) {
      throw new IllegalArgumentException("a CheckPoint is " + SIZE + " bytes, got " + a.length);
    }
    return decode(a, 0);
  }

  public void encodeInto(byte[] a, int off) {
    ByteBuffer b = ByteBuffer.wrap(a, off, SIZE).slice().order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < SIZE; i++) {
      b.put(i, (byte) 0);
    }
    b.putLong(0, redo);
    b.putInt(8, thisTimeLineId);
    b.putInt(12, prevTimeLineId);
    b.put(16, (byte) (fullPageWrites ? 1 : 0));
    b.putLong(24, nextXid);
    b.putInt(32, nextOid);
    b.putInt(36, nextMulti);
    b.putInt(40, nextMultiOffset);
    b.putInt(44, oldestXid);
    b.putInt(48, oldestXidDb);
    b.putInt(52, oldestMulti);
    b.putInt(56, oldestMultiDb);
    b.putLong(64, time);
    b.putInt(72, oldestCommitTsXid);
    b.putInt(76, newestCommitTsXid);
    b.putInt(80, oldestActiveXid);
  }

  public byte[] encode() {
    byte[] a = new byte[SIZE];
    encodeInto(a, 0);
    return a;
  }

  public CheckPointData copy() {
    return decode(encode());
  }

  public Lsn redoLsn() {
    return Lsn.of(redo);
  }

  /**
   * Moves nextXid past {@code xid} like PostgreSQL's {@code AdvanceNextFullTransactionIdPastXid}:
   * only forward (modulo-2^32 comparison), into the next epoch when the 32-bit value wraps, and
   * never onto the special xids 0–2.
   */
  public void advanceNextXidPast(int xid) {
    if (!Xids.isNormal(xid)) {
      return;
    }
    int next = (int) nextXid;
    if (!Xids.followsOrEquals(xid, next)) {
      return;
    }
    long epoch = nextXid >>> 32;
    if (Integer.compareUnsigned(xid, next) < 0) {
      epoch++;
    }
    long full = (epoch << 32) | Integer.toUnsignedLong(xid);
    full++;
    if ((int) full == 0) {
      full += Xids.FIRST_NORMAL;
    }
    nextXid = full;
  }

  public boolean sameAs(CheckPointData o) {
    return java.util.Arrays.equals(encode(), o.encode());
  }
}
