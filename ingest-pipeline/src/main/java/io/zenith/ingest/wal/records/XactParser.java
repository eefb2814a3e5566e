package io.zenith.ingest.wal.records;

import static io.zenith.ingest.wal.records.XactRecord.XINFO_HAS_DBINFO;
import static io.zenith.ingest.wal.records.XactRecord.XINFO_HAS_DROPPED_STATS;
import static io.zenith.ingest.wal.records.XactRecord.XINFO_HAS_GID;
import static io.zenith.ingest.wal.records.XactRecord.XINFO_HAS_INVALS;
import static io.zenith.ingest.wal.records.XactRecord.XINFO_HAS_ORIGIN;
import static io.zenith.ingest.wal.records.XactRecord.XINFO_HAS_RELFILENODES;
import static io.zenith.ingest.wal.records.XactRecord.XINFO_HAS_SUBXACTS;
import static io.zenith.ingest.wal.records.XactRecord.XINFO_HAS_TWOPHASE;

import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import java.util.ArrayList;
import java.util.List;

/**
 * Transaction records, following {@code ParseCommitRecord}, {@code ParseAbortRecord} and {@code
 * ParsePrepareRecord} of PostgreSQL 15's {@code xactdesc.c}. Stateless and thread-safe.
 */
final class XactParser {
  private XactParser() {}

  private static final int XLOG_XACT_OPMASK = 0x70;
  private static final int XLOG_XACT_HAS_INFO = 0x80;

  /** {@code MinSizeOfXactCommit} and {@code MinSizeOfXactAbort}: the TimestampTz. */
  private static final int MIN_SIZE_COMMIT = 8;

  /** {@code MinSizeOfXactAssignment}. */
  private static final int MIN_SIZE_ASSIGNMENT = 8;

  /** {@code sizeof(xl_xact_stats_item)}. */
  private static final int STATS_ITEM_SIZE = 12;

  /** {@code sizeof(RelFileNode)}. */
  private static final int RELFILENODE_SIZE = 12;

  static PgRecord parse(MainData d, int rawInfo) {
    return switch (rawInfo & XLOG_XACT_OPMASK) {
      case 0x00 -> commit(d, rawInfo, false);
      case 0x30 -> commit(d, rawInfo, true);
      case 0x20 -> abort(d, rawInfo, false);
      case 0x40 -> abort(d, rawInfo, true);
      case 0x10 -> prepare(d);
      case 0x50 -> assignment(d);
      default -> PgRecords.other(d.record());
    };
  }

  /** The parts commit and abort records share, in their order in the record. */
  private record Common(
      long xactTime,
      int xinfo,
      int dbId,
      int tsId,
      List<Integer> subxacts,
      List<RelTag> rels,
      List<XactRecord.DroppedStats> stats,
      List<XactRecord.InvalidationMessage> invals,
      int twophaseXid,
      String gid,
      Lsn originLsn,
      long originTimestamp) {}

  private static Common common(MainData d, int rawInfo, boolean withInvals) {
    d.requireAtLeast(MIN_SIZE_COMMIT, "xl_xact_commit");
    long xactTime = d.i64(0);
    d.seek(MIN_SIZE_COMMIT);
    int xinfo = (rawInfo & XLOG_XACT_HAS_INFO) != 0 ? d.nextI32("xinfo") : 0;
    int dbId = 0;
    int tsId = 0;
    if ((xinfo & XINFO_HAS_DBINFO) != 0) {
      dbId = d.nextI32("xl_xact_dbinfo");
      tsId = d.nextI32("xl_xact_dbinfo");
    }
    List<Integer> subxacts = List.of();
    if ((xinfo & XINFO_HAS_SUBXACTS) != 0) {
      subxacts = d.nextInts(d.nextI32("nsubxacts"), "nsubxacts");
    }
    List<RelTag> rels = List.of();
    if ((xinfo & XINFO_HAS_RELFILENODES) != 0) {
      rels = d.nextRelTags(d.nextI32("nrels"), "nrels");
    }
    List<XactRecord.DroppedStats> stats = List.of();
    if ((xinfo & XINFO_HAS_DROPPED_STATS) != 0) {
      stats = stats(d, d.nextI32("nitems"), "dropped stats nitems");
    }
    List<XactRecord.InvalidationMessage> invals = List.of();
    if (withInvals && (xinfo & XINFO_HAS_INVALS) != 0) {
      invals = invals(d, d.nextI32("nmsgs"));
    }
    int twophaseXid = 0;
    String gid = "";
    if ((xinfo & XINFO_HAS_TWOPHASE) != 0) {
      twophaseXid = d.nextI32("xl_xact_twophase");
      if ((xinfo & XINFO_HAS_GID) != 0) {
        gid = d.nextCString("twophase_gid");
      }
    }
    Lsn originLsn = Lsn.INVALID;
    long originTimestamp = 0;
    if ((xinfo & XINFO_HAS_ORIGIN) != 0) {
      // Unaligned after the GID; MainData reads are unaligned anyway.
      originLsn = Lsn.of(d.nextI64("xl_xact_origin"));
      originTimestamp = d.nextI64("xl_xact_origin");
    }
    return new Common(
        xactTime,
        xinfo,
        dbId,
        tsId,
        subxacts,
        rels,
        stats,
        invals,
        twophaseXid,
        gid,
        originLsn,
        originTimestamp);
  }

