package io.zenith.ingest.pg;

/** PostgreSQL's 32-bit transaction id arithmetic (modulo 2^32 for normal xids). */
public final class Xids {
  private Xids() {}

  public static final int INVALID = 0;
  public static final int BOOTSTRAP = 1;
  public static final int FROZEN = 2;
  public static final int FIRST_NORMAL = 3;

  public static boolean isNormal(int xid) {
    return Integer.compareUnsigned(xid, FIRST_NORMAL) >= 0;
  }

  /** {@code TransactionIdPrecedes}. */
  public static boolean precedes(int a, int b) {
    if (!isNormal(a) || !isNormal(b)) {
      return Integer.compareUnsigned(a, b) < 0;
    }
    return a - b < 0;
  }

  /** {@code TransactionIdFollowsOrEquals}. */
  public static boolean followsOrEquals(int a, int b) {
    if (!isNormal(a) || !isNormal(b)) {
      return Integer.compareUnsigned(a, b) >= 0;
    }
    return a - b >= 0;
  }

  /** {@code MultiXactIdPrecedes}: multixact ids compare modulo 2^32 (0 is invalid). */
  public static boolean multiPrecedes(int a, int b) {
    return a - b < 0;
  }
}
