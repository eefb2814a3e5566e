package io.zenith.layer;

import io.zenith.wal.Lsn;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The removal of what no readable LSN of one timeline needs, below its GC cutoff (which the caller
 * has made durable first, so no read below it is served any more): for each key, the versions older
 * than its newest base at or below the cutoff (reconstruction at the cutoff or later starts there
 * at the latest). Then the layer files that no index entry names any more are retired.
 *
 * <p>Crash-safe by order: index entries first (synced batches; a crash between them leaves a
 * partial removal that the next pass completes), files after ({@link TimelineLayers#retire}; a
 * crash before that leaves unregistered files, deleted at the next start). A lost index rebuilt
 * from the files may bring removed entries back; they lie below the cutoff, behind a base that
 * every read at or above it stops at, and the next pass removes them again.
 *
 * <p>Works on an {@link IndexSnapshot}; flushes meanwhile only add versions above the cutoff to new
 * layers, which it neither sees nor retires. The caller holds the timeline's maintenance lock. Not
 * thread-safe.
 */
final class GarbageCollection {
  private static final Logger log = LoggerFactory.getLogger(GarbageCollection.class);

  /** Index entries removed per synced batch: bounds the memory of one pass. */
  private static final int BATCH = 50_000;

  private final Timeline timeline;
  private final TimelineLayers layers;
  private final LayerIndex index;

  /** Per registered layer, the bytes of its versions the last pass kept (maintenance lock). */
  private Map<Long, Long> liveBytes = Map.of();

  GarbageCollection(Timeline timeline, TimelineLayers layers, LayerIndex index) {
    this.timeline = timeline;
    this.layers = layers;
    this.index = index;
  }

  /** Removes what reads at or above {@code cutoff} do not need. */
  GcResult collect(Lsn cutoff) throws IOException, RocksDBException {
    // Per layer, the bytes of its versions that stay; a layer absent has none left.
    Map<Long, Long> live = new HashMap<>();
    List<LayerIndex.VersionRef> removable = new ArrayList<>();
    List<LayerIndex.Entry> key = new ArrayList<>();
    long removed = 0;
    List<LayerIndex.LayerInfo> registered;
    try (IndexSnapshot snap = index.snapshot(timeline.tenant(), timeline.id())) {
      registered = snap.layers();
      long[] count = {0};
      snap.forEachVersion(
          e -> {
            if (!key.isEmpty() && !key.getFirst().key().equals(e.key())) {
              sweepKey(key, cutoff, removable, live);
              key.clear();
              if (removable.size() >= BATCH) {
                count[0] += removeVersions(removable);
              }
            }
            key.add(e);
          });
      if (!key.isEmpty()) {
        sweepKey(key, cutoff, removable, live);
      }
      removed = count[0] + removeVersions(removable);
    }
    // Only layers registered in the snapshot, and wholly below the cutoff: one that a flush
    // committed since has versions the snapshot did not see.
    List<Long> dead = new ArrayList<>();
    Map<Long, Long> kept = new HashMap<>();
    for (LayerIndex.LayerInfo l : registered) {
      if (!live.containsKey(l.layerId()) && !l.lsnTo().isAfter(cutoff)) {
        dead.add(l.layerId());
      } else {
        kept.put(l.layerId(), live.getOrDefault(l.layerId(), 0L));
      }
    }
    liveBytes = kept;
    long freed = 0;
    if (!dead.isEmpty()) {
      index.commit(
          timeline.tenant(), timeline.id(), new LayerIndex.Changes(List.of(), List.of(), dead));
      Seams.reached(Seams.Seam.GC_LAYERS_UNREGISTERED);
      freed = layers.retire(dead);
    }
    log.info(
        "GC of {} at cutoff {}: {} versions and {} layer files ({} bytes) removed",
        timeline,
        cutoff,
        removed,
        dead.size(),
        freed);
    return new GcResult(cutoff, removed, dead.size(), freed);
  }

  /**
   * Per layer registered at the last pass and not deleted by it, the bytes of its versions the pass
   * kept: what {@link Compaction#rewriteMostlyDead} decides on. Versions die only by GC (an image
   * taking over a delta's ref at its LSN aside, which this overestimates as alive), so the figure
   * stays right until the next pass; layers written since are not in it.
   */
  Map<Long, Long> liveBytes() {
    return liveBytes;
  }

  /**
   * One key's versions (ascending LSN): those below its newest base at or below the cutoff are
   * removable; the rest count as live in their layers ({@code live}: the bytes of their blobs). A
   * key without such a base keeps everything (its history starts at a zero page, or continues in
   * the ancestor).
   */
  static void sweepKey(
      List<LayerIndex.Entry> versions,
      Lsn cutoff,
      List<LayerIndex.VersionRef> removable,
      Map<Long, Long> live) {
    int base = -1;
    for (int i = 0; i < versions.size(); i++) {
      LayerIndex.Entry e = versions.get(i);
      if (e.lsn().isAfter(cutoff)) {
        break;
      }
      if (e.ref().isBase()) {
        base = i;
      }
    }
    for (int i = 0; i < versions.size(); i++) {
      LayerIndex.Entry e = versions.get(i);
      if (i < base) {
        removable.add(new LayerIndex.VersionRef(e.key(), e.lsn()));
      } else {
        live.merge(e.ref().layerId(), (long) e.ref().length(), Long::sum);
      }
    }
  }

  private long removeVersions(List<LayerIndex.VersionRef> removable) throws IOException {
    int n = removable.size();
    if (n == 0) {
      return 0;
    }
    try {
      index.commit(
          timeline.tenant(),
          timeline.id(),
          new LayerIndex.Changes(List.of(), List.copyOf(removable), List.of()));
    } catch (RocksDBException e) {
      throw new IOException("cannot remove versions of " + timeline + ": " + e.getMessage(), e);
    }
    removable.clear();
    Seams.reached(Seams.Seam.GC_VERSIONS_REMOVED);
    return n;
  }
}
