package io.zenith.layer;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.util.List;
import org.rocksdb.RocksDBException;

/**
 * Writes a timeline's durable state (RocksDB's timeline entry: disk-consistent, previous-record and
 * remote-consistent LSNs) from two threads that each own a part of it: the flush (disk-consistent
 * and previous-record LSNs, with a layer) and the upload queue (remote-consistent LSN, ADR 0023).
 * One lock orders the writes, so neither puts back an older value of the other's part. Thread-safe.
 */
final class TimelineStateWriter {
  private final TenantId tenant;
  private final TimelineId timeline;
  private final LayerIndex index;
  private volatile Lsn remoteConsistentLsn;
  private boolean closed;

  TimelineStateWriter(TenantId tenant, TimelineId timeline, LayerIndex index, Lsn remote) {
    this.tenant = tenant;
    this.timeline = timeline;
    this.index = index;
    this.remoteConsistentLsn = remote;
  }

  Lsn remoteConsistentLsn() {
    return remoteConsistentLsn;
  }

  /** Commits a flushed layer (or none, for an empty layer) with the new disk-consistent LSN. */
  synchronized void commitLayer(
      LayerIndex.LayerInfo info, List<LayerFile.IndexEntry> entries, Lsn to, Lsn prev)
      throws RocksDBException {
    index.commitLayer(
        tenant,
        timeline,
        info,
        entries,
        new LayerIndex.TimelineState(to, prev, remoteConsistentLsn));
  }

  /** No more remote-LSN writes: the timeline closes (for its deletion, or the store's close). */
  synchronized void close() {
    closed = true;
  }

  /** Records the remote-consistent LSN: durable first, then visible. */
  synchronized void setRemoteConsistentLsn(Lsn lsn) throws RocksDBException {
    if (closed) {
      // a deletion removes the state after the close: writing now would bring it back
      throw new LayerStoreException(
          LayerStoreException.Kind.UNKNOWN_TIMELINE,
          "timeline " + tenant + "/" + timeline + " is closed");
    }
    LayerIndex.TimelineState s = index.state(tenant, timeline);
    if (s == null) {
      throw new RocksDBException("no state of timeline " + tenant + "/" + timeline);
    }
    index.putState(
        tenant,
        timeline,
        new LayerIndex.TimelineState(s.diskConsistentLsn(), s.prevRecordLsn(), lsn));
    remoteConsistentLsn = lsn;
  }
}
