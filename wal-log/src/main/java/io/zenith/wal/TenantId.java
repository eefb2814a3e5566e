package io.zenith.wal;

import java.nio.ByteBuffer;

/** A tenant: 128 bits, printed as 32 hex characters. Immutable. */
public record TenantId(long hi, long lo) implements Comparable<TenantId>, java.io.Serializable {

  public static TenantId parse(String text) {
    byte[] b = ZenithId.parse("tenant id", text);
    return new TenantId(ZenithId.hi(b), ZenithId.lo(b));
  }

  public static TenantId generate() {
    byte[] b = ZenithId.random();
    return new TenantId(ZenithId.hi(b), ZenithId.lo(b));
  }

  /** The 16 bytes, big-endian (the order of the printed form). */
  public byte[] toBytes() {
    return ByteBuffer.allocate(16).putLong(hi).putLong(lo).array();
  }

  public static TenantId fromBytes(byte[] b, int off) {
    ByteBuffer buf = ByteBuffer.wrap(b, off, 16);
    return new TenantId(buf.getLong(), buf.getLong());
  }

  @Override
  public int compareTo(TenantId o) {
    int c = Long.compareUnsigned(hi, o.hi);
    return c != 0 ? c : Long.compareUnsigned(lo, o.lo);
  }

  @Override
  public String toString() {
    return ZenithId.print(hi, lo);
  }
}
