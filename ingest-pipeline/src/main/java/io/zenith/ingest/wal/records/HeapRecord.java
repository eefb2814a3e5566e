package io.zenith.ingest.wal.records;

import static io.zenith.ingest.wal.records.Desc.hex2;
import static io.zenith.ingest.wal.records.Desc.u;

import io.zenith.wal.RelTag;
import java.util.ArrayList;
import java.util.List;

/**
 * Records of the Heap and Heap2 resource managers ({@code access/heapam_xlog.h}) with the heap page
 * they change (block reference 0 unless noted) and the visibility-map bits their redo sets or
 * clears ({@code heap_xlog_*} in {@code access/heap/heapam.c}). Tuple data in the block references
 * is not decoded. Immutable and thread-safe.
 */
public sealed interface HeapRecord extends PgRecord {

  /** {@code XLH_INSERT_ALL_VISIBLE_CLEARED}. */
  int XLH_INSERT_ALL_VISIBLE_CLEARED = 1;

  /** {@code XLH_INSERT_LAST_IN_MULTI}. */
  int XLH_INSERT_LAST_IN_MULTI = 1 << 1;

  /** {@code XLH_INSERT_IS_SPECULATIVE}. */
  int XLH_INSERT_IS_SPECULATIVE = 1 << 2;

  /** {@code XLH_INSERT_CONTAINS_NEW_TUPLE}. */
  int XLH_INSERT_CONTAINS_NEW_TUPLE = 1 << 3;

  /** {@code XLH_INSERT_ON_TOAST_RELATION}. */
  int XLH_INSERT_ON_TOAST_RELATION = 1 << 4;

  /** {@code XLH_INSERT_ALL_FROZEN_SET}. */
  int XLH_INSERT_ALL_FROZEN_SET = 1 << 5;

  /** {@code XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED}. */
  int XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED = 1;

  /** {@code XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED}. */
  int XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED = 1 << 1;

  /** {@code XLH_DELETE_ALL_VISIBLE_CLEARED}. */
  int XLH_DELETE_ALL_VISIBLE_CLEARED = 1;

  /** {@code XLH_LOCK_ALL_FROZEN_CLEARED}. */
  int XLH_LOCK_ALL_FROZEN_CLEARED = 1;

  /** {@code XLHL_XMAX_IS_MULTI}. */
  int XLHL_XMAX_IS_MULTI = 0x01;

  /** {@code XLHL_XMAX_LOCK_ONLY}. */
  int XLHL_XMAX_LOCK_ONLY = 0x02;

  /** {@code XLHL_XMAX_EXCL_LOCK}. */
  int XLHL_XMAX_EXCL_LOCK = 0x04;

  /** {@code XLHL_XMAX_KEYSHR_LOCK}. */
  int XLHL_XMAX_KEYSHR_LOCK = 0x08;

  /** {@code XLHL_KEYS_UPDATED}. */
  int XLHL_KEYS_UPDATED = 0x10;

  /** The heap relation the record changes. */
  RelTag rel();

  private static String withInit(String name, boolean init) {
    return init ? name + "+INIT" : name;
  }

  /**
   * {@code XLOG_HEAP_INSERT}: {@code xl_heap_insert}.
   *
   * @param init {@code XLOG_HEAP_INIT_PAGE}: the page is initialized first
   * @param rel the heap
   * @param block the heap block
   * @param offnum the new tuple's offset
   * @param flags {@code XLH_INSERT_*}
   */
  record Insert(boolean init, RelTag rel, int block, int offnum, int flags) implements HeapRecord {
    /** {@code SizeOfHeapInsert}. */
    static final int SIZE = 3;

    @Override
    public String rmgrName() {
      return "Heap";
    }

    @Override
    public String typeName() {
      return withInit("INSERT", init);
    }

    @Override
    public String describe() {
      return "off " + offnum + " flags " + hex2(flags);
    }

    @Override
    public List<VisibilityMapChange> visibilityMapChanges() {
      return (flags & XLH_INSERT_ALL_VISIBLE_CLEARED) != 0
          ? List.of(VisibilityMapChange.clear(rel, block, VisibilityMapChange.VALID_BITS))
          : List.of();
    }
  }

