package io.zenith.gateway.pageserver;

import io.zenith.ingest.keys.CommitTimestamps;
import io.zenith.layer.LayerStats;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.Timeline;
import io.zenith.layer.TimelineView;
import java.util.List;
import java.util.Locale;

/** Parts of a timeline's API detail that need a look into its history or files. Static. */
final class TimelineDetails {
  private TimelineDetails() {}

  /** A broken timeline's history cannot be searched: null, as without commits. */
  static String pitrStart(TimelineView t) {
    if (t.brokenReason().isPresent()) {
      return null;
    }
    try {
      return CommitTimestamps.pitrStart(t).map(c -> c.time().toString()).orElse(null);
    } catch (LayerStoreException e) {
      // deleted or failing under the listing: the rest of the detail still says what it can
      return null;
    }
  }

  static ApiModel.LayerCounts layerCounts(TimelineView t) {
    if (!(t instanceof Timeline tl)) {
      return null;
    }
    LayerStats s = tl.layerStats();
    return new ApiModel.LayerCounts(s.l0(), s.l1(), s.images(), s.bytes());
  }

  /** The timeline's layer files, for {@code GET …/layer}. */
  static ApiModel.LayerList layers(Timeline t) {
    List<ApiModel.LayerFileEntry> files =
        t.layerFiles().stream()
            .map(
                f ->
                    new ApiModel.LayerFileEntry(
                        f.fileName(),
                        f.kind().name().toLowerCase(Locale.ROOT),
                        f.level(),
                        f.lsnFrom().toString(),
                        f.lsnTo().toString(),
                        f.size()))
            .toList();
    return new ApiModel.LayerList(t.tenant().toString(), t.id().toString(), files);
  }
}
