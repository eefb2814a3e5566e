package io.zenith.layer;

import io.zenith.wal.Lsn;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Rebuilding a timeline's index entries from its local layer files, when the index is lost or has
 * no state for it (moved out of {@link LayerStore}, which opens the store). Stateless.
 */
final class TimelineRebuild {
  private static final Logger log = LoggerFactory.getLogger(TimelineRebuild.class);

  private TimelineRebuild() {}

  /** The stubs in {@code dir} whose layer file is not there (ADR 0027). */
  private static List<Path> remoteOnly(Path dir) throws IOException {
    try (java.util.stream.Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> p.getFileName().toString().endsWith(LayerStub.SUFFIX))
          .filter(
              p -> {
                String n = p.getFileName().toString();
                return !Files.exists(
                    p.resolveSibling(n.substring(0, n.length() - LayerStub.SUFFIX.length())));
              })
          .sorted()
          .toList();
    }
  }

  /** Re-creates the index entries of a timeline from its layer files. */
  static Timeline rebuild(
      LayerIndex index, LayerStoreConfig config, LayerDisk layerDisk, TimelineMetadata md, Path dir)
      throws IOException, RocksDBException {
    index.deleteTimeline(md.tenant(), md.timeline());
    Lsn disk = md.ancestor() != null ? md.ancestorLsn() : Lsn.INVALID;
    List<LayerFile.Reader> opened = new ArrayList<>();
    String brokenReason = null;
    for (Path f : TimelineFiles.layerFiles(dir)) {
      try {
        LayerFile.Reader r = LayerFile.Reader.open(f);
        List<LayerFile.IndexEntry> entries = r.readIndex();
        LayerFile.Header h = r.header();
        if (!h.tenant().equals(md.tenant()) || !h.timeline().equals(md.timeline())) {
          r.close();
          throw new LayerStoreException(
              LayerStoreException.Kind.CORRUPT_FILE,
              "layer file " + f + " belongs to " + h.tenant() + "/" + h.timeline());
        }
        index.registerLayer(
            md.tenant(),
            md.timeline(),
            // In id order (layerFiles sorts by name, which starts with the id): a version that a
            // later layer holds too (an image at a delta's LSN, a compacted copy) ends up naming
            // the later layer, as it did before the index was lost.
            LayerIndex.LayerInfo.of(r, Files.size(f)),
            entries);
        index.reserveLayerIdsUpTo(h.layerId());
        opened.add(r);
        disk = Lsn.max(disk, h.lsnTo());
      } catch (LayerStoreException e) {
        brokenReason = e.getMessage();
      }
    }
    List<Path> remoteOnly = remoteOnly(dir);
    if (!remoteOnly.isEmpty()) {
      // Their versions are not in the rebuilt index: reads would miss them and return older
      // pages. Broken says so; an attach (ADR 0027) registers them again from remote storage.
      brokenReason =
          "its index was rebuilt from the local layer files, but "
              + remoteOnly.size()
              + " layer files are only in remote storage (such as "
              + remoteOnly.getFirst().getFileName()
              + "): detach and attach the tenant again to read them";
    }
    LayerIndex.TimelineState state = new LayerIndex.TimelineState(disk, Lsn.INVALID, Lsn.INVALID);
    index.putState(md.tenant(), md.timeline(), state);
    Timeline t = new Timeline(md, dir, index, config, layerDisk, state);
    for (LayerFile.Reader r : opened) {
      t.addReader(r.header().layerId(), r);
    }
    if (brokenReason != null) {
      t.markBroken(brokenReason);
    }
    log.info(
        "rebuilt the index of {}/{} from {} layer files; disk-consistent LSN {}",
        md.tenant(),
        md.timeline(),
        opened.size(),
        disk);
    return t;
  }
}