  /**
   * {@code XLOG_HEAP_DELETE}: {@code xl_heap_delete}.
   *
   * @param rel the heap
   * @param block the heap block
   * @param xmax the deleting xid
   * @param offnum the deleted tuple's offset
   * @param infobitsSet {@code XLHL_*} infomask bits to set
   * @param flags {@code XLH_DELETE_*}
   */
  record Delete(RelTag rel, int block, int xmax, int offnum, int infobitsSet, int flags)
      implements HeapRecord {
    /** {@code SizeOfHeapDelete}. */
    static final int SIZE = 8;

    @Override
    public String rmgrName() {
      return "Heap";
    }

    @Override
    public String typeName() {
      return "DELETE";
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder();
      sb.append("off ").append(offnum).append(" flags ").append(hex2(flags)).append(' ');
      Desc.infobits(sb, infobitsSet);
      return Desc.line(sb);
    }

    @Override
    public List<VisibilityMapChange> visibilityMapChanges() {
      return (flags & XLH_DELETE_ALL_VISIBLE_CLEARED) != 0
          ? List.of(VisibilityMapChange.clear(rel, block, VisibilityMapChange.VALID_BITS))
          : List.of();
    }
  }

  /**
   * {@code XLOG_HEAP_UPDATE} / {@code XLOG_HEAP_HOT_UPDATE}: {@code xl_heap_update}. Block
   * reference 0 is the new tuple's page; block reference 1 is the old tuple's page when it differs,
   * otherwise both are block 0.
   *
   * @param hot a HOT update (always within one page)
   * @param init {@code XLOG_HEAP_INIT_PAGE}: the new page is initialized first
   * @param rel the heap
   * @param newBlock the new tuple's block
   * @param oldBlock the old tuple's block
   * @param oldXmax xmax of the old tuple
   * @param oldOffnum the old tuple's offset
   * @param oldInfobitsSet {@code XLHL_*} infomask bits to set on the old tuple
   * @param flags {@code XLH_UPDATE_*}
   * @param newXmax xmax of the new tuple
   * @param newOffnum the new tuple's offset
   */
  record Update(
      boolean hot,
      boolean init,
      RelTag rel,
      int newBlock,
      int oldBlock,
      int oldXmax,
      int oldOffnum,
      int oldInfobitsSet,
      int flags,
      int newXmax,
      int newOffnum)
      implements HeapRecord {
    /** {@code SizeOfHeapUpdate}. */
    static final int SIZE = 14;

    @Override
    public String rmgrName() {
      return "Heap";
    }

    @Override
    public String typeName() {
      return withInit(hot ? "HOT_UPDATE" : "UPDATE", init);
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder();
      sb.append("off ").append(oldOffnum).append(" xmax ").append(u(oldXmax));
      sb.append(" flags ").append(hex2(flags)).append(' ');
      Desc.infobits(sb, oldInfobitsSet);
      sb.append("; new off ").append(newOffnum).append(" xmax ").append(u(newXmax));
      return sb.toString();
    }

    /** The old page's bits first, then the new page's, as {@code heap_xlog_update} does. */
    @Override
    public List<VisibilityMapChange> visibilityMapChanges() {
      List<VisibilityMapChange> out = new ArrayList<>(2);
      if ((flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED) != 0) {
        out.add(VisibilityMapChange.clear(rel, oldBlock, VisibilityMapChange.VALID_BITS));
      }
      if ((flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED) != 0) {
        out.add(VisibilityMapChange.clear(rel, newBlock, VisibilityMapChange.VALID_BITS));
      }
      return List.copyOf(out);
    }
  }

