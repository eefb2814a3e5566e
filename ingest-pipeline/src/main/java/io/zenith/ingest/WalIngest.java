package io.zenith.ingest;

import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.keys.KeySpace.Slru;
import io.zenith.ingest.pg.CheckPointData;
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
import io.zenith.ingest.wal.records.PgRecords;
import io.zenith.ingest.wal.records.RelmapRecord;
import io.zenith.ingest.wal.records.SmgrRecord;
import io.zenith.ingest.wal.records.VisibilityMapChange;
import io.zenith.ingest.wal.records.XactRecord;
import io.zenith.ingest.wal.records.XlogRecord;
import io.zenith.layer.Key;
import io.zenith.layer.Timeline;
import io.zenith.layer.Value;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalFormat;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
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
 * with {@link Timeline#finishRecord}, so readers never see half a record.
 *
 * <p>Not thread-safe: one instance per timeline, used by the ingest stage's single thread.
 */
public final class WalIngest {

  /** Reconstructs a page as of an LSN (for CREATE DATABASE by file copy). */
  @FunctionalInterface
  public interface PageReader {
    byte[] page(Timeline timeline, Key key, Lsn lsn);
  }

  private static final int SMGR_TRUNCATE_HEAP = 1;
  private static final int SMGR_TRUNCATE_VM = 2;
  private static final int SMGR_TRUNCATE_FSM = 4;

  private final Timeline timeline;
  private final PageReader pages;

  /** Known fork sizes; -1 = the fork does not exist. Loaded lazily from the timeline. */
  private final Map<RelFork, Integer> relSizes = new HashMap<>();

  private final Map<Key, Integer> slruSizes = new HashMap<>();
  private final CheckPointData checkpoint;
  private byte[] controlFile;

  /** Versions of the record being ingested, merged per key. */
  private final Map<Key, Value> pending = new LinkedHashMap<>();

  private boolean checkpointChanged;
  private long records;

  private record RelFork(RelTag rel, ForkNumber fork) {}

  /**
   * Starts ingesting into {@code timeline} after its last record.
   *
   * @throws IllegalStateException if the timeline has no checkpoint data yet (not imported)
   */
  public WalIngest(Timeline timeline, PageReader pages) {
    this.timeline = timeline;
    this.pages = pages;
    Lsn at = timeline.lastRecordLsn();
    this.checkpoint =
        Catalog.image(timeline, KeySpace.CHECKPOINT, at)
            .map(CheckPointData::decode)
            .orElseThrow(
                () ->
                    new IllegalStateException(
                        "timeline "
                            + timeline
                            + " has no checkpoint data at "
                            + at
                            + ": it was never imported"));
    this.controlFile = Catalog.image(timeline, KeySpace.CONTROL_FILE, at).orElse(null);
  }

  public Timeline timeline() {
    return timeline;
  }

  /** The checkpoint data as of the last ingested record (a copy). */
  public CheckPointData checkpoint() {
    return checkpoint.copy();
  }

  public long recordsIngested() {
    return records;
  }

  /** Applies one record: writes its versions at its end LSN, then publishes it. */
  public void ingest(DecodedRecord r) {
    Lsn end = r.end();
    PgRecord typed = PgRecords.parse(r);
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
      extendRelation(b.rel(), b.fork(), b.blockNumber());
    }
    switch (typed) {
      case HeapRecord h -> clearVisibilityMapBits(r, h);
      case XlogRecord x -> xlog(x);
      case XactRecord x -> xact(r, x);
      case SmgrRecord s -> smgr(s);
      case DbaseRecord d -> dbase(d);
      case ClogRecord c -> clog(c);
      case MultiXactRecord m -> multixact(m);
      case RelmapRecord.Update u ->
          put(KeySpace.relmap(u.tsId(), u.dbId()), new Value.Image(u.map()));
      default -> {
        // nothing but its block references (done above)
      }
    }
    if (checkpointChanged) {
      put(KeySpace.CHECKPOINT, new Value.Image(checkpoint.encode()));
      checkpointChanged = false;
    }
    for (Map.Entry<Key, Value> e : pending.entrySet()) {
      timeline.put(e.getKey(), end, e.getValue());
    }
    pending.clear();
    timeline.finishRecord(end, r.lsn());
    records++;
  }

  /** A restored page carries the record's end LSN, like redo stamps it (not on a new page). */
  private static byte[] stampLsn(byte[] page, Lsn lsn) {
    ByteBuffer b = ByteBuffer.wrap(page).order(ByteOrder.LITTLE_ENDIAN);
    boolean isNew = b.getShort(14) == 0; // pd_upper
    if (!isNew) {
      b.putInt(0, (int) (lsn.value() >>> 32)).putInt(4, (int) lsn.value());
    }
    return page;
  }

  private void put(Key key, Value v) {
    Value old = pending.get(key);
    if (old instanceof Value.Patch a && v instanceof Value.Patch b) {
      pending.put(key, concat(a, b));
    } else {
      pending.put(key, v);
    }
  }

  private static Value.Patch concat(Value.Patch a, Value.Patch b) {
    int n = a.offsets().length;
    int m = b.offsets().length;
    int[] offsets = java.util.Arrays.copyOf(a.offsets(), n + m);
    byte[] masks = java.util.Arrays.copyOf(a.masks(), n + m);
    byte[] bits = java.util.Arrays.copyOf(a.bits(), n + m);
    System.arraycopy(b.offsets(), 0, offsets, n, m);
    System.arraycopy(b.masks(), 0, masks, n, m);
    System.arraycopy(b.bits(), 0, bits, n, m);
    return new Value.Patch(a.initPageIfNew() || b.initPageIfNew(), offsets, masks, bits);
  }

  // ------------------------------------------------------------ relations

  private int relSize(RelTag rel, ForkNumber fork) {
    RelFork rf = new RelFork(rel, fork);
    Integer cached = relSizes.get(rf);
    if (cached == null) {
      OptionalInt s = Catalog.relSize(timeline, rel, fork, Lsn.MAX);
      cached = s.isPresent() ? s.getAsInt() : -1;
      relSizes.put(rf, cached);
    }
    return cached;
  }

  private void setRelSize(RelTag rel, ForkNumber fork, int blocks) {
    relSizes.put(new RelFork(rel, fork), blocks);
    put(KeySpace.relSize(rel, fork), new Value.Image(KeySpace.encodeSize(blocks)));
  }

  /** Redo extends a fork to hold every block it touches (creating it if needed). */
  private void extendRelation(RelTag rel, ForkNumber fork, int blkno) {
    long need = Integer.toUnsignedLong(blkno) + 1;
    if (need > Integer.toUnsignedLong(relSize(rel, fork)) || relSize(rel, fork) < 0) {
      setRelSize(rel, fork, (int) need);
    }
  }

  private void dropRelation(RelTag rel) {
    for (ForkNumber fork : ForkNumber.values()) {
      if (relSize(rel, fork) >= 0) {
        relSizes.put(new RelFork(rel, fork), -1);
        put(KeySpace.relSize(rel, fork), Value.TOMBSTONE);
      }
    }
  }

  /** Shrinks a fork: its size, and tombstones so old blocks never come back if it grows again. */
  private void truncateFork(RelTag rel, ForkNumber fork, int newSize) {
    int cur = relSize(rel, fork);
    if (cur <= newSize) {
      return;
    }
    for (int blk = newSize; blk < cur; blk++) {
      put(KeySpace.relBlock(rel, fork, blk), Value.TOMBSTONE);
    }
    setRelSize(rel, fork, newSize);
  }

  private void smgr(SmgrRecord s) {
    switch (s) {
      case SmgrRecord.Create c -> {
        if (relSize(c.rel(), c.fork()) < 0) {
          setRelSize(c.rel(), c.fork(), 0);
        }
      }
      case SmgrRecord.Truncate t -> {
        if ((t.flags() & SMGR_TRUNCATE_HEAP) != 0 && relSize(t.rel(), ForkNumber.MAIN) >= 0) {
          truncateFork(t.rel(), ForkNumber.MAIN, t.blkno());
        }
        if ((t.flags() & SMGR_TRUNCATE_VM) != 0) {
          truncateVisibilityMap(t.rel(), t.blkno());
        }
        if ((t.flags() & SMGR_TRUNCATE_FSM) != 0) {
          truncateFreeSpaceMap(t.rel(), t.blkno());
        }
      }
    }
  }

  /** {@code visibilitymap_prepare_truncate} + truncation of the VM fork. */
  private void truncateVisibilityMap(RelTag rel, int heapBlocks) {
    int vmSize = relSize(rel, ForkNumber.VISIBILITY_MAP);
    int perPage = VisibilityMapChange.HEAPBLOCKS_PER_PAGE;
    int truncBlock = Integer.divideUnsigned(heapBlocks, perPage);
    int inPage = Integer.remainderUnsigned(heapBlocks, perPage);
    int truncByte = inPage / VisibilityMapChange.HEAPBLOCKS_PER_BYTE;
    int truncShift =
        (inPage % VisibilityMapChange.HEAPBLOCKS_PER_BYTE) * VisibilityMapChange.BITS_PER_HEAPBLOCK;
    if (vmSize <= truncBlock) {
      return;
    }
    int newSize = truncBlock;
    if (truncByte != 0 || truncShift != 0) {
      // The last remaining page keeps only the bits of heap blocks below the new end.
      int n = VisibilityMapChange.MAPSIZE - truncByte;
      int[] offsets = new int[n];
      byte[] masks = new byte[n];
      byte[] bits = new byte[n];
      for (int i = 0; i < n; i++) {
        offsets[i] = VisibilityMapChange.MAP_OFFSET + truncByte + i;
        masks[i] = i == 0 ? (byte) ~((1 << truncShift) - 1) : (byte) 0xFF;
      }
      put(
          KeySpace.relBlock(rel, ForkNumber.VISIBILITY_MAP, truncBlock),
          new Value.Patch(false, offsets, masks, bits));
      newSize = truncBlock + 1;
    }
    truncateFork(rel, ForkNumber.VISIBILITY_MAP, newSize);
  }

  private static final int FSM_SLOTS_PER_PAGE = 4069;
  private static final int FSM_TREE_DEPTH = 3;

  /**
   * {@code FreeSpaceMapPrepareTruncateRel}'s new FSM size. The FSM's contents are hints that are
   * never WAL-logged; only its size is kept exact.
   */
  private void truncateFreeSpaceMap(RelTag rel, int heapBlocks) {
    int fsmSize = relSize(rel, ForkNumber.FSM);
    if (fsmSize < 0) {
      return;
    }
    long logicalPage = Integer.toUnsignedLong(heapBlocks) / FSM_SLOTS_PER_PAGE;
    long slot = Integer.toUnsignedLong(heapBlocks) % FSM_SLOTS_PER_PAGE;
    long physical = fsmLogicalToPhysical(logicalPage);
    long newSize = slot > 0 ? physical + 1 : physical;
    if (newSize < fsmSize) {
      truncateFork(rel, ForkNumber.FSM, (int) newSize);
    }
  }

  /** {@code fsm_logical_to_physical} for a bottom-level page. */
  private static long fsmLogicalToPhysical(long logicalPage) {
    long leaf = logicalPage;
    long pages = 0;
    for (int level = 0; level < FSM_TREE_DEPTH; level++) {
      pages += leaf + 1;
      leaf /= FSM_SLOTS_PER_PAGE;
    }
    return pages - 1;
  }

  // -------------------------------------------------------- visibility map

  /** Heap records clear VM bits without a block reference to the map page: a patch does it. */
  private void clearVisibilityMapBits(DecodedRecord r, HeapRecord h) {
    for (VisibilityMapChange c : h.visibilityMapChanges()) {
      if (c.action() != VisibilityMapChange.Action.CLEAR) {
        continue; // XLOG_HEAP2_VISIBLE references the map page: redo sets the bits itself
      }
      int vmBlock = c.vmBlock();
      Key vmKey = KeySpace.relBlock(c.rel(), ForkNumber.VISIBILITY_MAP, vmBlock);
      if (referencesBlock(r, vmKey)) {
        continue;
      }
      int size = relSize(c.rel(), ForkNumber.VISIBILITY_MAP);
      // Redo extends the map with initialized empty pages up to the one it clears (vm_extend).
      for (int blk = Math.max(size, 0); blk < vmBlock; blk++) {
        put(
            KeySpace.relBlock(c.rel(), ForkNumber.VISIBILITY_MAP, blk),
            new Value.Image(emptyPage()));
      }
      if (Integer.toUnsignedLong(vmBlock) + 1 > Integer.toUnsignedLong(size) || size < 0) {
        setRelSize(c.rel(), ForkNumber.VISIBILITY_MAP, vmBlock + 1);
      }
      put(
          vmKey,
          new Value.Patch(
              true, new int[] {c.pageByteOffset()}, new byte[] {(byte) c.mask()}, new byte[] {0}));
    }
  }

  private static boolean referencesBlock(DecodedRecord r, Key key) {
    for (BlockRef b : r.blocks()) {
      if (KeySpace.relBlock(b.rel(), b.fork(), b.blockNumber()).equals(key)) {
        return true;
      }
    }
    return false;
  }

  /** {@code PageInit(page, BLCKSZ, 0)}: an empty page with a valid header (see PageLayout). */
  public static byte[] emptyPage() {
    return io.zenith.ingest.pg.PageLayout.emptyPage();
  }

  // ------------------------------------------------------------------ XLOG

  private void xlog(XlogRecord x) {
    switch (x) {
      case XlogRecord.Checkpoint c -> checkpointRecord(c);
      case XlogRecord.NextOid n -> {
        checkpoint.nextOid = n.nextOid();
        checkpointChanged = true;
      }
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

  /**
   * As {@code xlog_redo}: a shutdown checkpoint's counters are exact; an online checkpoint's are
   * only used to move counters forward (its nextOid may be stale and is ignored).
   */
  private void checkpointRecord(XlogRecord.Checkpoint c) {
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
    checkpointChanged = true;
  }

  /** {@code MultiXactAdvanceNextMXact}. */
  private void advanceMulti(int nextMulti, int nextOffset) {
    if (Xids.multiPrecedes(checkpoint.nextMulti, nextMulti)) {
      checkpoint.nextMulti = nextMulti;
      checkpointChanged = true;
    }
    if (checkpoint.nextMultiOffset - nextOffset < 0) {
      checkpoint.nextMultiOffset = nextOffset;
      checkpointChanged = true;
    }
  }

  private void advanceNextXid(int xid) {
    long before = checkpoint.nextXid;
    checkpoint.advanceNextXidPast(xid);
    if (checkpoint.nextXid != before) {
      checkpointChanged = true;
    }
  }

  // ----------------------------------------------------------- transactions

  private void xact(DecodedRecord r, XactRecord x) {
    switch (x) {
      case XactRecord.Commit c -> {
        int xid = c.prepared() ? c.twophaseXid() : r.xid();
        setStatus(xid, c.subxacts(), SlruLayout.XACT_COMMITTED);
        c.rels().forEach(this::dropRelation);
        if (c.prepared()) {
          put(KeySpace.twoPhase(xid), Value.TOMBSTONE);
        }
      }
      case XactRecord.Abort a -> {
        int xid = a.prepared() ? a.twophaseXid() : r.xid();
        setStatus(xid, a.subxacts(), SlruLayout.XACT_ABORTED);
        a.rels().forEach(this::dropRelation);
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
    put(slruPageKey(slru, pageno), new Value.Image(new byte[WalFormat.BLCKSZ]));
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
        checkpoint.oldestMulti = t.endTruncOff();
        checkpoint.oldestMultiDb = t.oldestMultiDb();
        checkpointChanged = true;
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
    advanceMulti(next, nextOffset);
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
            relSizes.put(new RelFork(rf.rel(), rf.fork()), -1);
            put(KeySpace.relSize(rf.rel(), rf.fork()), Value.TOMBSTONE);
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
      setRelSize(dst, rf.fork(), rf.blocks());
    }
    Catalog.image(timeline, KeySpace.relmap(c.srcTablespaceId(), c.srcDbId()), at)
        .ifPresent(map -> put(KeySpace.relmap(c.tablespaceId(), c.dbId()), new Value.Image(map)));
    put(KeySpace.dbDir(c.tablespaceId(), c.dbId()), new Value.Image(pgVersionFile()));
  }
}
