package io.zenith.layer;

/** Keys from {@code start} (inclusive) to {@code end} (exclusive). Immutable. */
public record KeyRange(Key start, Key end) {
  public static final KeyRange ALL = new KeyRange(Key.MIN, Key.MAX);

  public KeyRange {
    if (start.compareTo(end) > 0) {
      throw new IllegalArgumentException("empty key range " + start + ".." + end);
    }
  }

  public boolean overlaps(KeyRange o) {
    return start.compareTo(o.end) < 0 && o.start.compareTo(end) < 0;
  }

  public boolean contains(Key k) {
    return k.compareTo(start) >= 0 && k.compareTo(end) < 0;
  }
}
