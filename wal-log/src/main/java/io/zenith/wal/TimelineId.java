package io.zenith.wal;

import java.nio.ByteBuffer;

/**
 * A timeline (a branch of a database's history): 128 bits, printed as 32 hex characters. Immutable.
 */
public record TimelineId(long hi, long lo) implements Comparable<TimelineId>, java.io.Serializable {

  public static TimelineId parse(String text) {
    byte[] b = ZenithId.parse("timeline id", text);
    return new TimelineId(ZenithId.hi(b), ZenithId.lo(b));
  }

  public static TimelineId generate() {
    byte[] b = ZenithId.random();
    return new TimelineId(ZenithId.hi(b), ZenithId.lo(b));
  }

  /** The 16 bytes, big-endian (the order of the printed form). */
  public byte[] toBytes() {
    return ByteBuffer.allocate(16).putLong(hi).putLong(lo).array();
  }

  public static TimelineId fromBytes(byte[] b, int off) {
    ByteBuffer buf = ByteBuffer.wrap(b, off, 16);
    return new TimelineId(buf.getLong(), buf.getLong());
  }

  @Override
  public int compareTo(TimelineId o) {
    int c = Long.compareUnsigned(hi, o.hi);
    return c != 0 ? c : Long.compareUnsigned(lo, o.lo);
  }

  @Override
  public String toString() {
    return ZenithId.print(hi, lo);
  }
}