  /**
   * {@code XLOG_HEAP_LOCK}: {@code xl_heap_lock}.
   *
   * @param rel the heap
   * @param block the heap block
   * @param lockingXid the locker (a MultiXactId with {@link #XLHL_XMAX_IS_MULTI})
   * @param offnum the locked tuple's offset
   * @param infobitsSet {@code XLHL_*} infomask bits to set
   * @param flags {@code XLH_LOCK_*}
   */
  record Lock(RelTag rel, int block, int lockingXid, int offnum, int infobitsSet, int flags)
      implements HeapRecord {
    /** {@code SizeOfHeapLock}. */
    static final int SIZE = 8;

    @Override
    public String rmgrName() {
      return "Heap";
    }

    @Override
    public String typeName() {
      return "LOCK";
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder();
      sb.append("off ").append(offnum).append(": xid ").append(u(lockingXid));
      sb.append(": flags ").append(hex2(flags)).append(' ');
      Desc.infobits(sb, infobitsSet);
      return Desc.line(sb);
    }

    /** Locking only ever clears all-frozen: the page stays all-visible. */
    @Override
    public List<VisibilityMapChange> visibilityMapChanges() {
      return (flags & XLH_LOCK_ALL_FROZEN_CLEARED) != 0
          ? List.of(VisibilityMapChange.clear(rel, block, VisibilityMapChange.ALL_FROZEN))
          : List.of();
    }
  }

  /**
   * {@code XLOG_HEAP_INPLACE}: {@code xl_heap_inplace}; the new tuple is in block 0's data.
   *
   * @param rel the heap
   * @param block the heap block
   * @param offnum the updated tuple's offset
   */
  record Inplace(RelTag rel, int block, int offnum) implements HeapRecord {
    /** {@code SizeOfHeapInplace}. */
    static final int SIZE = 2;

    @Override
    public String rmgrName() {
      return "Heap";
    }

    @Override
    public String typeName() {
      return "INPLACE";
    }

    @Override
    public String describe() {
      return "off " + offnum;
    }
  }

  /**
   * {@code XLOG_HEAP2_MULTI_INSERT}: {@code xl_heap_multi_insert}.
   *
   * @param init {@code XLOG_HEAP_INIT_PAGE}: the page is initialized and the offsets are omitted
   * @param rel the heap
   * @param block the heap block
   * @param flags {@code XLH_INSERT_*}
   * @param ntuples number of tuples inserted
   * @param offsets their offsets as stored in the record (empty with {@code init})
   */
  record MultiInsert(
      boolean init, RelTag rel, int block, int flags, int ntuples, List<Integer> offsets)
      implements HeapRecord {
    /** {@code SizeOfHeapMultiInsert}: flags, padding, ntuples. */
    static final int MIN_SIZE = 4;

    public MultiInsert {
      offsets = List.copyOf(offsets);
    }

    /** The offsets redo uses: the stored ones, or 1..ntuples on an initialized page. */
    public List<Integer> tupleOffsets() {
      if (!init) {
        return offsets;
      }
      List<Integer> out = new ArrayList<>(ntuples);
      for (int i = 1; i <= ntuples; i++) {
        out.add(i);
      }
      return List.copyOf(out);
    }

    @Override
    public String rmgrName() {
      return "Heap2";
    }

    @Override
    public String typeName() {
      return withInit("MULTI_INSERT", init);
    }

    @Override
    public String describe() {
      return ntuples + " tuples flags " + hex2(flags);
    }

    /**
     * {@code XLH_INSERT_ALL_FROZEN_SET} sets only the page's {@code PD_ALL_VISIBLE} in redo: the VM
     * bits come with the {@code VISIBLE} record that follows.
     */
    @Override
    public List<VisibilityMapChange> visibilityMapChanges() {
      return (flags & XLH_INSERT_ALL_VISIBLE_CLEARED) != 0
          ? List.of(VisibilityMapChange.clear(rel, block, VisibilityMapChange.VALID_BITS))
          : List.of();
    }
  }

  /**
   * {@code XLOG_HEAP2_LOCK_UPDATED}: {@code xl_heap_lock_updated}, a lock on a later version of an
   * updated tuple.
   *
   * @param rel the heap
   * @param block the heap block
   * @param xmax the new xmax
   * @param offnum the tuple's offset
   * @param infobitsSet {@code XLHL_*} infomask bits to set
   * @param flags {@code XLH_LOCK_*}
   */
  record LockUpdated(RelTag rel, int block, int xmax, int offnum, int infobitsSet, int flags)
      implements HeapRecord {
    /** {@code SizeOfHeapLockUpdated}. */
    static final int SIZE = 8;

    @Override
    public String rmgrName() {
      return "Heap2";
    }

    @Override
    public String typeName() {
      return "LOCK_UPDATED";
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder();
      sb.append("off ").append(offnum).append(": xmax ").append(u(xmax));
      sb.append(": flags ").append(hex2(flags)).append(' ');
      Desc.infobits(sb, infobitsSet);
      return Desc.line(sb);
    }

    @Override
    public List<VisibilityMapChange> visibilityMapChanges() {
      return (flags & XLH_LOCK_ALL_FROZEN_CLEARED) != 0
          ? List.of(VisibilityMapChange.clear(rel, block, VisibilityMapChange.ALL_FROZEN))
          : List.of();
    }
  }

