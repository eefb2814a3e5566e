package io.zenith.wal;

/**
 * A position in the WAL: a byte offset into PostgreSQL's 64-bit WAL address space.
 *
 * <p>Printed and parsed exactly like PostgreSQL's {@code pg_lsn}: two upper-case hexadecimal
 * numbers, the high and low 32 bits, separated by a slash ({@code 0/16B3748}). Ordering is
 * unsigned. Immutable and thread-safe.
 */
public record Lsn(long value) implements Comparable<Lsn>, java.io.Serializable {

  /** PostgreSQL's {@code InvalidXLogRecPtr}. */
  public static final Lsn INVALID = new Lsn(0);

  /** The largest position; used as "no upper bound". */
  public static final Lsn MAX = new Lsn(-1L);

  public static Lsn of(long value) {
    return value == 0 ? INVALID : new Lsn(value);
  }

  /**
   * Parses {@code X/Y} the way PostgreSQL's {@code pg_lsn_in} does: each part one to eight hex
   * digits, nothing else around them.
   *
   * @throws IllegalArgumentException with a message naming the text when it is not an LSN
   */
  public static Lsn parse(String text) {
    int slash = text.indexOf('/');
    if (slash < 1 || slash > 8 || text.length() - slash - 1 < 1 || text.length() - slash - 1 > 8) {
      throw new IllegalArgumentException("invalid LSN \"" + text + "\": expected X/Y in hex");
    }
    try {
      long hi = parseHex(text, 0, slash);
      long lo = parseHex(text, slash + 1, text.length());
      return of((hi << 32) | lo);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("invalid LSN \"" + text + "\": expected X/Y in hex", e);
    }
  }

  private static long parseHex(String text, int from, int to) {
    for (int i = from; i < to; i++) {
      char c = text.charAt(i);
      // ASCII only: Character.digit and Long.parseLong also take other scripts' digits.
      if (!(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')) {
        throw new NumberFormatException(text);
      }
    }
    return Long.parseLong(text, from, to, 16);
  }

  public boolean isValid() {
    return value != 0;
  }

  public Lsn plus(long bytes) {
    return of(value + bytes);
  }

  /** Bytes from {@code other} up to this position; negative if {@code other} is later. */
  public long minus(Lsn other) {
    return value - other.value;
  }

  /** PostgreSQL's MAXALIGN: the next multiple of 8 at or after this position. */
  public Lsn align() {
    return of((value + 7) & ~7L);
  }

  public long segmentNumber(int segmentSize) {
    return Long.divideUnsigned(value, segmentSize);
  }

  public int segmentOffset(int segmentSize) {
    return (int) (value & (segmentSize - 1));
  }

  public int pageOffset() {
    return (int) (value & (WalFormat.XLOG_BLCKSZ - 1));
  }

  public Lsn pageStart() {
    return of(value & ~((long) WalFormat.XLOG_BLCKSZ - 1));
  }

  public boolean isBefore(Lsn other) {
    return compareTo(other) < 0;
  }

  public boolean isAfter(Lsn other) {
    return compareTo(other) > 0;
  }

  public static Lsn max(Lsn a, Lsn b) {
    return a.compareTo(b) >= 0 ? a : b;
  }

  public static Lsn min(Lsn a, Lsn b) {
    return a.compareTo(b) <= 0 ? a : b;
  }

  @Override
  public int compareTo(Lsn other) {
    return Long.compareUnsigned(value, other.value);
  }

  @Override
  public String toString() {
    return Long.toHexString(value >>> 32).toUpperCase(java.util.Locale.ROOT)
        + "/"
        + Long.toHexString(value & 0xFFFF_FFFFL).toUpperCase(java.util.Locale.ROOT);
  }
}
