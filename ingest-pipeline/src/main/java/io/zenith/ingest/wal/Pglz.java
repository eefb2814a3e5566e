package io.zenith.ingest.wal;

/**
 * PostgreSQL's own LZ compression format ({@code common/pg_lzcompress.c}), decompression only: a
 * control byte announces eight items, each a literal byte (bit clear) or a back-reference (bit set)
 * of two bytes {@code [len-3 | off>>8 << 4][off & 0xff]}, with an extra length byte when the length
 * nibble is 15 (length 18).
 */
final class Pglz {
  private Pglz() {}

  /**
   * Decompresses {@code src[srcOff, srcOff+srcLen)} into exactly {@code rawSize} bytes of {@code
   * dst} starting at {@code dstOff}. Returns false when the input is corrupt or does not produce
   * exactly {@code rawSize} bytes from exactly all of its bytes ({@code check_complete}).
   */
  static boolean decompress(
      byte[] src, int srcOff, int srcLen, byte[] dst, int dstOff, int rawSize) {
    int sp = srcOff;
    int srcEnd = srcOff + srcLen;
    int dp = dstOff;
    int dstEnd = dstOff + rawSize;
    while (sp < srcEnd && dp < dstEnd) {
      int ctrl = src[sp++] & 0xFF;
      for (int bit = 0; bit < 8 && sp < srcEnd && dp < dstEnd; bit++, ctrl >>= 1) {
        if ((ctrl & 1) != 0) {
          if (sp + 1 >= srcEnd) {
            return false;
          }
          int len = (src[sp] & 0x0F) + 3;
          int off = ((src[sp] & 0xF0) << 4) | (src[sp + 1] & 0xFF);
          sp += 2;
          if (len == 18) {
            if (sp >= srcEnd) {
              return false;
            }
            len += src[sp++] & 0xFF;
          }
          if (off == 0 || off > dp - dstOff) {
            return false;
          }
          len = Math.min(len, dstEnd - dp);
          // Overlapping copies are intended: they repeat the last `off` bytes.
          for (int i = 0; i < len; i++) {
            dst[dp + i] = dst[dp + i - off];
          }
          dp += len;
        } else {
          dst[dp++] = src[sp++];
        }
      }
    }
    return dp == dstEnd && sp == srcEnd;
  }
}