  /**
   * {@code XLOG_HEAP2_VISIBLE}: {@code xl_heap_visible}. Block reference 0 is the VM page, block
   * reference 1 the heap page whose bits are set.
   *
   * @param rel the heap (of block reference 1)
   * @param heapBlock the heap block (of block reference 1)
   * @param vmBlock the VM fork block (of block reference 0)
   * @param cutoffXid the conflict horizon for hot standby
   * @param flags the {@code VISIBILITYMAP_*} bits set
   */
  record Visible(RelTag rel, int heapBlock, int vmBlock, int cutoffXid, int flags)
      implements HeapRecord {
    /** {@code SizeOfHeapVisible}. */
    static final int SIZE = 5;

    @Override
    public String rmgrName() {
      return "Heap2";
    }

    @Override
    public String typeName() {
      return "VISIBLE";
    }

    @Override
    public String describe() {
      return "cutoff xid " + u(cutoffXid) + " flags " + hex2(flags);
    }

    @Override
    public List<VisibilityMapChange> visibilityMapChanges() {
      int bits = flags & VisibilityMapChange.VALID_BITS;
      return bits != 0 ? List.of(VisibilityMapChange.set(rel, heapBlock, bits)) : List.of();
    }
  }

  /**
   * {@code XLOG_HEAP2_FREEZE_PAGE}: {@code xl_heap_freeze_page}; the freeze plans are in block 0's
   * data.
   *
   * @param rel the heap
   * @param block the heap block
   * @param cutoffXid the freeze cutoff
   * @param ntuples number of tuples frozen
   */
  record FreezePage(RelTag rel, int block, int cutoffXid, int ntuples) implements HeapRecord {
    /** {@code SizeOfHeapFreezePage}. */
    static final int SIZE = 6;

    @Override
    public String rmgrName() {
      return "Heap2";
    }

    @Override
    public String typeName() {
      return "FREEZE_PAGE";
    }

    @Override
    public String describe() {
      return "cutoff xid " + u(cutoffXid) + " ntuples " + ntuples;
    }
  }

  /**
   * {@code XLOG_HEAP2_PRUNE}: {@code xl_heap_prune}; the offset arrays are in block 0's data.
   *
   * @param rel the heap
   * @param block the heap block
   * @param latestRemovedXid the conflict horizon for hot standby
   * @param nredirected redirected line pointers (pairs of offsets in the block data)
   * @param ndead line pointers now dead
   */
  record Prune(RelTag rel, int block, int latestRemovedXid, int nredirected, int ndead)
      implements HeapRecord {
    /** {@code SizeOfHeapPrune}. */
    static final int SIZE = 8;

    @Override
    public String rmgrName() {
      return "Heap2";
    }

    @Override
    public String typeName() {
      return "PRUNE";
    }

    @Override
    public String describe() {
      return "latestRemovedXid "
          + u(latestRemovedXid)
          + " nredirected "
          + nredirected
          + " ndead "
          + ndead;
    }
  }

  /**
   * {@code XLOG_HEAP2_VACUUM}: {@code xl_heap_vacuum}; the offsets are in block 0's data.
   *
   * @param rel the heap
   * @param block the heap block
   * @param nunused dead line pointers marked unused
   */
  record Vacuum(RelTag rel, int block, int nunused) implements HeapRecord {
    /** {@code SizeOfHeapVacuum}. */
    static final int SIZE = 2;

    @Override
    public String rmgrName() {
      return "Heap2";
    }

    @Override
    public String typeName() {
      return "VACUUM";
    }

    @Override
    public String describe() {
      return "nunused " + nunused;
    }
  }
}