  private static XactRecord.Commit commit(MainData d, int rawInfo, boolean prepared) {
    Common c = common(d, rawInfo, true);
    return new XactRecord.Commit(
        prepared,
        new TimestampTz(c.xactTime()),
        c.xinfo(),
        c.dbId(),
        c.tsId(),
        c.subxacts(),
        c.rels(),
        c.stats(),
        c.invals(),
        c.twophaseXid(),
        c.gid(),
        c.originLsn(),
        new TimestampTz(c.originTimestamp()),
        d.record().origin());
  }

  private static XactRecord.Abort abort(MainData d, int rawInfo, boolean prepared) {
    // Abort records never carry invalidations; ParseAbortRecord ignores XACT_XINFO_HAS_INVALS.
    Common c = common(d, rawInfo, false);
    return new XactRecord.Abort(
        prepared,
        new TimestampTz(c.xactTime()),
        c.xinfo(),
        c.dbId(),
        c.tsId(),
        c.subxacts(),
        c.rels(),
        c.stats(),
        c.twophaseXid(),
        c.gid(),
        c.originLsn(),
        new TimestampTz(c.originTimestamp()),
        d.record().origin());
  }

  /**
   * {@code xl_xact_prepare} (72 bytes: the bool at 52 is followed by a padding byte before the
   * uint16 {@code gidlen}, and {@code origin_lsn} is 8-aligned at 56), then the GID and each array,
   * every one padded to MAXALIGN.
   */
  private static XactRecord.Prepare prepare(MainData d) {
    d.requireAtLeast(XactRecord.Prepare.SIZE, "xl_xact_prepare");
    int nsubxacts = d.i32(28);
    int ncommitrels = d.i32(32);
    int nabortrels = d.i32(36);
    int ncommitstats = d.i32(40);
    int nabortstats = d.i32(44);
    int ninvalmsgs = d.i32(48);
    int gidlen = d.u16(54);
    d.seek(MainData.maxAlign(XactRecord.Prepare.SIZE));
    String gid = d.nextFixedString(gidlen, "gid");
    pad(d, gidlen, "gid");
    List<Integer> subxacts = d.nextInts(nsubxacts, "nsubxacts");
    pad(d, (long) nsubxacts * 4, "subxacts");
    List<RelTag> commitRels = d.nextRelTags(ncommitrels, "ncommitrels");
    pad(d, (long) ncommitrels * RELFILENODE_SIZE, "commit rels");
    List<RelTag> abortRels = d.nextRelTags(nabortrels, "nabortrels");
    pad(d, (long) nabortrels * RELFILENODE_SIZE, "abort rels");
    List<XactRecord.DroppedStats> commitStats = stats(d, ncommitstats, "ncommitstats");
    pad(d, (long) ncommitstats * STATS_ITEM_SIZE, "commit stats");
    List<XactRecord.DroppedStats> abortStats = stats(d, nabortstats, "nabortstats");
    pad(d, (long) nabortstats * STATS_ITEM_SIZE, "abort stats");
    List<XactRecord.InvalidationMessage> invals = invals(d, ninvalmsgs);
    return new XactRecord.Prepare(
        d.i32(0),
        d.i32(4),
        d.i32(8),
        d.i32(12),
        new TimestampTz(d.i64(16)),
        d.i32(24),
        subxacts,
        commitRels,
        abortRels,
        commitStats,
        abortStats,
        invals,
        d.bool(52),
        gid,
        Lsn.of(d.i64(56)),
        new TimestampTz(d.i64(64)),
        d.record().origin());
  }

  /** Skips the padding after a part of {@code length} bytes that was just read. */
  private static void pad(MainData d, long length, String part) {
    d.skip(MainData.maxAlign(length) - length, "MAXALIGN padding after " + part);
  }

  private static XactRecord.Assignment assignment(MainData d) {
    d.requireAtLeast(MIN_SIZE_ASSIGNMENT, "xl_xact_assignment");
    int n = d.i32(4);
    d.seek(MIN_SIZE_ASSIGNMENT);
    return new XactRecord.Assignment(d.i32(0), d.nextInts(n, "nsubxacts"));
  }

  private static List<XactRecord.DroppedStats> stats(MainData d, int n, String field) {
    d.checkCount(n, STATS_ITEM_SIZE, field);
    List<XactRecord.DroppedStats> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      out.add(new XactRecord.DroppedStats(d.nextI32(field), d.nextI32(field), d.nextI32(field)));
    }
    return out;
  }

  /**
   * Messages are a 16-byte union whose first byte is the type; only the fields pg_waldump prints
   * are kept: dbId at 4 and the object at 8, except smgr messages whose RelFileNode sits at 4.
   */
  private static List<XactRecord.InvalidationMessage> invals(MainData d, int n) {
    d.checkCount(n, XactRecord.InvalidationMessage.SIZE, "nmsgs");
    List<XactRecord.InvalidationMessage> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      int at = d.position();
      d.skip(XactRecord.InvalidationMessage.SIZE, "invalidation message");
      int id = (byte) d.u8(at);
      if (id == XactRecord.InvalidationMessage.SMGR_ID) {
        out.add(new XactRecord.InvalidationMessage(id, d.i32(at + 8), d.i32(at + 12)));
      } else {
        out.add(new XactRecord.InvalidationMessage(id, d.i32(at + 4), d.i32(at + 8)));
      }
    }
    return out;
  }
}
