package io.zenith.page;

import static io.zenith.ingest.pg.PageLayout.BLCKSZ;
import static io.zenith.ingest.pg.PageLayout.PD_CHECKSUM;
import static io.zenith.ingest.pg.PageLayout.PD_FLAGS;
import static io.zenith.ingest.pg.PageLayout.PD_LOWER;
import static io.zenith.ingest.pg.PageLayout.PD_LSN;
import static io.zenith.ingest.pg.PageLayout.PD_PRUNE_XID;
import static io.zenith.ingest.pg.PageLayout.PD_SPECIAL;
import static io.zenith.ingest.pg.PageLayout.PD_UPPER;
import static io.zenith.ingest.pg.PageLayout.SIZE_OF_PAGE_HEADER;

import io.zenith.wal.ForkNumber;
import io.zenith.wal.LittleEndian;
import java.util.Arrays;

/**
 * Clears the parts of a page that legitimately differ between a compute's own copy and the same
 * page rebuilt from WAL (DESIGN.md §6), so that the two can be compared byte for byte. The rest of
 * the page, {@code pd_lsn} included, must be equal.
 *
 * <p>Masked for every kind: {@code pd_checksum} (computed only when a page is written out; a
 * rebuilt page carries a stale one until {@link PageChecksum#set} runs).
 *
 * <p>Masked for pages with the standard layout (every kind but the map forks and {@link
 * PageKind#OTHER}), following what PostgreSQL's own {@code wal_consistency_checking} masks:
 *
 * <ul>
 *   <li>{@code pd_prune_xid} and the header hints {@code PD_PAGE_FULL} and {@code
 *       PD_HAS_FREE_LINES}, which are set without WAL;
 *   <li>the hole between {@code pd_lower} and {@code pd_upper}: a full-page image restores it as
 *       zeros, the primary keeps whatever bytes were there (GIN pages only when {@code pd_lower} is
 *       set past the header, BRIN only for regular and meta pages, as PostgreSQL does);
 *   <li>hint bits: heap tuple {@code HEAP_XMIN_COMMITTED/INVALID} (unless the pair marks xmin
 *       frozen, which is WAL-logged) and {@code HEAP_XMAX_COMMITTED/INVALID}; {@code LP_DEAD} line
 *       pointers of btree and GiST leaves and hash bucket/overflow pages (turned back into {@code
 *       LP_NORMAL}); {@code BTP_HAS_GARBAGE}, {@code F_HAS_GARBAGE}, {@code
 *       LH_PAGE_HAS_DEAD_TUPLES}, {@code BRIN_EVACUATE_PAGE}; btree's {@code BTP_SPLIT_END} and
 *       vacuum cycle id, which split redo does not restore;
 *   <li>heap command ids ({@code t_cid}, {@code HEAP_COMBOCID}): heap redo writes {@code
 *       FirstCommandId} (DESIGN.md §6, known limit), and the padding after a tuple that is not
 *       MAXALIGNed (hole bytes the tuple did not overwrite);
 *   <li>the content of deleted GIN pages and unused hash pages, which redo re-initializes;
 *   <li>the last-used-pages cache in an SP-GiST metapage, which SP-GiST updates without WAL.
 * </ul>
 *
 * <p>Sequence pages: besides the heap masks, the sequence's {@code last_value} and {@code log_cnt}.
 * WAL logs a sequence {@code SEQ_LOG_VALS} (32) values ahead of what the compute's page holds, by
 * design; a caller that wants more can check that the rebuilt {@code last_value} is not behind the
 * compute's ({@link #sequenceLastValue}).
 *
 * <p>GiST pages written by a sorted index build ({@code gist_indexsortbuild}) go to disk through
 * {@code smgrextend} with the placeholder LSN {@code GistBuildLSN} (1) and are WAL-logged
 * afterwards by {@code log_newpages}, whose images redo stamps with the record's LSN: when either
 * page of a GiST pair has LSN 1, {@link #equalMasked(byte[], byte[], PageKind, ForkNumber)} ignores
 * {@code pd_lsn} of both (the pair's content must still match).
 *
 * <p>Visibility-map pages are compared whole (their LSN and bits are WAL-logged or implied by heap
 * records); free-space-map pages are not WAL-logged and should not be compared at all. Pages are
 * never modified in place. Stateless and thread-safe.
 */
public final class PageMasking {
  private PageMasking() {}

