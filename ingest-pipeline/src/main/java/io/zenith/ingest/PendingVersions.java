package io.zenith.ingest;

import io.zenith.layer.Key;
import io.zenith.layer.TimelineWriter;
import io.zenith.layer.Value;
import io.zenith.wal.Lsn;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The versions of the record being ingested, merged per key, written together once the record is
 * complete (so that readers never see half a record). Not thread-safe: the ingest thread's.
 */
final class PendingVersions {
  private final Map<Key, Value> pending = new LinkedHashMap<>();

  /** Adds a version; patches of one key within a record are merged, anything else replaces. */
  void put(Key key, Value v) {
    Value old = pending.get(key);
    if (old instanceof Value.Patch a && v instanceof Value.Patch b) {
      pending.put(key, concat(a, b));
    } else {
      pending.put(key, v);
    }
  }

  /** Writes every pending version at {@code end} into {@code timeline} and forgets them. */
  void writeTo(TimelineWriter timeline, Lsn end) {
    for (Map.Entry<Key, Value> e : pending.entrySet()) {
      timeline.put(e.getKey(), end, e.getValue());
    }
    pending.clear();
  }

  private static Value.Patch concat(Value.Patch a, Value.Patch b) {
    int n = a.offsets().length;
    int m = b.offsets().length;
    int[] offsets = Arrays.copyOf(a.offsets(), n + m);
    byte[] masks = Arrays.copyOf(a.masks(), n + m);
    byte[] bits = Arrays.copyOf(a.bits(), n + m);
    System.arraycopy(b.offsets(), 0, offsets, n, m);
    System.arraycopy(b.masks(), 0, masks, n, m);
    System.arraycopy(b.bits(), 0, bits, n, m);
    return new Value.Patch(a.initPageIfNew() || b.initPageIfNew(), offsets, masks, bits);
  }
}
