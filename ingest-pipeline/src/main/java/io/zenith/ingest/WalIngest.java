package io.zenith.ingest;

import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.CommitTimestamps;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.keys.KeySpace.Slru;
import io.zenith.ingest.pg.CheckPointData;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.ingest.pg.PgControl;
import io.zenith.ingest.pg.SlruLayout;
import io.zenith.ingest.pg.Xids;
import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.FullPageImages;
import io.zenith.ingest.wal.records.ClogRecord;
import io.zenith.ingest.wal.records.DbaseRecord;
import io.zenith.ingest.wal.records.HeapRecord;
import io.zenith.ingest.wal.records.MultiXactRecord;
import io.zenith.ingest.wal.records.PgRecord;
import io.zenith.ingest.wal.records.RelmapRecord;
import io.zenith.ingest.wal.records.SmgrRecord;
import io.zenith.ingest.wal.records.TypedRecord;
import io.zenith.ingest.wal.records.XactRecord;
import io.zenith.ingest.wal.records.XlogRecord;
import io.zenith.layer.Key;
import io.zenith.layer.TimelineView;
import io.zenith.layer.TimelineWriter;
import io.zenith.layer.Value;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.zip.CRC32C;

/**
 * Turns decoded WAL records into versions of layer-store keys (see {@link KeySpace}): the pages
 * each record changes, and the directory-like state PostgreSQL keeps in files (relation sizes and
 * existence, databases, SLRUs, relation maps, two-phase state, checkpoint and control data).
 *
 * <p>Every version of a record is keyed at the record's end LSN (the LSN redo stamps on pages). The
 * versions of one record are collected first and written together, then the record is published
 * with {@link TimelineWriter#finishRecord}, so readers never see half a record.
 *
 * <p>Not thread-safe: one instance per timeline, used by the ingest stage's single thread.
 */
public final class WalIngest {

  /** Reconstructs a page as of an LSN (for CREATE DATABASE by file copy). */
  @FunctionalInterface
  public interface PageReader {
    byte[] page(TimelineView timeline, Key key, Lsn lsn);
  }

  private final TimelineWriter timeline;
  private final PageReader pages;
  private final Map<Key, Integer> slruSizes = new HashMap<>();
  private final CheckpointCounters counters;
  private final PendingVersions pending = new PendingVersions();
  private final RelationIngest relations;
  private byte[] controlFile;
  private long records;

  /**
   * Starts ingesting into {@code timeline} after its last record.
   *
   * @throws IllegalStateException if the timeline has no checkpoint data yet (not imported)
   */
  public WalIngest(TimelineWriter timeline, PageReader pages) {
    this.timeline = timeline;
    this.pages = pages;
    Lsn at = timeline.lastRecordLsn();
    this.counters =
        Catalog.image(timeline, KeySpace.CHECKPOINT, at)
            .map(b -> new CheckpointCounters(CheckPointData.decode(b)))
            .orElseThrow(
                () ->
                    new IllegalStateException(
                        "timeline "
                            + timeline
                            + " has no checkpoint data at "
                            + at
                            + ": it was never imported"));
    this.controlFile = Catalog.image(timeline, KeySpace.CONTROL_FILE, at).orElse(null);
    this.relations = new RelationIngest(timeline, pending);
  }

  public TimelineWriter timeline() {
    return timeline;
  }

  /** The checkpoint data as of the last ingested record (a copy). */
  public CheckPointData checkpoint() {
    return counters.copy();
  }

  public long recordsIngested() {
    return records;
  }

