package io.zenith.ingest.wal.records;

import static io.zenith.ingest.wal.records.Desc.u;

import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import java.util.List;

/**
 * Records of the Transaction resource manager ({@code access/xact.h}), parsed the way {@code
 * ParseCommitRecord}, {@code ParseAbortRecord} and {@code ParsePrepareRecord} do. Immutable and
 * thread-safe.
 */
public sealed interface XactRecord extends PgRecord {

  /** {@code XACT_XINFO_HAS_DBINFO}. */
  int XINFO_HAS_DBINFO = 1;

  /** {@code XACT_XINFO_HAS_SUBXACTS}. */
  int XINFO_HAS_SUBXACTS = 1 << 1;

  /** {@code XACT_XINFO_HAS_RELFILENODES}. */
  int XINFO_HAS_RELFILENODES = 1 << 2;

  /** {@code XACT_XINFO_HAS_INVALS}. */
  int XINFO_HAS_INVALS = 1 << 3;

  /** {@code XACT_XINFO_HAS_TWOPHASE}. */
  int XINFO_HAS_TWOPHASE = 1 << 4;

  /** {@code XACT_XINFO_HAS_ORIGIN}. */
  int XINFO_HAS_ORIGIN = 1 << 5;

  /** {@code XACT_XINFO_HAS_AE_LOCKS}. */
  int XINFO_HAS_AE_LOCKS = 1 << 6;

  /** {@code XACT_XINFO_HAS_GID}. */
  int XINFO_HAS_GID = 1 << 7;

  /** {@code XACT_XINFO_HAS_DROPPED_STATS} (new in PostgreSQL 15). */
  int XINFO_HAS_DROPPED_STATS = 1 << 8;

  /** {@code XACT_COMPLETION_APPLY_FEEDBACK}. */
  int COMPLETION_APPLY_FEEDBACK = 1 << 29;

  /** {@code XACT_COMPLETION_UPDATE_RELCACHE_FILE}. */
  int COMPLETION_UPDATE_RELCACHE_FILE = 1 << 30;

  /** {@code XACT_COMPLETION_FORCE_SYNC_COMMIT}. */
  int COMPLETION_FORCE_SYNC_COMMIT = 1 << 31;

  @Override
  default String rmgrName() {
    return "Transaction";
  }

  /**
   * A transactionally dropped statistics entry ({@code xl_xact_stats_item}).
   *
   * @param kind {@code PgStat_Kind}
   * @param dbOid database OID
   * @param objOid object OID
   */
  record DroppedStats(int kind, int dbOid, int objOid) {}

  /**
   * One shared invalidation message ({@code SharedInvalidationMessage}, 16 bytes). Redo passes them
   * to the cache machinery; the pageserver only needs to skip them, so only the fields pg_waldump
   * shows are kept.
   *
   * @param id message type: a catcache id (&ge; 0) or {@code SHAREDINVAL*_ID} (&lt; 0)
   * @param dbId the database the message is for (for smgr messages: the relation's database)
   * @param objectId catcache hash value, catalog OID, relation OID, or relfilenode (smgr)
   */
  record InvalidationMessage(int id, int dbId, int objectId) {
    /** {@code sizeof(SharedInvalidationMessage)}. */
    static final int SIZE = 16;

    public static final int CATALOG_ID = -1;
    public static final int RELCACHE_ID = -2;
    public static final int SMGR_ID = -3;
    public static final int RELMAP_ID = -4;
    public static final int SNAPSHOT_ID = -5;

    /** As {@code standby_desc_invalidations} prints one message. */
    public String describe() {
      return switch (id) {
        case CATALOG_ID -> "catalog " + u(objectId);
        case RELCACHE_ID -> "relcache " + u(objectId);
        case SMGR_ID -> "smgr";
        case RELMAP_ID -> "relmap db " + u(dbId);
        case SNAPSHOT_ID -> "snapshot " + u(objectId);
        default -> id >= 0 ? "catcache " + id : "unrecognized id " + id;
      };
    }
  }