  private static final int PD_HAS_FREE_LINES = 0x0001;
  private static final int PD_PAGE_FULL = 0x0002;

  private static final int LP_NORMAL = 1;
  private static final int LP_DEAD = 3;

  // HeapTupleHeaderData: t_xmin 0, t_xmax 4, t_field3 (t_cid / t_xvac) 8, t_ctid 12,
  // t_infomask2 18, t_infomask 20, t_hoff 22.
  private static final int T_FIELD3 = 8;
  private static final int T_INFOMASK = 20;
  private static final int T_HOFF = 22;
  private static final int HEAP_COMBOCID = 0x0020;
  private static final int HEAP_XMIN_COMMITTED = 0x0100;
  private static final int HEAP_XMIN_INVALID = 0x0200;
  private static final int HEAP_XMIN_FROZEN = HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID;
  private static final int HEAP_XMAX_COMMITTED = 0x0400;
  private static final int HEAP_XMAX_INVALID = 0x0800;
  private static final int HEAP_MOVED = 0x4000 | 0x8000;

  // BTPageOpaqueData (16 bytes): prev 0, next 4, level 8, flags 12, cycleid 14.
  private static final int BTP_LEAF = 1 << 0;
  private static final int BTP_SPLIT_END = 1 << 5;
  private static final int BTP_HAS_GARBAGE = 1 << 6;

  // HashPageOpaqueData (16 bytes): prev 0, next 4, bucket 8, flag 12, page id 14.
  private static final int LH_OVERFLOW_PAGE = 1 << 0;
  private static final int LH_BUCKET_PAGE = 1 << 1;
  private static final int LH_PAGE_TYPE = 0x0F;
  private static final int LH_PAGE_HAS_DEAD_TUPLES = 1 << 7;

  // GISTPageOpaqueData (16 bytes): nsn 0, rightlink 8, flags 12, page id 14.
  private static final int F_LEAF = 1 << 0;
  private static final int F_HAS_GARBAGE = 1 << 4;

  // GinPageOpaqueData (8 bytes): rightlink 0, maxoff 4, flags 6.
  private static final int GIN_DELETED = 1 << 2;

  // SpGistPageOpaqueData (8 bytes): flags 0, nRedirection 2, nPlaceholder 4, page id 6. The
  // metapage's contents: magic (4 bytes) at 24, then lastUsedPages, 8 x (blkno, freeSpace).
  private static final int SPGIST_META = 1 << 0;
  private static final int SPGIST_LUP_CACHE = 28;
  private static final int SPGIST_LUP_CACHE_END = SPGIST_LUP_CACHE + 8 * 8;

  // BRIN special space (8 bytes): flags at 4, page type at 6.
  private static final int BRIN_PAGETYPE_META = 0xF091;
  private static final int BRIN_PAGETYPE_REGULAR = 0xF093;
  private static final int BRIN_EVACUATE_PAGE = 1 << 0;

  /** Offset of {@code last_value} in a sequence tuple's data; {@code log_cnt} follows it. */
  private static final int SEQ_LAST_VALUE = 0;