  /**
   * Applies one record (decoded and parsed once, by the decode stage): writes its versions at its
   * end LSN, then publishes it.
   */
  public void ingest(TypedRecord record) {
    DecodedRecord r = record.decoded();
    PgRecord typed = record.typed();
    Lsn end = r.end();
    advanceNextXid(r.xid());
    if (r.toplevelXid() != 0) {
      advanceNextXid(r.toplevelXid());
    }
    byte[][] rawCopy = new byte[1][];
    boolean fpiRecord = typed instanceof XlogRecord.Fpi;
    for (BlockRef b : r.blocks()) {
      if (fpiRecord && !b.hasImage()) {
        continue; // FPI_FOR_HINT without an image changes nothing (xlog_redo skips it)
      }
      Key key = KeySpace.relBlock(b.rel(), b.fork(), b.blockNumber());
      Value v;
      if (b.appliesImage()) {
        v = new Value.Image(stampLsn(FullPageImages.restore(r, b), end));
      } else {
        if (rawCopy[0] == null) {
          rawCopy[0] = r.raw().copyBytes();
        }
        v = new Value.WalRecord(b.willInit(), r.lsn(), rawCopy[0]);
      }
      put(key, v);
      relations.extendRelation(b.rel(), b.fork(), b.blockNumber());
    }
    switch (typed) {
      case HeapRecord h -> relations.clearVisibilityMapBits(r, h);
      case XlogRecord x -> xlog(x);
      case XactRecord x -> xact(r, x);
      case SmgrRecord s -> relations.smgr(s);
      case DbaseRecord d -> dbase(d);
      case ClogRecord c -> clog(c);
      case MultiXactRecord m -> multixact(m);
      case RelmapRecord.Update u ->
          put(KeySpace.relmap(u.tsId(), u.dbId()), new Value.Image(u.map()));
      default -> {
        // nothing but its block references (done above)
      }
    }
    counters.writeIfChanged(pending);
    pending.writeTo(timeline, end);
    timeline.finishRecord(end, r.lsn());
    records++;
  }

  /** A restored page carries the record's end LSN, like redo stamps it (not on a new page). */
  private static byte[] stampLsn(byte[] page, Lsn lsn) {
    if (!PageLayout.isNew(page)) {
      ByteBuffer b = ByteBuffer.wrap(page).order(ByteOrder.LITTLE_ENDIAN);
      b.putInt(PageLayout.PD_LSN, (int) (lsn.value() >>> 32))
          .putInt(PageLayout.PD_LSN + 4, (int) lsn.value());
    }
    return page;
  }

  private void put(Key key, Value v) {
    pending.put(key, v);
  }

  // ------------------------------------------------------------------ XLOG

  private void xlog(XlogRecord x) {
    switch (x) {
      case XlogRecord.Checkpoint c -> counters.checkpointRecord(c);
      case XlogRecord.NextOid n -> counters.setNextOid(n.nextOid());
      case XlogRecord.ParameterChange p -> {
        if (controlFile != null) {
          PgControl pc = PgControl.parse(controlFile);
          pc.setParameters(
              p.maxConnections(),
              p.maxWorkerProcesses(),
              p.maxWalSenders(),
              p.maxPreparedXacts(),
              p.maxLocksPerXact(),
              p.walLevel(),
              p.walLogHints(),
              p.trackCommitTimestamp());
          controlFile = pc.toBytes();
          put(KeySpace.CONTROL_FILE, new Value.Image(controlFile));
        }
      }
      default -> {
        // FPIs are block references; switch and end-of-recovery change no stored state
      }
    }
  }

  private void advanceNextXid(int xid) {
    counters.advanceNextXid(xid);
  }

  // ----------------------------------------------------------- transactions

  private void xact(DecodedRecord r, XactRecord x) {
    switch (x) {
      case XactRecord.Commit c -> {
        int xid = c.prepared() ? c.twophaseXid() : r.xid();
        setStatus(xid, c.subxacts(), SlruLayout.XACT_COMMITTED);
        // One small image per commit maps times to LSNs (CommitTimestamps); aborts show nothing.
        put(KeySpace.COMMIT_TIMESTAMP, CommitTimestamps.encode(c.xactTime().micros()));
        c.rels().forEach(relations::dropRelation);
        if (c.prepared()) {
          put(KeySpace.twoPhase(xid), Value.TOMBSTONE);
        }
      }
      case XactRecord.Abort a -> {
        int xid = a.prepared() ? a.twophaseXid() : r.xid();
        setStatus(xid, a.subxacts(), SlruLayout.XACT_ABORTED);
        a.rels().forEach(relations::dropRelation);
        if (a.prepared()) {
          put(KeySpace.twoPhase(xid), Value.TOMBSTONE);
        }
      }
      case XactRecord.Prepare p -> {
        // pg_twophase/<xid> holds the record's main data followed by its CRC32C.
        byte[] data = new byte[r.mainDataLength()];
        r.mainData().get(data);
        CRC32C crc = new CRC32C();
        crc.update(data);
        byte[] file = java.util.Arrays.copyOf(data, data.length + 4);
        ByteBuffer.wrap(file)
            .order(ByteOrder.LITTLE_ENDIAN)
            .putInt(data.length, (int) crc.getValue());
        put(KeySpace.twoPhase(p.xid()), new Value.Image(file));
        advanceNextXid(p.xid());
        p.subxacts().forEach(this::advanceNextXid);
      }
      case XactRecord.Assignment a -> a.subxacts().forEach(this::advanceNextXid);
    }
  }

