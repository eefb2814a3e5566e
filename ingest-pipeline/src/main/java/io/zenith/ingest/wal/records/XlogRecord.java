package io.zenith.ingest.wal.records;

import static io.zenith.ingest.wal.records.Desc.u;

import io.zenith.ingest.wal.BlockRef;
import io.zenith.wal.Lsn;
import java.time.Instant;
import java.util.List;

/**
 * Records of the XLOG resource manager ({@code catalog/pg_control.h}, {@code
 * access/xlog_internal.h}). Immutable and thread-safe.
 */
public sealed interface XlogRecord extends PgRecord {

  @Override
  default String rmgrName() {
    return "XLOG";
  }

  /**
   * {@code XLOG_CHECKPOINT_SHUTDOWN} / {@code XLOG_CHECKPOINT_ONLINE}: a {@code CheckPoint}.
   *
   * @param shutdown true for a shutdown checkpoint
   * @param redo where redo starts
   * @param thisTimeLineId {@code ThisTimeLineID}
   * @param prevTimeLineId {@code PrevTimeLineID}
   * @param fullPageWrites {@code full_page_writes} at the checkpoint
   * @param nextXid the 64-bit {@code FullTransactionId}: epoch in the high 32 bits
   * @param nextOid next free OID
   * @param nextMulti next free MultiXactId
   * @param nextMultiOffset next free MultiXact member offset
   * @param oldestXid cluster-wide minimum datfrozenxid
   * @param oldestXidDb database with that datfrozenxid
   * @param oldestMulti cluster-wide minimum datminmxid
   * @param oldestMultiDb database with that datminmxid
   * @param time checkpoint time, {@code pg_time_t}: seconds since the Unix epoch
   * @param oldestCommitTsXid oldest xid with a commit timestamp
   * @param newestCommitTsXid newest xid with a commit timestamp
   * @param oldestActiveXid oldest xid still running (online checkpoints with hot standby info)
   */
  record Checkpoint(
      boolean shutdown,
      Lsn redo,
      int thisTimeLineId,
      int prevTimeLineId,
      boolean fullPageWrites,
      long nextXid,
      int nextOid,
      int nextMulti,
      int nextMultiOffset,
      int oldestXid,
      int oldestXidDb,
      int oldestMulti,
      int oldestMultiDb,
      long time,
      int oldestCommitTsXid,
      int newestCommitTsXid,
      int oldestActiveXid)
      implements XlogRecord {

    /** {@code sizeof(CheckPoint)}: 84 bytes of fields padded to 8. */
    static final int SIZE = 88;

    /** {@code EpochFromFullTransactionId(nextXid)}. */
    public int nextXidEpoch() {
      return (int) (nextXid >>> 32);
    }

    /** {@code XidFromFullTransactionId(nextXid)}. */
    public int nextXidValue() {
      return (int) nextXid;
    }

    public Instant timeInstant() {
      return Instant.ofEpochSecond(time);
    }

    @Override
    public String typeName() {
      return shutdown ? "CHECKPOINT_SHUTDOWN" : "CHECKPOINT_ONLINE";
    }

    @Override
    public String describe() {
      return "redo "
          + redo
          + "; tli "
          + u(thisTimeLineId)
          + "; prev tli "
          + u(prevTimeLineId)
          + "; fpw "
          + fullPageWrites
          + "; xid "
          + u(nextXidEpoch())
          + ":"
          + u(nextXidValue())
          + "; oid "
          + u(nextOid)
          + "; multi "
          + u(nextMulti)
          + "; offset "
          + u(nextMultiOffset)
          + "; oldest xid "
          + u(oldestXid)
          + " in DB "
          + u(oldestXidDb)
          + "; oldest multi "
          + u(oldestMulti)
          + " in DB "
          + u(oldestMultiDb)
          + "; oldest/newest commit timestamp xid: "
          + u(oldestCommitTsXid)
          + "/"
          + u(newestCommitTsXid)
          + "; oldest running xid "
          + u(oldestActiveXid)
          + "; "
          + (shutdown ? "shutdown" : "online");
    }
  }

