package io.zenith.page.redo;

import io.zenith.ingest.pg.PageLayout;
import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.ingest.wal.ResourceManager;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalRecord;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * PostgreSQL 15's redo of the heap records a bulk load writes, in Java, for the main fork of a heap
 * page (ADR 0034): {@code XLOG_HEAP_INSERT} and {@code XLOG_HEAP2_MULTI_INSERT} (with or without
 * {@code XLOG_HEAP_INIT_PAGE}), and the heap side of {@code XLOG_HEAP2_VISIBLE}. A page freshly
 * loaded by {@code COPY} (with {@code FREEZE}: {@code pgbench -i}) or by {@code INSERT}s has only
 * these in its history, so it is rebuilt without a round trip to a WAL-redo process.
 *
 * <p>Each step is a line-by-line port of {@code heap_xlog_insert}, {@code heap_xlog_multi_insert}
 * and {@code heap_xlog_visible} (heapam.c) with {@code PageInit} and {@code PageAddItemExtended}
 * (bufpage.c), so the page is byte-identical to the process's (checked against it on real WAL by
 * {@code HeapRedoTest}). Whatever those functions would treat in any other way — a full-page image,
 * a flag this class does not know, a page that would make redo PANIC or skip the record ({@code
 * BLK_DONE}) — ends the prefix: the rest goes to the process, from the page as it is then.
 *
 * <p>Stateless, thread-safe.
 */
public final class HeapRedo {

  /**
   * The records applied and the page after them.
   *
   * @param page the page after {@code applied} records (a new array), or the base as given when
   *     none was applied
   * @param applied how many leading records were applied (0 to all)
   */
  public record Prefix(byte[] page, int applied) {}

  private static final int XLOG_HEAP_OPMASK = 0x70;
  private static final int XLOG_HEAP_INIT_PAGE = 0x80;
  private static final int XLOG_HEAP_INSERT = 0x00;
  private static final int XLOG_HEAP2_MULTI_INSERT = 0x50;
  private static final int XLOG_HEAP2_VISIBLE = 0x40;

  private static final int XLH_INSERT_ALL_VISIBLE_CLEARED = 1;
  private static final int XLH_INSERT_LAST_IN_MULTI = 1 << 1;
  private static final int XLH_INSERT_CONTAINS_NEW_TUPLE = 1 << 3;
  private static final int XLH_INSERT_ON_TOAST_RELATION = 1 << 4;
  private static final int XLH_INSERT_ALL_FROZEN_SET = 1 << 5;

  /** Flags whose redo this class reproduces; speculative inserts go to the process. */
  private static final int INSERT_FLAGS =
      XLH_INSERT_ALL_VISIBLE_CLEARED
          | XLH_INSERT_LAST_IN_MULTI
          | XLH_INSERT_CONTAINS_NEW_TUPLE
          | XLH_INSERT_ON_TOAST_RELATION;

  private static final int MULTI_INSERT_FLAGS = INSERT_FLAGS | XLH_INSERT_ALL_FROZEN_SET;

  private static final int PD_ALL_VISIBLE = 0x0004;
  private static final int SIZE_OF_ITEM_ID = 4;
  private static final int LP_NORMAL = 1;
  private static final int MAX_HEAP_TUPLES_PER_PAGE = 291;

  /** {@code SizeofHeapTupleHeader}: offsetof(HeapTupleHeaderData, t_bits). */
  private static final int SIZEOF_HEAP_TUPLE_HEADER = 23;

  private static final int T_XMIN = 0;
  private static final int T_CID = 8;
  private static final int T_CTID = 12;
  private static final int T_INFOMASK2 = 18;
  private static final int T_INFOMASK = 20;
  private static final int T_HOFF = 22;
  private static final int HEAP_COMBOCID = 0x0020;

  /** {@code SizeOfHeapHeader} (xl_heap_header: infomask2, infomask, hoff). */
  private static final int SIZE_OF_HEAP_HEADER = 5;

  /** {@code SizeOfMultiInsertTuple} (xl_multi_insert_tuple: datalen, infomask2, infomask, hoff). */
  private static final int SIZE_OF_MULTI_INSERT_TUPLE = 7;