  /** Sets the commit status bits of a transaction tree, one patch per CLOG page. */
  private void setStatus(int xid, List<Integer> subxacts, int status) {
    List<Integer> all = new ArrayList<>(subxacts.size() + 1);
    if (Xids.isNormal(xid)) {
      all.add(xid);
    }
    all.addAll(subxacts);
    for (int x : all) {
      advanceNextXid(x);
      int page = SlruLayout.clogPage(x);
      int shift = SlruLayout.clogShift(x);
      ensureSlruPage(Slru.CLOG, page);
      put(
          slruPageKey(Slru.CLOG, page),
          new Value.Patch(
              false,
              new int[] {SlruLayout.clogByte(x)},
              new byte[] {(byte) (3 << shift)},
              new byte[] {(byte) (status << shift)}));
    }
  }

  // ------------------------------------------------------------------ SLRUs

  private static Key slruPageKey(Slru slru, int pageno) {
    return KeySpace.slruBlock(
        slru, SlruLayout.segmentOf(pageno), SlruLayout.blockInSegment(pageno));
  }

  private int slruSize(Slru slru, int segno) {
    Key k = KeySpace.slruSegmentSize(slru, segno);
    Integer cached = slruSizes.get(k);
    if (cached == null) {
      OptionalInt s = Catalog.slruSegmentSize(timeline, slru, segno, Lsn.MAX);
      cached = s.isPresent() ? s.getAsInt() : -1;
      slruSizes.put(k, cached);
    }
    return cached;
  }

  /** Makes the segment hold {@code pageno} (pages are zeroed explicitly, by their own records). */
  private void ensureSlruPage(Slru slru, int pageno) {
    int segno = SlruLayout.segmentOf(pageno);
    int blk = SlruLayout.blockInSegment(pageno);
    if (slruSize(slru, segno) < blk + 1) {
      Key k = KeySpace.slruSegmentSize(slru, segno);
      slruSizes.put(k, blk + 1);
      put(k, new Value.Image(KeySpace.encodeSize(blk + 1)));
    }
  }

  private void zeroSlruPage(Slru slru, int pageno) {
    ensureSlruPage(slru, pageno);
    put(slruPageKey(slru, pageno), new Value.Image(new byte[PageLayout.BLCKSZ]));
  }

  private void deleteSlruSegment(Slru slru, int segno) {
    Key k = KeySpace.slruSegmentSize(slru, segno);
    if (slruSize(slru, segno) >= 0) {
      slruSizes.put(k, -1);
      put(k, Value.TOMBSTONE);
    }
  }

  private void clog(ClogRecord c) {
    switch (c) {
      case ClogRecord.ZeroPage z -> zeroSlruPage(Slru.CLOG, z.pageno());
      case ClogRecord.Truncate t -> {
        for (int[] seg : Catalog.slruSegments(timeline, Slru.CLOG, Lsn.MAX)) {
          if (SlruLayout.mayDeleteSegment(seg[0], t.pageno(), SlruLayout::clogPagePrecedes)) {
            deleteSlruSegment(Slru.CLOG, seg[0]);
          }
        }
      }
    }
  }

  private void multixact(MultiXactRecord m) {
    switch (m) {
      case MultiXactRecord.ZeroOffPage z -> zeroSlruPage(Slru.MULTIXACT_OFFSETS, z.pageno());
      case MultiXactRecord.ZeroMemPage z -> zeroSlruPage(Slru.MULTIXACT_MEMBERS, z.pageno());
      case MultiXactRecord.CreateId c -> createMultiXact(c);
      case MultiXactRecord.TruncateId t -> {
        int cutoff = SlruLayout.offsetPage(t.endTruncOff() == 1 ? -1 : t.endTruncOff() - 1);
        for (int[] seg : Catalog.slruSegments(timeline, Slru.MULTIXACT_OFFSETS, Lsn.MAX)) {
          if (SlruLayout.mayDeleteSegment(seg[0], cutoff, SlruLayout::offsetPagePrecedes)) {
            deleteSlruSegment(Slru.MULTIXACT_OFFSETS, seg[0]);
          }
        }
        int seg = SlruLayout.memberSegment(t.startTruncMemb());
        int endSeg = SlruLayout.memberSegment(t.endTruncMemb());
        while (seg != endSeg) {
          deleteSlruSegment(Slru.MULTIXACT_MEMBERS, seg);
          seg = seg == SlruLayout.MAX_MEMBER_SEGMENT ? 0 : seg + 1;
        }
        counters.setOldestMulti(t.endTruncOff(), t.oldestMultiDb());
      }
    }
  }