  /**
   * {@code XLOG_NEXTOID}.
   *
   * @param nextOid the OID counter redo sets
   */
  record NextOid(int nextOid) implements XlogRecord {
    @Override
    public String typeName() {
      return "NEXTOID";
    }

    @Override
    public String describe() {
      return u(nextOid);
    }
  }

  /**
   * {@code XLOG_FPI} / {@code XLOG_FPI_FOR_HINT}: no main data; the full-page images are the block
   * references. Every block of an {@code FPI} record has an image; an {@code FPI_FOR_HINT} block
   * may have none (full_page_writes was off), and then redo does nothing for it.
   *
   * @param forHint true for {@code XLOG_FPI_FOR_HINT}
   * @param blocks the block references carrying the images
   */
  record Fpi(boolean forHint, List<BlockRef> blocks) implements XlogRecord {
    public Fpi {
      blocks = List.copyOf(blocks);
    }

    @Override
    public String typeName() {
      return forHint ? "FPI_FOR_HINT" : "FPI";
    }

    @Override
    public String describe() {
      return "";
    }
  }

  /** {@code XLOG_SWITCH}: the rest of the segment is unused. */
  record Switch() implements XlogRecord {
    @Override
    public String typeName() {
      return "SWITCH";
    }

    @Override
    public String describe() {
      return "";
    }
  }

  /**
   * {@code XLOG_PARAMETER_CHANGE}: {@code xl_parameter_change}, the settings a standby must match.
   *
   * @param maxConnections {@code MaxConnections}
   * @param maxWorkerProcesses {@code max_worker_processes}
   * @param maxWalSenders {@code max_wal_senders}
   * @param maxPreparedXacts {@code max_prepared_xacts}
   * @param maxLocksPerXact {@code max_locks_per_xact}
   * @param walLevel {@code wal_level}: 0 minimal, 1 replica, 2 logical
   * @param walLogHints {@code wal_log_hints}
   * @param trackCommitTimestamp {@code track_commit_timestamp}
   */
  record ParameterChange(
      int maxConnections,
      int maxWorkerProcesses,
      int maxWalSenders,
      int maxPreparedXacts,
      int maxLocksPerXact,
      int walLevel,
      boolean walLogHints,
      boolean trackCommitTimestamp)
      implements XlogRecord {

    /** {@code sizeof(xl_parameter_change)}: six ints and two bools, padded to 4. */
    static final int SIZE = 28;

    /** The name of {@link #walLevel()} as {@code wal_level_options} has it, {@code ?} if none. */
    public String walLevelName() {
      return switch (walLevel) {
        case 0 -> "minimal";
        case 1 -> "replica";
        case 2 -> "logical";
        default -> "?";
      };
    }

    @Override
    public String typeName() {
      return "PARAMETER_CHANGE";
    }

    @Override
    public String describe() {
      return "max_connections="
          + maxConnections
          + " max_worker_processes="
          + maxWorkerProcesses
          + " max_wal_senders="
          + maxWalSenders
          + " max_prepared_xacts="
          + maxPreparedXacts
          + " max_locks_per_xact="
          + maxLocksPerXact
          + " wal_level="
          + walLevelName()
          + " wal_log_hints="
          + (walLogHints ? "on" : "off")
          + " track_commit_timestamp="
          + (trackCommitTimestamp ? "on" : "off");
    }
  }

  /**
   * {@code XLOG_END_OF_RECOVERY}: {@code xl_end_of_recovery}, written at promotion.
   *
   * @param endTime when recovery ended
   * @param thisTimeLineId the new timeline
   * @param prevTimeLineId the timeline it forked off from
   */
  record EndOfRecovery(TimestampTz endTime, int thisTimeLineId, int prevTimeLineId)
      implements XlogRecord {

    /** {@code sizeof(xl_end_of_recovery)}. */
    static final int SIZE = 16;

    @Override
    public String typeName() {
      return "END_OF_RECOVERY";
    }

    @Override
    public String describe() {
      return "tli " + u(thisTimeLineId) + "; prev tli " + u(prevTimeLineId) + "; time " + endTime;
    }
  }
}