  private HeapRedo() {}

  /**
   * Applies the leading records of a block's history that this class reproduces.
   *
   * @param base the page before the first record, or null for a zero page
   * @param records the records, oldest first, as {@link RedoRequest} takes them
   * @param hintBitsLogged {@code XLogHintBitIsNeeded()} of the redo process (data checksums or
   *     {@code wal_log_hints}): {@code heap_xlog_visible} then stamps the page's LSN
   */
  public static Prefix applyPrefix(
      RelTag rel,
      ForkNumber fork,
      int block,
      byte[] base,
      List<WalRecord> records,
      boolean hintBitsLogged) {
    if (fork != ForkNumber.MAIN || records.isEmpty()) {
      return new Prefix(base, 0);
    }
    byte[] page = base;
    int applied = 0;
    for (WalRecord raw : records) {
      byte[] next = applyOne(rel, block, page, raw, hintBitsLogged);
      if (next == null) {
        break;
      }
      page = next;
      applied++;
    }
    return new Prefix(page, applied);
  }

  /** The page after {@code raw}, or null when the record is not one this class reproduces. */
  private static byte[] applyOne(
      RelTag rel, int block, byte[] page, WalRecord raw, boolean hintBitsLogged) {
    int rmid = raw.rmid();
    int op = raw.info() & XLOG_HEAP_OPMASK;
    boolean heap = rmid == ResourceManager.HEAP.id() && op == XLOG_HEAP_INSERT;
    boolean multi = rmid == ResourceManager.HEAP2.id() && op == XLOG_HEAP2_MULTI_INSERT;
    boolean visible = rmid == ResourceManager.HEAP2.id() && op == XLOG_HEAP2_VISIBLE;
    if (!heap && !multi && !visible) {
      return null;
    }
    DecodedRecord d;
    try {
      d = RecordDecoder.decode(raw);
    } catch (RuntimeException e) {
      return null; // the process reports what is wrong with it
    }
    if (visible) {
      return visible(d, rel, block, page, hintBitsLogged);
    }
    BlockRef b = d.block(0);
    if (d.blocks().size() != 1 || !isTarget(b, rel, block) || b.hasImage() || !b.hasData()) {
      return null;
    }
    boolean init = (raw.info() & XLOG_HEAP_INIT_PAGE) != 0;
    byte[] p;
    if (init) {
      p = PageLayout.emptyPage(); // XLogInitBufferForRedo, then PageInit
    } else {
      if (page == null || PageLayout.isNew(page) || !pointersValid(page)) {
        return null; // redo would PANIC on this page
      }
      if (Long.compareUnsigned(raw.end().value(), pageLsn(page)) <= 0) {
        return null; // BLK_DONE
      }
      p = page.clone();
    }
    ByteBuffer main = d.mainData();
    boolean ok =
        heap ? insert(d, b, main, block, p, init) : multiInsert(d, b, main, block, p, init);
    if (!ok) {
      return null;
    }
    setLsn(p, raw.end().value());
    int flags = heap ? main.get(2) & 0xFF : main.get(0) & 0xFF;
    if ((flags & XLH_INSERT_ALL_VISIBLE_CLEARED) != 0) {
      setFlags(p, flags(p) & ~PD_ALL_VISIBLE);
    }
    if ((flags & XLH_INSERT_ALL_FROZEN_SET) != 0) {
      setFlags(p, flags(p) | PD_ALL_VISIBLE);
    }
    return p;
  }

  /** {@code heap_xlog_insert}'s page part; false where it would not apply the record as below. */
  private static boolean insert(
      DecodedRecord d, BlockRef b, ByteBuffer main, int block, byte[] p, boolean init) {
    if (d.mainDataLength() < 3) {
      return false;
    }
    int offnum = main.getShort(0) & 0xFFFF;
    int flags = main.get(2) & 0xFF;
    if ((flags & ~INSERT_FLAGS) != 0) {
      return false;
    }
    ByteBuffer data = b.data();
    int datalen = data.remaining();
    if (datalen <= SIZE_OF_HEAP_HEADER) {
      return false;
    }
    if (maxOffset(p) + 1 < offnum) {
      return false; // "invalid max offset number"
    }
    int newlen = datalen - SIZE_OF_HEAP_HEADER;
    byte[] tuple =
        tuple(
            data.getShort(0),
            data.getShort(2),
            data.get(4),
            data,
            SIZE_OF_HEAP_HEADER,
            newlen,
            d.xid(),
            block,
            offnum);
    return addItem(p, tuple, offnum);
  }

