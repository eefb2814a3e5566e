package io.zenith.layer;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The layer files of a snapshot to share (ADR 0028): {@link #export} writes a timeline's content at
 * one LSN as image layer files, {@link #importAsRoot} makes those files a new root timeline of
 * another store. Both stream: at most one file's index and one value are in memory at a time. The
 * files are ordinary image layers ({@link LayerFile}), each over a key range; together they cover
 * the whole key space. Stateless, so thread-safe.
 */
public final class SnapshotLayers {
  private static final Logger log = LoggerFactory.getLogger(SnapshotLayers.class);

  private SnapshotLayers() {}

  /** Takes each file {@link #export} wrote, before the next one is written. */
  @FunctionalInterface
  public interface FileSink {
    /**
     * @param seq the file's number, from 1
     * @param file the image layer file, which the sink may delete
     */
    void accept(int seq, Path file) throws IOException;
  }

  /** What an export wrote. */
  public record Exported(int files, long keys) {}

  /**
   * Writes every key {@code timeline} has at {@code lsn} (its ancestors' too, tombstones left out)
   * as images at {@code lsn} into image layer files of at most {@code keysPerFile} keys in {@code
   * staging}, each handed to {@code sink} as soon as it is durable. Values that are images already
   * are copied; the others are materialized by {@code images} (WAL redo). The LSN is pinned against
   * GC while it runs. Blocking.
   *
   * @throws LayerStoreException INVALID_LSN when {@code lsn} is below the GC cutoff or outside the
   *     timeline's history; UNKNOWN_TIMELINE when it is deleted meanwhile
   */
  @SuppressWarnings("try") // the pin is held, not used
  public static Exported export(
      Timeline timeline, Lsn lsn, ImageSource images, Path staging, int keysPerFile, FileSink sink)
      throws IOException {
    if (lsn.isBefore(timeline.startLsn()) || lsn.isAfter(timeline.lastRecordLsn())) {
      throw new LayerStoreException(
          LayerStoreException.Kind.INVALID_LSN,
          "cannot take a snapshot of "
              + timeline
              + " at "
              + lsn
              + ": its history is "
              + timeline.startLsn()
              + ".."
              + timeline.lastRecordLsn());
    }
    try (AutoCloseable pin = timeline.pin(lsn)) {
      Optional<Key> first = timeline.nextKey(Key.MIN, Key.MAX, lsn);
      if (first.isEmpty()) {
        throw new LayerStoreException(
            LayerStoreException.Kind.INVALID_LSN,
            "cannot take a snapshot of " + timeline + " at " + lsn + ": it has no data there");
      }
      Key start = Key.MIN;
      Key next = first.get();
      int seq = 0;
      long keys = 0;
      while (next != null) {
        List<Key> batch = new ArrayList<>();
        while (next != null && batch.size() < keysPerFile) {
          batch.add(next);
          Key after = next.next();
          next = after == null ? null : timeline.nextKey(after, Key.MAX, lsn).orElse(null);
        }
        Key end = next == null ? Key.MAX : next;
        seq++;
        LayerFile.Header h =
            new LayerFile.Header(
                LayerFile.Kind.IMAGE,
                timeline.tenant(),
                timeline.id(),
                new KeyRange(start, end),
                Lsn.of(lsn.value() - 1),
                lsn,
                seq,
                1);
        Path file = staging.resolve(String.format("%06d.layer", seq));
        LayerFile.Writer.write(
            file,
            h,
            w -> {
              for (Key k : batch) {
                w.add(k, lsn, new Value.Image(image(timeline, k, lsn, images)));
              }
            });
        keys += batch.size();
        sink.accept(seq, file);
        start = end;
      }
      return new Exported(seq, keys);
    } catch (IOException | RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException("unpinning " + lsn + " failed", e); // LsnPins never throws
    }
  }

  private static byte[] image(Timeline t, Key key, Lsn lsn, ImageSource images) {
    Optional<Version> v = t.newest(key, lsn);
    if (v.isPresent() && v.get().value() instanceof Value.Image i) {
      return i.bytes();
    }
    return images.image(t, key, lsn);
  }

  /**
   * Creates root timeline {@code id} of {@code tenant} from a snapshot's image layer files (already
   * checked against their manifest's CRC32Cs): its history starts at the manifest's LSN, which is
   * its last record and its disk-consistent LSN on return. Each file is copied blob by blob (each
   * blob's CRC checked) into a layer file of the new timeline, whose header names it, and committed
   * to the index. On failure, the new timeline is deleted again and the failure rethrown.
   *
   * @throws LayerStoreException CORRUPT_FILE when a file is not an image layer at the LSN or is
   *     damaged; ALREADY_EXISTS; UNKNOWN_TENANT
   */
  public static Timeline importAsRoot(
      LayerStore store, TenantId tenant, TimelineId id, SnapshotManifest m, List<Path> files) {
    Timeline t = store.createRootTimeline(tenant, id, m.lsn(), m.systemId(), m.pgVersion());
    try {
      LayerIndex index = store.index();
      for (Path f : files) {
        try (LayerFile.Reader r = LayerFile.Reader.open(f)) {
          LayerFile.Header s = r.header();
          if (s.kind() != LayerFile.Kind.IMAGE || !s.lsnTo().equals(m.lsn())) {
            throw new LayerStoreException(
                LayerStoreException.Kind.CORRUPT_FILE,
                "snapshot file "
                    + f.getFileName()
                    + " is not an image layer at "
                    + m.lsn()
                    + " ("
                    + s.kind()
                    + " at "
                    + s.lsnTo()
                    + ")");
          }
          List<LayerFile.IndexEntry> entries = r.readIndex();
          long layerId = index.allocateLayerId();
          LayerFile.Header h =
              new LayerFile.Header(
                  LayerFile.Kind.IMAGE, tenant, id, s.keys(), s.lsnFrom(), s.lsnTo(), layerId, 1);
          LayerIndex.NewLayer written =
              t.layers()
                  .write(
                      h,
                      LayerDisk.DIRECT,
                      w -> {
                        for (LayerFile.IndexEntry e : entries) {
                          w.addBlob(
                              e.key(), e.lsn(), r.readBlob(e.offset(), e.length()), e.flags());
                        }
                      });
          index.commit(tenant, id, new LayerIndex.Changes(List.of(written), List.of(), List.of()));
        }
      }
      // No versions after the images: an empty layer records the LSN durably.
      t.finishRecord(m.lsn(), m.prevLsn());
      t.checkpoint();
      log.info(
          "imported a snapshot of {}/{} at {} as root timeline {}/{}: {} files",
          m.sourceTenant(),
          m.sourceTimeline(),
          m.lsn(),
          tenant,
          id,
          files.size());
      return t;
    } catch (IOException | RocksDBException | RuntimeException e) {
      try {
        store.deleteTimeline(tenant, id);
      } catch (RuntimeException d) {
        e.addSuppressed(d);
      }
      if (e instanceof LayerStoreException l) {
        throw l;
      }
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot import the snapshot as timeline " + tenant + "/" + id + ": " + e.getMessage(),
          e);
    }
  }
}
