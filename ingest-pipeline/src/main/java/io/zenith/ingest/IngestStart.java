package io.zenith.ingest;

import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.PgControl;
import io.zenith.layer.TimelineWriter;
import io.zenith.wal.Lsn;

/**
 * Where a timeline's ingest resumes: after its last record, with the WAL segment size from its
 * pg_control and a {@link WalIngest} at that point (its checkpoint). The pageserver's WAL receiver
 * and its restore of offloaded WAL both start an {@link IngestPipeline} from it.
 *
 * <p>Reading it may download a layer file that is only in remote storage, which blocks: call {@link
 * #read} where blocking is allowed, never on an event loop.
 *
 * @param lsn the timeline's last record LSN when read
 */
public record IngestStart(Lsn lsn, int segmentSize, WalIngest ingest) {
  /**
   * @throws IllegalStateException if the timeline has no pg_control or no checkpoint there
   */
  public static IngestStart read(TimelineWriter timeline, WalIngest.PageReader pages) {
    Lsn start = timeline.lastRecordLsn();
    byte[] control =
        Catalog.image(timeline, KeySpace.CONTROL_FILE, start)
            .orElseThrow(
                () -> new IllegalStateException("timeline " + timeline + " has no pg_control"));
    return new IngestStart(
        start, PgControl.parse(control).walSegmentSize(), new WalIngest(timeline, pages));
  }
}
