package io.zenith.wal;

import java.security.SecureRandom;
import java.util.HexFormat;

/** Shared parsing and printing of Zenith's 128-bit IDs: 32 lower-case hex characters. */
final class ZenithId {
  private ZenithId() {}

  private static final SecureRandom RANDOM = new SecureRandom();
  private static final HexFormat HEX = HexFormat.of();

  static byte[] parse(String what, String text) {
    if (text == null || text.length() != 32) {
      throw new IllegalArgumentException(
          "invalid " + what + " \"" + text + "\": expected 32 hex characters");
    }
    try {
      return HEX.parseHex(text.toLowerCase(java.util.Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(
          "invalid " + what + " \"" + text + "\": expected 32 hex characters", e);
    }
  }

  static byte[] random() {
    byte[] b = new byte[16];
    RANDOM.nextBytes(b);
    return b;
  }

  static String print(long hi, long lo) {
    return HEX.toHexDigits(hi) + HEX.toHexDigits(lo);
  }

  /** The first 8 bytes, big-endian (IDs print in byte order). */
  static long hi(byte[] b) {
    return java.nio.ByteBuffer.wrap(b).getLong(0);
  }

  static long lo(byte[] b) {
    return java.nio.ByteBuffer.wrap(b).getLong(8);
  }
}
