package io.zenith.ingest.wal.records;

import io.zenith.ingest.wal.BlockRef;
import java.util.List;

/**
 * Heap and Heap2 records ({@code access/heapam_xlog.h}), with the block references their redo
 * functions read. Stateless and thread-safe.
 */
final class HeapParser {
  private HeapParser() {}

  private static final int XLOG_HEAP_OPMASK = 0x70;
  private static final int XLOG_HEAP_INIT_PAGE = 0x80;

  /**
   * {@code XLH_DELETE_CONTAINS_OLD}: with wal_level=logical the main data continues with the old
   * tuple (or its key) for logical decoding, starting with an {@code xl_heap_header}.
   */
  private static final int XLH_DELETE_CONTAINS_OLD = 0x02 | 0x04;

  /** {@code XLH_UPDATE_CONTAINS_OLD}: likewise for updates. */
  private static final int XLH_UPDATE_CONTAINS_OLD = 0x04 | 0x08;

  /** {@code SizeOfHeapHeader}. */
  private static final int SIZE_OF_HEAP_HEADER = 5;

  static PgRecord heap(MainData d, int info) {
    boolean init = (info & XLOG_HEAP_INIT_PAGE) != 0;
    return switch (info & XLOG_HEAP_OPMASK) {
      case 0x00 -> {
        d.requireAtLeast(HeapRecord.Insert.SIZE, "xl_heap_insert");
        BlockRef b = d.block(0);
        yield new HeapRecord.Insert(init, b.rel(), b.blockNumber(), d.u16(0), d.u8(2));
      }
      case 0x10 -> {
        d.requireAtLeast(HeapRecord.Delete.SIZE, "xl_heap_delete");
        if ((d.u8(7) & XLH_DELETE_CONTAINS_OLD) != 0) {
          d.requireAtLeast(
              HeapRecord.Delete.SIZE + SIZE_OF_HEAP_HEADER, "xl_heap_delete with an old tuple");
        }
        BlockRef b = d.block(0);
        yield new HeapRecord.Delete(b.rel(), b.blockNumber(), d.i32(0), d.u16(4), d.u8(6), d.u8(7));
      }
      case 0x20, 0x40 -> {
        d.requireAtLeast(HeapRecord.Update.SIZE, "xl_heap_update");
        if ((d.u8(7) & XLH_UPDATE_CONTAINS_OLD) != 0) {
          d.requireAtLeast(
              HeapRecord.Update.SIZE + SIZE_OF_HEAP_HEADER, "xl_heap_update with an old tuple");
        }
        BlockRef newPage = d.block(0);
        // heap_xlog_update: the old page is block 1 when present, else the new page itself.
        BlockRef oldPage = d.record().block(1);
        int oldBlock = oldPage != null ? oldPage.blockNumber() : newPage.blockNumber();
        yield new HeapRecord.Update(
            (info & XLOG_HEAP_OPMASK) == 0x40,
            init,
            newPage.rel(),
            newPage.blockNumber(),
            oldBlock,
            d.i32(0),
            d.u16(4),
            d.u8(6),
            d.u8(7),
            d.i32(8),
            d.u16(12));
      }
      case 0x60 -> {
        d.requireAtLeast(HeapRecord.Lock.SIZE, "xl_heap_lock");
        BlockRef b = d.block(0);
        yield new HeapRecord.Lock(b.rel(), b.blockNumber(), d.i32(0), d.u16(4), d.u8(6), d.u8(7));
      }
      case 0x70 -> {
        d.requireAtLeast(HeapRecord.Inplace.SIZE, "xl_heap_inplace");
        BlockRef b = d.block(0);
        yield new HeapRecord.Inplace(b.rel(), b.blockNumber(), d.u16(0));
      }
      default -> PgRecords.other(d.record());
    };
  }

  static PgRecord heap2(MainData d, int info) {
    boolean init = (info & XLOG_HEAP_INIT_PAGE) != 0;
    return switch (info & XLOG_HEAP_OPMASK) {
      case 0x10 -> {
        d.requireAtLeast(HeapRecord.Prune.SIZE, "xl_heap_prune");
        BlockRef b = d.block(0);
        yield new HeapRecord.Prune(b.rel(), b.blockNumber(), d.i32(0), d.u16(4), d.u16(6));
      }
      case 0x20 -> {
        d.requireAtLeast(HeapRecord.Vacuum.SIZE, "xl_heap_vacuum");
        BlockRef b = d.block(0);
        yield new HeapRecord.Vacuum(b.rel(), b.blockNumber(), d.u16(0));
      }
      case 0x30 -> {
        d.requireAtLeast(HeapRecord.FreezePage.SIZE, "xl_heap_freeze_page");
        BlockRef b = d.block(0);
        yield new HeapRecord.FreezePage(b.rel(), b.blockNumber(), d.i32(0), d.u16(4));
      }
      case 0x40 -> {
        d.requireAtLeast(HeapRecord.Visible.SIZE, "xl_heap_visible");
        BlockRef vm = d.block(0);
        BlockRef heap = d.block(1);
        yield new HeapRecord.Visible(
            heap.rel(), heap.blockNumber(), vm.blockNumber(), d.i32(0), d.u8(4));
      }
      case 0x50 -> {
        d.requireAtLeast(HeapRecord.MultiInsert.MIN_SIZE, "xl_heap_multi_insert");
        BlockRef b = d.block(0);
        int ntuples = d.u16(2);
        d.seek(HeapRecord.MultiInsert.MIN_SIZE);
        List<Integer> offsets = List.of();
        if (!init) {
          d.checkCount(ntuples, 2, "ntuples");
          Integer[] offs = new Integer[ntuples];
          for (int i = 0; i < ntuples; i++) {
            offs[i] = d.u16(HeapRecord.MultiInsert.MIN_SIZE + 2 * i);
          }
          offsets = List.of(offs);
        }
        yield new HeapRecord.MultiInsert(init, b.rel(), b.blockNumber(), d.u8(0), ntuples, offsets);
      }
      case 0x60 -> {
        d.requireAtLeast(HeapRecord.LockUpdated.SIZE, "xl_heap_lock_updated");
        BlockRef b = d.block(0);
        yield new HeapRecord.LockUpdated(
            b.rel(), b.blockNumber(), d.i32(0), d.u16(4), d.u8(6), d.u8(7));
      }
      default -> PgRecords.other(d.record());
    };
  }
}