  /**
   * {@code XLOG_XACT_COMMIT} and {@code XLOG_XACT_COMMIT_PREPARED}: {@code xl_xact_commit} with the
   * sub-records {@code xinfo} announces.
   *
   * @param prepared true for {@code COMMIT_PREPARED}
   * @param xactTime commit time
   * @param xinfo {@code XACT_XINFO_*} and {@code XACT_COMPLETION_*} bits (0 without {@code
   *     XLOG_XACT_HAS_INFO})
   * @param dbId database ({@code XACT_XINFO_HAS_DBINFO}), else 0
   * @param tsId its tablespace, else 0
   * @param subxacts committed subtransaction xids
   * @param rels relations dropped at commit (their files are unlinked by redo)
   * @param droppedStats statistics entries dropped at commit
   * @param invalidations shared invalidation messages
   * @param twophaseXid the prepared transaction's xid, else 0
   * @param gid the prepared transaction's GID ({@code XACT_XINFO_HAS_GID}), else empty
   * @param originLsn replication origin LSN ({@code XACT_XINFO_HAS_ORIGIN}), else invalid
   * @param originTimestamp replication origin commit time, else 0
   * @param originId the record's replication origin id, 0 when none
   */
  record Commit(
      boolean prepared,
      TimestampTz xactTime,
      int xinfo,
      int dbId,
      int tsId,
      List<Integer> subxacts,
      List<RelTag> rels,
      List<DroppedStats> droppedStats,
      List<InvalidationMessage> invalidations,
      int twophaseXid,
      String gid,
      Lsn originLsn,
      TimestampTz originTimestamp,
      int originId)
      implements XactRecord {

    public Commit {
      subxacts = List.copyOf(subxacts);
      rels = List.copyOf(rels);
      droppedStats = List.copyOf(droppedStats);
      invalidations = List.copyOf(invalidations);
    }

    public boolean hasOrigin() {
      return (xinfo & XINFO_HAS_ORIGIN) != 0;
    }

    /** {@code XactCompletionRelcacheInitFileInval}. */
    public boolean relcacheInitFileInval() {
      return (xinfo & COMPLETION_UPDATE_RELCACHE_FILE) != 0;
    }

    @Override
    public String typeName() {
      return prepared ? "COMMIT_PREPARED" : "COMMIT";
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder();
      if (twophaseXid != 0) {
        sb.append(u(twophaseXid)).append(": ");
      }
      sb.append(xactTime);
      Desc.relations(sb, "rels", rels);
      Desc.subxacts(sb, subxacts);
      Desc.stats(sb, "", droppedStats);
      Desc.invalidations(sb, invalidations, dbId, tsId, relcacheInitFileInval());
      if ((xinfo & COMPLETION_APPLY_FEEDBACK) != 0) {
        sb.append("; apply_feedback");
      }
      if ((xinfo & COMPLETION_FORCE_SYNC_COMMIT) != 0) {
        sb.append("; sync");
      }
      if (hasOrigin()) {
        origin(sb, originId, originLsn, originTimestamp);
      }
      return sb.toString();
    }
  }

  /**
   * {@code XLOG_XACT_ABORT} and {@code XLOG_XACT_ABORT_PREPARED}: {@code xl_xact_abort}; like a
   * commit, without invalidation messages.
   *
   * @param prepared true for {@code ABORT_PREPARED}
   * @param xactTime abort time
   * @param xinfo {@code XACT_XINFO_*} bits (0 without {@code XLOG_XACT_HAS_INFO})
   * @param dbId database ({@code XACT_XINFO_HAS_DBINFO}), else 0
   * @param tsId its tablespace, else 0
   * @param subxacts aborted subtransaction xids
   * @param rels relations dropped at abort (created by the transaction)
   * @param droppedStats statistics entries dropped at abort
   * @param twophaseXid the prepared transaction's xid, else 0
   * @param gid the prepared transaction's GID, else empty
   * @param originLsn replication origin LSN, else invalid
   * @param originTimestamp replication origin time, else 0
   * @param originId the record's replication origin id, 0 when none
   */
  record Abort(
      boolean prepared,
      TimestampTz xactTime,
      int xinfo,
      int dbId,
      int tsId,
      List<Integer> subxacts,
      List<RelTag> rels,
      List<DroppedStats> droppedStats,
      int twophaseXid,
      String gid,
      Lsn originLsn,
      TimestampTz originTimestamp,
      int originId)
      implements XactRecord {

    public Abort {
      subxacts = List.copyOf(subxacts);
      rels = List.copyOf(rels);
      droppedStats = List.copyOf(droppedStats);
    }

    public boolean hasOrigin() {
      return (xinfo & XINFO_HAS_ORIGIN) != 0;
    }

    @Override
    public String typeName() {
      return prepared ? "ABORT_PREPARED" : "ABORT";
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder();
      if (twophaseXid != 0) {
        sb.append(u(twophaseXid)).append(": ");
      }
      sb.append(xactTime);
      Desc.relations(sb, "rels", rels);
      Desc.subxacts(sb, subxacts);
      if (hasOrigin()) {
        origin(sb, originId, originLsn, originTimestamp);
      }
      Desc.stats(sb, "", droppedStats);
      return sb.toString();
    }
  }

