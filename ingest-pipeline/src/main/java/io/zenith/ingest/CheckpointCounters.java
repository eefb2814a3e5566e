package io.zenith.ingest;

import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.CheckPointData;
import io.zenith.ingest.pg.Xids;
import io.zenith.ingest.wal.records.XlogRecord;
import io.zenith.layer.Value;

/**
 * The checkpoint data ({@code pg_control}'s checkPointCopy, kept under {@link KeySpace#CHECKPOINT})
 * as of the last ingested record: the counters redo moves forward (next xid, OID, multixact) and
 * what checkpoint records set. A new version is written only for records that changed it. Not
 * thread-safe: the ingest thread's.
 */
final class CheckpointCounters {
  private final CheckPointData checkpoint;
  private boolean changed;

  CheckpointCounters(CheckPointData checkpoint) {
    this.checkpoint = checkpoint;
  }

  /** A copy of the current data. */
  CheckPointData copy() {
    return checkpoint.copy();
  }

  /** Adds a new version to {@code pending} if the record changed the data. */
  void writeIfChanged(PendingVersions pending) {
    if (changed) {
      pending.put(KeySpace.CHECKPOINT, new Value.Image(checkpoint.encode()));
      changed = false;
    }
  }

  void setNextOid(int nextOid) {
    checkpoint.nextOid = nextOid;
    changed = true;
  }

  /** {@code TruncateMultiXact}'s new oldest multixact. */
  void setOldestMulti(int oldestMulti, int oldestMultiDb) {
    checkpoint.oldestMulti = oldestMulti;
    checkpoint.oldestMultiDb = oldestMultiDb;
    changed = true;
  }

  /**
   * As {@code xlog_redo}: a shutdown checkpoint's counters are exact; an online checkpoint's are
   * only used to move counters forward (its nextOid may be stale and is ignored).
   */
  void checkpointRecord(XlogRecord.Checkpoint c) {
    long ourNextXid = checkpoint.nextXid;
    checkpoint.redo = c.redo().value();
    checkpoint.thisTimeLineId = c.thisTimeLineId();
    checkpoint.prevTimeLineId = c.prevTimeLineId();
    checkpoint.fullPageWrites = c.fullPageWrites();
    checkpoint.time = c.time();
    checkpoint.oldestActiveXid = c.oldestActiveXid();
    checkpoint.oldestCommitTsXid = c.oldestCommitTsXid();
    checkpoint.newestCommitTsXid = c.newestCommitTsXid();
    if (c.shutdown()) {
      checkpoint.nextXid = c.nextXid();
      checkpoint.nextOid = c.nextOid();
      checkpoint.nextMulti = c.nextMulti();
      checkpoint.nextMultiOffset = c.nextMultiOffset();
      checkpoint.oldestXid = c.oldestXid();
      checkpoint.oldestXidDb = c.oldestXidDb();
      checkpoint.oldestMulti = c.oldestMulti();
      checkpoint.oldestMultiDb = c.oldestMultiDb();
    } else {
      if (Long.compareUnsigned(c.nextXid(), ourNextXid) > 0) {
        checkpoint.nextXid = c.nextXid();
      }
      advanceMulti(c.nextMulti(), c.nextMultiOffset());
      if (Xids.precedes(checkpoint.oldestXid, c.oldestXid())) {
        checkpoint.oldestXid = c.oldestXid();
        checkpoint.oldestXidDb = c.oldestXidDb();
      }
      if (Xids.multiPrecedes(checkpoint.oldestMulti, c.oldestMulti())) {
        checkpoint.oldestMulti = c.oldestMulti();
        checkpoint.oldestMultiDb = c.oldestMultiDb();
      }
    }
    if (Long.compareUnsigned(ourNextXid, checkpoint.nextXid) > 0) {
      checkpoint.nextXid = ourNextXid;
    }
    changed = true;
  }

  /** {@code MultiXactAdvanceNextMXact}. */
  void advanceMulti(int nextMulti, int nextOffset) {
    if (Xids.multiPrecedes(checkpoint.nextMulti, nextMulti)) {
      checkpoint.nextMulti = nextMulti;
      changed = true;
    }
    if (checkpoint.nextMultiOffset - nextOffset < 0) {
      checkpoint.nextMultiOffset = nextOffset;
      changed = true;
    }
  }

  void advanceNextXid(int xid) {
    long before = checkpoint.nextXid;
    checkpoint.advanceNextXidPast(xid);
    if (checkpoint.nextXid != before) {
      changed = true;
    }
  }
}
