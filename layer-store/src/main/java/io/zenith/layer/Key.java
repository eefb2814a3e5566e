package io.zenith.layer;

import java.util.HexFormat;

/**
 * A key of the versioned store: 18 bytes, compared as unsigned big-endian bytes.
 *
 * <pre>
 * byte  0     field1 u8    key space (relation data, SLRU, metadata …)
 * bytes 1-4   field2 u32
 * bytes 5-8   field3 u32
 * bytes 9-12  field4 u32
 * byte  13    field5 u8
 * bytes 14-17 field6 u32
 * </pre>
 *
 * What the fields mean is the business of the layer above (ingest-pipeline's key spaces); this
 * store only orders and stores them. Immutable.
 */
public record Key(int field1, int field2, int field3, int field4, int field5, int field6)
    implements Comparable<Key> {

  public static final int SIZE = 18;

  public static final Key MIN = new Key(0, 0, 0, 0, 0, 0);
  public static final Key MAX = new Key(0xFF, -1, -1, -1, 0xFF, -1);

  public Key {
    if ((field1 & ~0xFF) != 0 || (field5 & ~0xFF) != 0) {
      throw new IllegalArgumentException("field1 and field5 are bytes: " + field1 + ", " + field5);
    }
  }

  public void writeTo(byte[] b, int off) {
    b[off] = (byte) field1;
    putInt(b, off + 1, field2);
    putInt(b, off + 5, field3);
    putInt(b, off + 9, field4);
    b[off + 13] = (byte) field5;
    putInt(b, off + 14, field6);
  }

  public byte[] toBytes() {
    byte[] b = new byte[SIZE];
    writeTo(b, 0);
    return b;
  }

  public static Key readFrom(byte[] b, int off) {
    return new Key(
        b[off] & 0xFF,
        getInt(b, off + 1),
        getInt(b, off + 5),
        getInt(b, off + 9),
        b[off + 13] & 0xFF,
        getInt(b, off + 14));
  }

  /** The next key in order (this key + 1), or null after {@link #MAX}. */
  public Key next() {
    if (field6 != -1) {
      return new Key(field1, field2, field3, field4, field5, field6 + 1);
    }
    byte[] b = toBytes();
    for (int i = SIZE - 1; i >= 0; i--) {
      if (++b[i] != 0) {
        return readFrom(b, 0);
      }
    }
    return null;
  }

  @Override
  public int compareTo(Key o) {
    int c = Integer.compare(field1, o.field1);
    if (c == 0) {
      c = Integer.compareUnsigned(field2, o.field2);
    }
    if (c == 0) {
      c = Integer.compareUnsigned(field3, o.field3);
    }
    if (c == 0) {
      c = Integer.compareUnsigned(field4, o.field4);
    }
    if (c == 0) {
      c = Integer.compare(field5, o.field5);
    }
    return c != 0 ? c : Integer.compareUnsigned(field6, o.field6);
  }

  /** 36 hex digits, the bytes in order. */
  @Override
  public String toString() {
    return HexFormat.of().formatHex(toBytes());
  }

  public static Key parse(String hex) {
    byte[] b = HexFormat.of().parseHex(hex);
    if (b.length != SIZE) {
      throw new IllegalArgumentException("a key is 36 hex digits: " + hex);
    }
    return readFrom(b, 0);
  }

  static void putInt(byte[] b, int off, int v) {
    b[off] = (byte) (v >>> 24);
    b[off + 1] = (byte) (v >>> 16);
    b[off + 2] = (byte) (v >>> 8);
    b[off + 3] = (byte) v;
  }

  static int getInt(byte[] b, int off) {
    return (b[off] & 0xFF) << 24
        | (b[off + 1] & 0xFF) << 16
        | (b[off + 2] & 0xFF) << 8
        | (b[off + 3] & 0xFF);
  }
}