  /** A masked copy of {@code page}; the argument is not modified. */
  public static byte[] mask(byte[] page, PageKind kind) {
    if (page.length != BLCKSZ) {
      throw new IllegalArgumentException("a page is " + BLCKSZ + " bytes, got " + page.length);
    }
    byte[] p = page.clone();
    putU16(p, PD_CHECKSUM, 0);
    if (PageChecksum.isNew(page)
        || kind == PageKind.VISIBILITY_MAP
        || kind == PageKind.FREE_SPACE_MAP
        || kind == PageKind.OTHER
        || !PageKind.hasSaneHeader(p)) {
      return p;
    }
    putI32(p, PD_PRUNE_XID, 0);
    putU16(p, PD_FLAGS, u16(p, PD_FLAGS) & ~(PD_PAGE_FULL | PD_HAS_FREE_LINES));
    int special = u16(p, PD_SPECIAL);
    switch (kind) {
      case HEAP -> {
        maskHeapTuples(p, false);
        maskHole(p);
      }
      case SEQUENCE -> {
        maskHeapTuples(p, true);
        maskHole(p);
      }
      case BTREE -> {
        int flags = u16(p, special + 12);
        if ((flags & BTP_LEAF) != 0) {
          undoDeadLinePointers(p);
        }
        putU16(p, special + 12, flags & ~(BTP_HAS_GARBAGE | BTP_SPLIT_END));
        putU16(p, special + 14, 0);
        maskHole(p);
      }
      case HASH -> {
        int flags = u16(p, special + 12);
        int type = flags & LH_PAGE_TYPE;
        if (type == 0) {
          maskContent(p);
        } else if (type == LH_BUCKET_PAGE || type == LH_OVERFLOW_PAGE) {
          undoDeadLinePointers(p);
        }
        putU16(p, special + 12, flags & ~LH_PAGE_HAS_DEAD_TUPLES);
        if (type != 0) {
          maskHole(p);
        }
      }
      case GIST -> {
        int flags = u16(p, special + 12);
        if ((flags & F_LEAF) != 0) {
          undoDeadLinePointers(p);
        }
        putU16(p, special + 12, flags & ~F_HAS_GARBAGE);
        maskHole(p);
      }
      case GIN -> {
        int flags = u16(p, special + 6);
        if ((flags & GIN_DELETED) != 0) {
          maskContent(p);
        } else if (u16(p, PD_LOWER) > SIZE_OF_PAGE_HEADER) {
          maskHole(p);
        }
      }
      case SPGIST -> {
        if ((u16(p, special) & SPGIST_META) != 0) {
          Arrays.fill(p, SPGIST_LUP_CACHE, SPGIST_LUP_CACHE_END, (byte) 0);
        }
        maskHole(p);
      }
      case BRIN -> {
        int type = u16(p, special + 6);
        if (type == BRIN_PAGETYPE_REGULAR
            || (type == BRIN_PAGETYPE_META && u16(p, PD_LOWER) > SIZE_OF_PAGE_HEADER)) {
          maskHole(p);
        }
        putU16(p, special + 4, u16(p, special + 4) & ~BRIN_EVACUATE_PAGE);
      }
      default -> throw new IllegalStateException("unhandled page kind " + kind);
    }
    return p;
  }

  /** True when the two pages are equal after {@link #mask masking} both as {@code kind}. */
  public static boolean equalMasked(byte[] a, byte[] b, PageKind kind) {
    return equalPair(a, b, mask(a, kind), mask(b, kind), kind);
  }

  /** {@code GistBuildLSN}: the LSN a sorted GiST build writes its pages with. */
  static final long GIST_BUILD_LSN = 1;

  /** Compares masked pages, applying the masks that depend on both pages of the pair. */
  private static boolean equalPair(byte[] a, byte[] b, byte[] ma, byte[] mb, PageKind kind) {
    if (kind == PageKind.GIST && (pageLsn(a) == GIST_BUILD_LSN || pageLsn(b) == GIST_BUILD_LSN)) {
      Arrays.fill(ma, PD_LSN, PD_LSN + 8, (byte) 0);
      Arrays.fill(mb, PD_LSN, PD_LSN + 8, (byte) 0);
    }
    return Arrays.equals(ma, mb);
  }

  /**
   * {@link #mask(byte[], PageKind)}, plus what depends on the fork: pages of an {@code init} fork
   * also lose {@code pd_lsn}, because index access methods write them straight to disk before
   * WAL-logging them ({@code btbuildempty} and friends), so the compute's copy keeps LSN 0 while
   * the page restored from WAL carries the record's LSN.
   */
  public static byte[] mask(byte[] page, PageKind kind, ForkNumber fork) {
    byte[] p = mask(page, kind);
    if (fork == ForkNumber.INIT) {
      Arrays.fill(p, PD_LSN, PD_LSN + 8, (byte) 0);
    }
    return p;
  }

  /** True when the two pages of {@code fork} are equal after masking both. */
  public static boolean equalMasked(byte[] a, byte[] b, PageKind kind, ForkNumber fork) {
    return equalPair(a, b, mask(a, kind, fork), mask(b, kind, fork), kind);
  }

  /**
   * The {@code last_value} of a sequence page, or empty if the page holds no sequence tuple. Lets a
   * caller check the sequence exception: a page rebuilt from WAL is never behind the compute's.
   */
  public static java.util.OptionalLong sequenceLastValue(byte[] page) {
    int data = sequenceData(page);
    return data < 0
        ? java.util.OptionalLong.empty()
        : java.util.OptionalLong.of(LittleEndian.i64(page, data + SEQ_LAST_VALUE));
  }

