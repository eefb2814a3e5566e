package io.zenith.layer;

/** (key, lsn) in store order: by key, then by unsigned LSN. */
record VersionKey(Key key, long lsn) implements Comparable<VersionKey> {
  @Override
  public int compareTo(VersionKey o) {
    int c = key.compareTo(o.key);
    return c != 0 ? c : Long.compareUnsigned(lsn, o.lsn);
  }
}