  /** {@code RecordNewMultiXact}: this multi's offset, the next multi's offset, the members. */
  private void createMultiXact(MultiXactRecord.CreateId c) {
    int n = c.members().size();
    putOffset(c.mid(), c.moff());
    int next = c.mid() + 1 == 0 ? 1 : c.mid() + 1;
    int nextOffset = c.moff() + n == 0 ? 1 : c.moff() + n;
    putOffset(next, nextOffset);
    for (int i = 0; i < n; i++) {
      int off = c.moff() + i;
      MultiXactRecord.Member member = c.members().get(i);
      int page = SlruLayout.memberPage(off);
      ensureSlruPage(Slru.MULTIXACT_MEMBERS, page);
      int xidAt = SlruLayout.memberXidByte(off);
      int xid = member.xid();
      put(
          slruPageKey(Slru.MULTIXACT_MEMBERS, page),
          new Value.Patch(
              false,
              new int[] {SlruLayout.memberFlagByte(off), xidAt, xidAt + 1, xidAt + 2, xidAt + 3},
              new byte[] {(byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF},
              new byte[] {
                (byte) member.status().code(),
                (byte) xid,
                (byte) (xid >>> 8),
                (byte) (xid >>> 16),
                (byte) (xid >>> 24)
              }));
      advanceNextXid(xid);
    }
    counters.advanceMulti(next, nextOffset);
  }

  private void putOffset(int multi, int offset) {
    int page = SlruLayout.offsetPage(multi);
    int at = SlruLayout.offsetByte(multi);
    ensureSlruPage(Slru.MULTIXACT_OFFSETS, page);
    put(
        slruPageKey(Slru.MULTIXACT_OFFSETS, page),
        new Value.Patch(
            false,
            new int[] {at, at + 1, at + 2, at + 3},
            new byte[] {(byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF},
            new byte[] {
              (byte) offset, (byte) (offset >>> 8), (byte) (offset >>> 16), (byte) (offset >>> 24)
            }));
  }

  // -------------------------------------------------------------- databases

  private void dbase(DbaseRecord d) {
    switch (d) {
      case DbaseRecord.CreateWalLog c ->
          put(KeySpace.dbDir(c.tablespaceId(), c.dbId()), new Value.Image(pgVersionFile()));
      case DbaseRecord.CreateFileCopy c -> copyDatabase(c);
      case DbaseRecord.Drop drop -> {
        for (int spc : drop.tablespaceIds()) {
          for (Catalog.RelFork rf : Catalog.relationsOf(timeline, spc, drop.dbId(), Lsn.MAX)) {
            relations.dropFork(rf.rel(), rf.fork());
          }
          put(KeySpace.relmap(spc, drop.dbId()), Value.TOMBSTONE);
          put(KeySpace.dbDir(spc, drop.dbId()), Value.TOMBSTONE);
        }
      }
    }
  }

  private static byte[] pgVersionFile() {
    return "15\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
  }

  /** CREATE DATABASE … STRATEGY FILE_COPY: the template's files as of this record, page by page. */
  private void copyDatabase(DbaseRecord.CreateFileCopy c) {
    Lsn at = timeline.lastRecordLsn();
    for (Catalog.RelFork rf : Catalog.relationsOf(timeline, c.srcTablespaceId(), c.srcDbId(), at)) {
      RelTag dst = new RelTag(c.tablespaceId(), c.dbId(), rf.rel().relNumber());
      for (int blk = 0; blk < rf.blocks(); blk++) {
        byte[] page = pages.page(timeline, KeySpace.relBlock(rf.rel(), rf.fork(), blk), at);
        put(KeySpace.relBlock(dst, rf.fork(), blk), new Value.Image(page));
      }
      relations.setRelSize(dst, rf.fork(), rf.blocks());
    }
    Catalog.image(timeline, KeySpace.relmap(c.srcTablespaceId(), c.srcDbId()), at)
        .ifPresent(map -> put(KeySpace.relmap(c.tablespaceId(), c.dbId()), new Value.Image(map)));
    put(KeySpace.dbDir(c.tablespaceId(), c.dbId()), new Value.Image(pgVersionFile()));
  }
}
