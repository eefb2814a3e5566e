package io.zenith.wal;

import java.security.SecureRandom;
import java.util.HexFormat;

/** Shared parsing and printing of Zenith's 128-bit IDs: 32 lower-case hex characters. */
final class ZenithId {
  private ZenithId() {}

  private static final SecureRandom RANDOM = new SecureRandom();
  private static final HexFormat HEX = HexFormat.of();

  /** Parses the canonical form only: IDs are compared and stored as they print. */
  static byte[] parse(String what, String text) {
    if (text == null || text.length() != 32 || !isLowerHex(text)) {
      throw new IllegalArgumentException(
          "invalid " + what + " \"" + text + "\": expected 32 lower-case hex characters");
    }
    return HEX.parseHex(text);
  }

  private static boolean isLowerHex(String s) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (!(c >= '0' && c <= '9' || c >= 'a' && c <= 'f')) {
        return false;
      }
    }
    return true;
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