  /** The page LSN ({@code pd_lsn}: high 32 bits first, then low). */
  public static long pageLsn(byte[] page) {
    long hi = Integer.toUnsignedLong(LittleEndian.i32(page, PD_LSN));
    long lo = Integer.toUnsignedLong(LittleEndian.i32(page, PD_LSN + 4));
    return hi << 32 | lo;
  }

  private static int sequenceData(byte[] page) {
    if (!PageKind.hasSaneHeader(page) || maxOffset(page) < 1) {
      return -1;
    }
    int lp = LittleEndian.i32(page, SIZE_OF_PAGE_HEADER);
    if (lpFlags(lp) != LP_NORMAL || lpLen(lp) < 24 + 17) {
      return -1;
    }
    int tuple = lpOff(lp);
    int data = tuple + LittleEndian.u8(page, tuple + T_HOFF);
    return data + 16 <= BLCKSZ ? data : -1;
  }

  private static void maskHeapTuples(byte[] p, boolean sequence) {
    int max = maxOffset(p);
    for (int i = 0; i < max; i++) {
      int at = SIZE_OF_PAGE_HEADER + 4 * i;
      int lp = LittleEndian.i32(p, at);
      int off = lpOff(lp);
      int len = lpLen(lp);
      if (lpFlags(lp) != LP_NORMAL || len < T_HOFF + 1 || off + len > BLCKSZ) {
        continue;
      }
      int infomask = u16(p, off + T_INFOMASK);
      if ((infomask & HEAP_XMIN_FROZEN) != HEAP_XMIN_FROZEN) {
        infomask &= ~HEAP_XMIN_FROZEN;
      }
      infomask &= ~(HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID);
      if ((infomask & HEAP_MOVED) == 0) {
        infomask &= ~HEAP_COMBOCID;
        putI32(p, off + T_FIELD3, 0);
      }
      putU16(p, off + T_INFOMASK, infomask);
      int padded = Math.min((len + 7) & ~7, BLCKSZ - off);
      Arrays.fill(p, off + len, off + padded, (byte) 0);
    }
    if (sequence) {
      int data = sequenceData(p);
      if (data >= 0) {
        Arrays.fill(p, data + SEQ_LAST_VALUE, data + SEQ_LAST_VALUE + 16, (byte) 0);
      }
    }
  }

  private static void undoDeadLinePointers(byte[] p) {
    int max = maxOffset(p);
    for (int i = 0; i < max; i++) {
      int at = SIZE_OF_PAGE_HEADER + 4 * i;
      int lp = LittleEndian.i32(p, at);
      if (lpFlags(lp) == LP_DEAD) {
        putI32(p, at, (lp & ~(3 << 15)) | (LP_NORMAL << 15));
      }
    }
  }

  private static void maskHole(byte[] p) {
    int lower = u16(p, PD_LOWER);
    int upper = u16(p, PD_UPPER);
    Arrays.fill(p, lower, upper, (byte) 0);
  }

  /** Everything after the header, and pd_lower / pd_upper. */
  private static void maskContent(byte[] p) {
    Arrays.fill(p, SIZE_OF_PAGE_HEADER, BLCKSZ, (byte) 0);
    putU16(p, PD_LOWER, 0);
    putU16(p, PD_UPPER, 0);
  }

  private static int maxOffset(byte[] p) {
    int lower = u16(p, PD_LOWER);
    return lower <= SIZE_OF_PAGE_HEADER ? 0 : (lower - SIZE_OF_PAGE_HEADER) / 4;
  }

  // ItemIdData: lp_off:15, lp_flags:2, lp_len:15, low bits first.
  private static int lpOff(int lp) {
    return lp & 0x7FFF;
  }

  private static int lpFlags(int lp) {
    return (lp >>> 15) & 3;
  }

  private static int lpLen(int lp) {
    return lp >>> 17;
  }

  private static int u16(byte[] p, int off) {
    return LittleEndian.u16(p, off);
  }

  private static void putU16(byte[] p, int off, int v) {
    p[off] = (byte) v;
    p[off + 1] = (byte) (v >>> 8);
  }

  private static void putI32(byte[] p, int off, int v) {
    p[off] = (byte) v;
    p[off + 1] = (byte) (v >>> 8);
    p[off + 2] = (byte) (v >>> 16);
    p[off + 3] = (byte) (v >>> 24);
  }
}
