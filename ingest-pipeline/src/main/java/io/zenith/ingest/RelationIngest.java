package io.zenith.ingest;

import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.records.HeapRecord;
import io.zenith.ingest.wal.records.SmgrRecord;
import io.zenith.ingest.wal.records.VisibilityMapChange;
import io.zenith.layer.Key;
import io.zenith.layer.TimelineWriter;
import io.zenith.layer.Value;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import java.util.HashMap;
import java.util.Map;
import java.util.OptionalInt;

/**
 * The relation part of ingest: fork sizes and existence (extension by block references, smgr create
 * and truncate, drops) and the visibility-map bits heap records clear without referencing the map
 * page. Fork sizes are cached, loaded lazily from the timeline. Not thread-safe: the ingest
 * thread's.
 */
final class RelationIngest {
  private static final int SMGR_TRUNCATE_HEAP = 1;
  private static final int SMGR_TRUNCATE_VM = 2;
  private static final int SMGR_TRUNCATE_FSM = 4;
  private static final int FSM_SLOTS_PER_PAGE = 4069;
  private static final int FSM_TREE_DEPTH = 3;

  private record RelFork(RelTag rel, ForkNumber fork) {}

  private final TimelineWriter timeline;
  private final PendingVersions pending;

  /** Known fork sizes; -1 = the fork does not exist. */
  private final Map<RelFork, Integer> relSizes = new HashMap<>();

  RelationIngest(TimelineWriter timeline, PendingVersions pending) {
    this.timeline = timeline;
    this.pending = pending;
  }

  int relSize(RelTag rel, ForkNumber fork) {
    RelFork rf = new RelFork(rel, fork);
    Integer cached = relSizes.get(rf);
    if (cached == null) {
      OptionalInt s = Catalog.relSize(timeline, rel, fork, Lsn.MAX);
      cached = s.isPresent() ? s.getAsInt() : -1;
      relSizes.put(rf, cached);
    }
    return cached;
  }

  void setRelSize(RelTag rel, ForkNumber fork, int blocks) {
    relSizes.put(new RelFork(rel, fork), blocks);
    pending.put(KeySpace.relSize(rel, fork), new Value.Image(KeySpace.encodeSize(blocks)));
  }

  /** Redo extends a fork to hold every block it touches (creating it if needed). */
  void extendRelation(RelTag rel, ForkNumber fork, int blkno) {
    long need = Integer.toUnsignedLong(blkno) + 1;
    if (need > Integer.toUnsignedLong(relSize(rel, fork)) || relSize(rel, fork) < 0) {
      setRelSize(rel, fork, (int) need);
    }
  }

  /** Drops every fork of {@code rel} that exists. */
  void dropRelation(RelTag rel) {
    for (ForkNumber fork : ForkNumber.values()) {
      if (relSize(rel, fork) >= 0) {
        dropFork(rel, fork);
      }
    }
  }

  /** Drops one fork, known to exist (a dropped database's forks, listed from the timeline). */
  void dropFork(RelTag rel, ForkNumber fork) {
    relSizes.put(new RelFork(rel, fork), -1);
    pending.put(KeySpace.relSize(rel, fork), Value.TOMBSTONE);
  }

  /** Shrinks a fork: its size, and tombstones so old blocks never come back if it grows again. */
  private void truncateFork(RelTag rel, ForkNumber fork, int newSize) {
    int cur = relSize(rel, fork);
    if (cur <= newSize) {
      return;
    }
    for (int blk = newSize; blk < cur; blk++) {
      pending.put(KeySpace.relBlock(rel, fork, blk), Value.TOMBSTONE);
    }
    setRelSize(rel, fork, newSize);
  }

  void smgr(SmgrRecord s) {
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
      pending.put(
          KeySpace.relBlock(rel, ForkNumber.VISIBILITY_MAP, truncBlock),
          new Value.Patch(false, offsets, masks, bits));
      newSize = truncBlock + 1;
    }
    truncateFork(rel, ForkNumber.VISIBILITY_MAP, newSize);
  }

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

  /** Heap records clear VM bits without a block reference to the map page: a patch does it. */
  void clearVisibilityMapBits(DecodedRecord r, HeapRecord h) {
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
        pending.put(
            KeySpace.relBlock(c.rel(), ForkNumber.VISIBILITY_MAP, blk),
            new Value.Image(PageLayout.emptyPage()));
      }
      if (Integer.toUnsignedLong(vmBlock) + 1 > Integer.toUnsignedLong(size) || size < 0) {
        setRelSize(c.rel(), ForkNumber.VISIBILITY_MAP, vmBlock + 1);
      }
      pending.put(
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
}
