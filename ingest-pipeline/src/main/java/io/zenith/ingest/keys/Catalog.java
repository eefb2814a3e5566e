package io.zenith.ingest.keys;

import io.zenith.layer.Key;
import io.zenith.layer.KeyRange;
import io.zenith.layer.TimelineView;
import io.zenith.layer.Value;
import io.zenith.layer.Version;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Reads the directory-like structure of a PostgreSQL data directory from a timeline at an LSN:
 * which databases, relation forks, SLRU segments and two-phase files exist, and their sizes.
 * Stateless and thread-safe.
 */
public final class Catalog {
  private Catalog() {}

  /** A relation fork and its size in blocks. */
  public record RelFork(RelTag rel, ForkNumber fork, int blocks) {}

  /** A database directory. */
  public record Database(int spcOid, int dbOid) {}

  /** The size of a relation fork, or empty if the fork does not exist at {@code lsn}. */
  public static OptionalInt relSize(TimelineView t, RelTag rel, ForkNumber fork, Lsn lsn) {
    return sizeAt(t, KeySpace.relSize(rel, fork), lsn);
  }

  static OptionalInt sizeAt(TimelineView t, Key key, Lsn lsn) {
    Optional<Version> v = t.newest(key, lsn);
    if (v.isEmpty()) {
      return OptionalInt.empty();
    }
    if (!(v.get().value() instanceof Value.Image img)) {
      throw new IllegalStateException("size key " + key + " holds " + v.get().value());
    }
    return OptionalInt.of(KeySpace.decodeSize(img.bytes()));
  }

  /** Every relation fork in a key range (a database, or all), in key order. */
  public static List<RelFork> relations(TimelineView t, KeyRange range, Lsn lsn) {
    List<RelFork> out = new ArrayList<>();
    Key cur = range.start();
    while (true) {
      Optional<Key> k = t.nextKey(cur, range.end(), lsn);
      if (k.isEmpty()) {
        return out;
      }
      Key key = k.get();
      if (KeySpace.isRelSize(key)) {
        OptionalInt size = sizeAt(t, key, lsn);
        if (size.isPresent()) {
          out.add(new RelFork(KeySpace.relOf(key), KeySpace.forkOf(key), size.getAsInt()));
        }
        cur = key.next();
      } else {
        // A block: skip the fork's other blocks, straight to its size key.
        cur = KeySpace.relSize(KeySpace.relOf(key), KeySpace.forkOf(key));
      }
      if (cur == null) {
        return out;
      }
    }
  }

  public static List<RelFork> relationsOf(TimelineView t, int spc, int db, Lsn lsn) {
    return relations(t, KeySpace.relationsOf(spc, db), lsn);
  }

  /** Database directories that exist at {@code lsn}. */
  public static List<Database> databases(TimelineView t, Lsn lsn) {
    List<Database> out = new ArrayList<>();
    for (Key k : keys(t, KeySpace.ALL_DB_DIRS, lsn)) {
      out.add(new Database(k.field2(), k.field3()));
    }
    return out;
  }

  /** Segment numbers of an SLRU with their sizes in pages, in segment order. */
  public static List<int[]> slruSegments(TimelineView t, KeySpace.Slru slru, Lsn lsn) {
    List<int[]> out = new ArrayList<>();
    KeyRange range = KeySpace.slruKeys(slru);
    Key cur = range.start();
    while (true) {
      Optional<Key> k = t.nextKey(cur, range.end(), lsn);
      if (k.isEmpty()) {
        return out;
      }
      Key key = k.get();
      Key sizeKey = KeySpace.slruSegmentSize(slru, key.field3());
      if (key.equals(sizeKey)) {
        OptionalInt size = sizeAt(t, key, lsn);
        if (size.isPresent()) {
          out.add(new int[] {key.field3(), size.getAsInt()});
        }
        cur = key.next();
      } else {
        cur = sizeKey;
      }
      if (cur == null) {
        return out;
      }
    }
  }

  public static OptionalInt slruSegmentSize(
      TimelineView t, KeySpace.Slru slru, int segno, Lsn lsn) {
    return sizeAt(t, KeySpace.slruSegmentSize(slru, segno), lsn);
  }

  /** Xids of prepared transactions whose state file exists at {@code lsn}. */
  public static List<Integer> twoPhaseXids(TimelineView t, Lsn lsn) {
    List<Integer> out = new ArrayList<>();
    for (Key k : keys(t, KeySpace.ALL_TWO_PHASE, lsn)) {
      out.add(k.field2());
    }
    return out;
  }

  /** Every existing key of a range. */
  public static List<Key> keys(TimelineView t, KeyRange range, Lsn lsn) {
    List<Key> out = new ArrayList<>();
    Key cur = range.start();
    while (cur != null) {
      Optional<Key> k = t.nextKey(cur, range.end(), lsn);
      if (k.isEmpty()) {
        break;
      }
      out.add(k.get());
      cur = k.get().next();
    }
    return out;
  }

  /** The newest image of a key, or empty if it does not exist (or holds no image). */
  public static Optional<byte[]> image(TimelineView t, Key key, Lsn lsn) {
    return t.newest(key, lsn)
        .map(Version::value)
        .filter(v -> v instanceof Value.Image)
        .map(v -> ((Value.Image) v).bytes());
  }
}
