package io.zenith.page;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.wal.ForkNumber;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

/** Masking and checksums on hand-made pages (real pages: WalRedoFidelityTest). */
class PageMaskingTest {

  /** A heap page with one 30-byte tuple at 8160, xmin 100, some free space. */
  private static byte[] heapPage() {
    ByteBuffer b = ByteBuffer.allocate(8192).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(0, 0x0000000100002000L); // pd_lsn
    b.putShort(12, (short) 28); // pd_lower: one line pointer
    b.putShort(14, (short) 8160); // pd_upper
    b.putShort(16, (short) 8192); // pd_special
    b.putShort(18, (short) 0x2004);
    b.putInt(24, 8160 | (1 << 15) | (30 << 17)); // lp: off 8160, LP_NORMAL, len 30
    b.putInt(8160, 100); // t_xmin
    b.putShort(8160 + 18, (short) 3); // t_infomask2: 3 attributes
    b.putShort(8160 + 20, (short) 0x0800); // t_infomask: XMAX_INVALID
    b.put(8160 + 22, (byte) 24); // t_hoff
    b.putInt(8160 + 24, 0x12345678); // data
    return b.array();
  }

  @Test
  void heapHintBitsPruneXidFlagsHoleAndCommandIdAreIgnored() {
    byte[] a = heapPage();
    byte[] b = a.clone();
    ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    bb.putShort(8, (short) 1234); // pd_checksum
    bb.putShort(10, (short) 0x0002); // PD_PAGE_FULL
    bb.putInt(20, 777); // pd_prune_xid
    bb.putShort(8160 + 20, (short) (0x0800 | 0x0100)); // + XMIN_COMMITTED
    bb.putInt(8160 + 8, 3); // t_cid
    bb.put(100, (byte) 1); // the hole
    bb.put(8160 + 30, (byte) 7); // padding after the 30-byte tuple
    assertThat(PageMasking.equalMasked(a, b, PageKind.HEAP)).isTrue();
    assertThat(a).isNotEqualTo(b);
  }

  @Test
  void dataLsnAndFrozenXminStillCount() {
    byte[] a = heapPage();
    byte[] data = a.clone();
    data[8160 + 24] ^= 1;
    assertThat(PageMasking.equalMasked(a, data, PageKind.HEAP)).isFalse();
    byte[] lsn = a.clone();
    lsn[4] ^= 1;
    assertThat(PageMasking.equalMasked(a, lsn, PageKind.HEAP)).isFalse();
    byte[] frozen = a.clone();
    ByteBuffer.wrap(frozen).order(ByteOrder.LITTLE_ENDIAN).putShort(8160 + 20, (short) 0x0B00);
    assertThat(PageMasking.equalMasked(a, frozen, PageKind.HEAP)).isFalse();
    assertThat(PageMasking.equalMasked(a, lsn, PageKind.HEAP, ForkNumber.INIT)).isTrue();
  }

  @Test
  void mapPagesAreComparedWholeButTheChecksum() {
    byte[] a = heapPage();
    byte[] b = a.clone();
    b[100] = 1; // a "hole" byte is a map byte on a VM page
    assertThat(PageMasking.equalMasked(a, b, PageKind.VISIBILITY_MAP)).isFalse();
    b = a.clone();
    b[8] = 1;
    assertThat(PageMasking.equalMasked(a, b, PageKind.VISIBILITY_MAP)).isTrue();
  }

  @Test
  void btreeLeafDeadItemsAndGarbageFlagAreHints() {
    ByteBuffer b = ByteBuffer.allocate(8192).order(ByteOrder.LITTLE_ENDIAN);
    b.putShort(12, (short) 28).putShort(14, (short) 8160).putShort(16, (short) 8176);
    b.putShort(18, (short) 0x2004);
    b.putInt(24, 8160 | (1 << 15) | (16 << 17));
    b.putShort(8176 + 12, (short) 1); // BTP_LEAF
    byte[] a = b.array();
    assertThat(PageKind.detect(a, ForkNumber.MAIN)).isEqualTo(PageKind.BTREE);
    byte[] dead = a.clone();
    ByteBuffer d = ByteBuffer.wrap(dead).order(ByteOrder.LITTLE_ENDIAN);
    d.putInt(24, 8160 | (3 << 15) | (16 << 17)); // LP_DEAD
    d.putShort(8176 + 12, (short) (1 | (1 << 6))); // + BTP_HAS_GARBAGE
    d.putShort(8176 + 14, (short) 12); // vacuum cycle id
    assertThat(PageMasking.equalMasked(a, dead, PageKind.BTREE)).isTrue();
    d.putShort(8176 + 12, (short) (1 | (1 << 2))); // BTP_DELETED is not a hint
    assertThat(PageMasking.equalMasked(a, dead, PageKind.BTREE)).isFalse();
  }

  @Test
  void aSortedGistBuildsPlaceholderLsnOnTheComputeIsNotADifference() {
    ByteBuffer b = ByteBuffer.allocate(8192).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(0, 0).putInt(4, 1); // pd_lsn 0/1 = GistBuildLSN, as gist_indexsortbuild writes it
    b.putShort(12, (short) 28).putShort(14, (short) 8160).putShort(16, (short) 8176);
    b.putShort(18, (short) 0x2004);
    b.putInt(24, 8160 | (1 << 15) | (16 << 17));
    b.putShort(8176 + 12, (short) 1); // F_LEAF
    b.putShort(8176 + 14, (short) 0xFF81); // GIST_PAGE_ID
    byte[] compute = b.array();
    assertThat(PageKind.detect(compute, ForkNumber.MAIN)).isEqualTo(PageKind.GIST);
    byte[] replayed = compute.clone(); // log_newpages' image, stamped with the record's end LSN
    ByteBuffer.wrap(replayed).order(ByteOrder.LITTLE_ENDIAN).putInt(4, 0x0A146728);
    assertThat(PageMasking.equalMasked(replayed, compute, PageKind.GIST, ForkNumber.MAIN)).isTrue();
    assertThat(PageMasking.equalMasked(compute, replayed, PageKind.GIST)).isTrue();

    byte[] changed = replayed.clone();
    changed[8160 + 8] ^= 1; // content still counts
    assertThat(PageMasking.equalMasked(changed, compute, PageKind.GIST, ForkNumber.MAIN)).isFalse();
    byte[] otherLsn = compute.clone(); // only the placeholder LSN is special
    ByteBuffer.wrap(otherLsn).order(ByteOrder.LITTLE_ENDIAN).putInt(4, 2);
    assertThat(PageMasking.equalMasked(replayed, otherLsn, PageKind.GIST, ForkNumber.MAIN))
        .isFalse();
    byte[] heap = heapPage();
    byte[] heapAtOne = heap.clone();
    ByteBuffer.wrap(heapAtOne).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 0).putInt(4, 1);
    assertThat(PageMasking.equalMasked(heap, heapAtOne, PageKind.HEAP)).isFalse();
  }

  @Test
  void checksumsDependOnContentAndBlockNumber() {
    byte[] p = heapPage();
    PageChecksum.set(p, 12);
    assertThat(PageChecksum.verify(p, 12)).isTrue();
    assertThat(PageChecksum.verify(p, 13)).isFalse();
    assertThat(PageChecksum.stored(p)).isBetween(1, 65535);
    p[5000] ^= 1;
    assertThat(PageChecksum.verify(p, 12)).isFalse();
    assertThat(PageChecksum.verify(new byte[8192], 3)).isTrue();
  }
}