  /**
   * {@code XLOG_XACT_PREPARE}: the two-phase state file header ({@code xl_xact_prepare}) and the
   * arrays after it, each MAXALIGNed. The state records after the arrays (locks, predicate locks,
   * ...) are not decoded.
   *
   * @param magic {@code TWOPHASE_MAGIC} format identifier
   * @param totalLen length of the state file
   * @param xid the prepared transaction
   * @param database its database
   * @param preparedAt when it was prepared
   * @param owner the role that ran it
   * @param subxacts its subtransaction xids
   * @param commitRels relations to drop if it commits
   * @param abortRels relations to drop if it aborts
   * @param commitStats statistics to drop if it commits
   * @param abortStats statistics to drop if it aborts
   * @param invalidations invalidation messages to send at commit
   * @param initFileInval whether the relcache init file needs invalidation
   * @param gid the GID
   * @param originLsn replication origin LSN (meaningful with an origin)
   * @param originTimestamp replication origin time
   * @param originId the record's replication origin id, 0 when none
   */
  record Prepare(
      int magic,
      int totalLen,
      int xid,
      int database,
      TimestampTz preparedAt,
      int owner,
      List<Integer> subxacts,
      List<RelTag> commitRels,
      List<RelTag> abortRels,
      List<DroppedStats> commitStats,
      List<DroppedStats> abortStats,
      List<InvalidationMessage> invalidations,
      boolean initFileInval,
      String gid,
      Lsn originLsn,
      TimestampTz originTimestamp,
      int originId)
      implements XactRecord {

    /** {@code sizeof(xl_xact_prepare)} (already a multiple of MAXALIGN). */
    static final int SIZE = 72;

    public Prepare {
      subxacts = List.copyOf(subxacts);
      commitRels = List.copyOf(commitRels);
      abortRels = List.copyOf(abortRels);
      commitStats = List.copyOf(commitStats);
      abortStats = List.copyOf(abortStats);
      invalidations = List.copyOf(invalidations);
    }

    @Override
    public String typeName() {
      return "PREPARE";
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder();
      sb.append("gid ").append(gid).append(": ").append(preparedAt);
      Desc.relations(sb, "rels(commit)", commitRels);
      Desc.relations(sb, "rels(abort)", abortRels);
      Desc.stats(sb, "commit ", commitStats);
      Desc.stats(sb, "abort ", abortStats);
      Desc.subxacts(sb, subxacts);
      // ParsePrepareRecord leaves tsId zero, so pg_waldump prints tsid 0.
      Desc.invalidations(sb, invalidations, database, 0, initFileInval);
      if (originId != 0) {
        origin(sb, originId, originLsn, originTimestamp);
      }
      return sb.toString();
    }
  }

  /**
   * {@code XLOG_XACT_ASSIGNMENT}: {@code xl_xact_assignment}, subtransaction xids of a top-level
   * transaction reported to hot standby.
   *
   * @param xtop the top-level xid
   * @param subxacts the subtransaction xids
   */
  record Assignment(int xtop, List<Integer> subxacts) implements XactRecord {
    public Assignment {
      subxacts = List.copyOf(subxacts);
    }

    @Override
    public String typeName() {
      return "ASSIGNMENT";
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder("xtop ").append(u(xtop)).append(": subxacts:");
      for (int x : subxacts) {
        sb.append(' ').append(u(x));
      }
      return sb.toString();
    }
  }

  private static void origin(StringBuilder sb, int originId, Lsn lsn, TimestampTz time) {
    sb.append("; origin: node ").append(u(originId)).append(", lsn ").append(lsn);
    sb.append(", at ").append(time);
  }
}
