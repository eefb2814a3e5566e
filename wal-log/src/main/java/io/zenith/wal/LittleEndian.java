package io.zenith.wal;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/** Little-endian reads from byte arrays without allocating views (WAL is little-endian). */
public final class LittleEndian {
  private LittleEndian() {}

  private static final VarHandle SHORT =
      MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);
  private static final VarHandle INT =
      MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
  private static final VarHandle LONG =
      MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

  public static int u8(byte[] b, int off) {
    return b[off] & 0xFF;
  }

  public static int u16(byte[] b, int off) {
    return Short.toUnsignedInt((short) SHORT.get(b, off));
  }

  public static int i32(byte[] b, int off) {
    return (int) INT.get(b, off);
  }

  /** A little-endian int at an absolute index of a buffer, whatever the buffer's byte order. */
  public static int i32(java.nio.ByteBuffer b, int index) {
    return (b.get(index) & 0xFF)
        | (b.get(index + 1) & 0xFF) << 8
        | (b.get(index + 2) & 0xFF) << 16
        | (b.get(index + 3) & 0xFF) << 24;
  }

  public static long i64(byte[] b, int off) {
    return (long) LONG.get(b, off);
  }
}