  /** {@code heap_xlog_multi_insert}'s page part; false where it would not apply the record so. */
  private static boolean multiInsert(
      DecodedRecord d, BlockRef b, ByteBuffer main, int block, byte[] p, boolean init) {
    if (d.mainDataLength() < 4) {
      return false;
    }
    int flags = main.get(0) & 0xFF;
    int ntuples = main.getShort(2) & 0xFFFF;
    if ((flags & ~MULTI_INSERT_FLAGS) != 0
        || (!init && d.mainDataLength() < 4 + 2 * ntuples)
        || ((flags & XLH_INSERT_ALL_VISIBLE_CLEARED) != 0
            && (flags & XLH_INSERT_ALL_FROZEN_SET) != 0)) {
      return false;
    }
    ByteBuffer data = b.data();
    int end = data.remaining();
    int at = 0;
    for (int i = 0; i < ntuples; i++) {
      int offnum = init ? 1 + i : main.getShort(4 + 2 * i) & 0xFFFF;
      if (maxOffset(p) + 1 < offnum) {
        return false;
      }
      // SHORTALIGN of the pointer: block data starts MAXALIGNed in the decoded record
      at = (at + 1) & ~1;
      if (at + SIZE_OF_MULTI_INSERT_TUPLE > end) {
        return false;
      }
      int datalen = data.getShort(at) & 0xFFFF;
      int tupdata = at + SIZE_OF_MULTI_INSERT_TUPLE;
      if (tupdata + datalen > end) {
        return false;
      }
      byte[] tuple =
          tuple(
              data.getShort(at + 2),
              data.getShort(at + 4),
              data.get(at + 6),
              data,
              tupdata,
              datalen,
              d.xid(),
              block,
              offnum);
      if (!addItem(p, tuple, offnum)) {
        return false;
      }
      at = tupdata + datalen;
    }
    return at == end; // else "total tuple length mismatch"
  }

  /** The heap page part of {@code heap_xlog_visible} (block 1 of the record). */
  private static byte[] visible(
      DecodedRecord d, RelTag rel, int block, byte[] page, boolean hintBitsLogged) {
    BlockRef heapRef = d.block(1);
    if (d.blocks().size() != 2
        || !isTarget(heapRef, rel, block)
        || heapRef.hasImage()
        || page == null
        || PageLayout.isNew(page)
        || Long.compareUnsigned(d.end().value(), pageLsn(page)) <= 0) {
      return null;
    }
    byte[] p = page.clone();
    setFlags(p, flags(p) | PD_ALL_VISIBLE);
    if (hintBitsLogged) {
      setLsn(p, d.end().value());
    }
    return p;
  }

  private static boolean isTarget(BlockRef b, RelTag rel, int block) {
    return b != null
        && b.fork() == ForkNumber.MAIN
        && b.rel().equals(rel)
        && b.blockNumber() == block;
  }

  /** The tuple redo builds in {@code tbuf}: a zeroed header with the logged fields, then data. */
  private static byte[] tuple(
      short infomask2,
      short infomask,
      byte hoff,
      ByteBuffer data,
      int from,
      int len,
      int xid,
      int block,
      int offnum) {
    byte[] t = new byte[SIZEOF_HEAP_TUPLE_HEADER + len];
    data.get(from, t, SIZEOF_HEAP_TUPLE_HEADER, len);
    putU16(t, T_INFOMASK2, infomask2);
    // HeapTupleHeaderSetCmin clears HEAP_COMBOCID
    putU16(t, T_INFOMASK, infomask & ~HEAP_COMBOCID);
    t[T_HOFF] = hoff;
    putU32(t, T_XMIN, xid);
    putU32(t, T_CID, 0); // FirstCommandId
    putU16(t, T_CTID, block >>> 16);
    putU16(t, T_CTID + 2, block);
    putU16(t, T_CTID + 4, offnum);
    return t;
  }

  /**
   * {@code PageAddItemExtended(page, item, size, offnum, PAI_OVERWRITE | PAI_IS_HEAP)}: false where
   * it returns {@code InvalidOffsetNumber} (redo then PANICs) or would PANIC itself.
   */
  private static boolean addItem(byte[] p, byte[] item, int offnum) {
    if (!pointersValid(p) || offnum < 1) {
      return false;
    }
    int lowerNow = u16(p, PageLayout.PD_LOWER);
    int limit = maxOffset(p) + 1;
    int itemAt = PageLayout.SIZE_OF_PAGE_HEADER + (offnum - 1) * SIZE_OF_ITEM_ID;
    if (offnum < limit && u32(p, itemAt) != 0) {
      return false; // "will not overwrite a used ItemId" (lp_flags or lp_len set)
    }
    if (offnum > limit || offnum > MAX_HEAP_TUPLES_PER_PAGE) {
      return false;
    }
    int lower = offnum == limit ? lowerNow + SIZE_OF_ITEM_ID : lowerNow;
    int upper = u16(p, PageLayout.PD_UPPER) - ((item.length + 7) & ~7);
    if (lower > upper) {
      return false;
    }
    putU32(p, itemAt, upper | (LP_NORMAL << 15) | (item.length << 17));
    System.arraycopy(item, 0, p, upper, item.length);
    putU16(p, PageLayout.PD_LOWER, lower);
    putU16(p, PageLayout.PD_UPPER, upper);
    return true;
  }

  /** PageAddItemExtended's "corrupted page pointers" check. */
  private static boolean pointersValid(byte[] p) {
    int lower = u16(p, PageLayout.PD_LOWER);
    int upper = u16(p, PageLayout.PD_UPPER);
    int special = u16(p, PageLayout.PD_SPECIAL);
    return lower >= PageLayout.SIZE_OF_PAGE_HEADER
        && lower <= upper
        && upper <= special
        && special <= PageLayout.BLCKSZ;
  }

  /** {@code PageGetMaxOffsetNumber}. */
  private static int maxOffset(byte[] p) {
    int lower = u16(p, PageLayout.PD_LOWER);
    return lower <= PageLayout.SIZE_OF_PAGE_HEADER
        ? 0
        : (lower - PageLayout.SIZE_OF_PAGE_HEADER) / SIZE_OF_ITEM_ID;
  }

  private static long pageLsn(byte[] p) {
    return (Integer.toUnsignedLong(u32(p, PageLayout.PD_LSN)) << 32)
        | Integer.toUnsignedLong(u32(p, PageLayout.PD_LSN + 4));
  }

  /** {@code PageSetLSN}: xlogid then xrecoff, each a native (little-endian) uint32. */
  private static void setLsn(byte[] p, long lsn) {
    putU32(p, PageLayout.PD_LSN, (int) (lsn >>> 32));
    putU32(p, PageLayout.PD_LSN + 4, (int) lsn);
  }

  private static int flags(byte[] p) {
    return u16(p, PageLayout.PD_FLAGS);
  }

  private static void setFlags(byte[] p, int flags) {
    putU16(p, PageLayout.PD_FLAGS, flags);
  }

  private static int u16(byte[] p, int at) {
    return (p[at] & 0xFF) | (p[at + 1] & 0xFF) << 8;
  }

  private static int u32(byte[] p, int at) {
    return (p[at] & 0xFF) | (p[at + 1] & 0xFF) << 8 | (p[at + 2] & 0xFF) << 16 | p[at + 3] << 24;
  }

  private static void putU16(byte[] p, int at, int v) {
    p[at] = (byte) v;
    p[at + 1] = (byte) (v >>> 8);
  }

  private static void putU32(byte[] p, int at, int v) {
    putU16(p, at, v);
    putU16(p, at + 2, v >>> 16);
  }
}
