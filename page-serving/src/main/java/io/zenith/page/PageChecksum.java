package io.zenith.page;

import io.zenith.ingest.pg.PageLayout;
import io.zenith.wal.LittleEndian;
import io.zenith.wal.WalFormat;

/**
 * PostgreSQL's data page checksum ({@code pg_checksum_page}, {@code storage/checksum_impl.h}): 32
 * parallel FNV-1a-like sums over the page read as little-endian 32-bit words, with {@code
 * pd_checksum} taken as zero, two extra rounds of zeros, the sums XORed together, the block number
 * XORed in, and the result reduced to 1..65535.
 *
 * <p>The block number is the page's number within its fork (not within its 1 GiB segment file), as
 * the buffer manager passes it. An all-zero ("new") page has no checksum: {@link #verify} accepts
 * it whatever the block. Stateless and thread-safe.
 */
public final class PageChecksum {
  private PageChecksum() {}

  private static final int N_SUMS = 32;
  private static final int FNV_PRIME = 16777619;

  /** {@code checksumBaseOffsets}: the initial value of each of the 32 sums. */
  private static final int[] BASE_OFFSETS = {
    0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A,
    0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
    0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA,
    0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
    0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE,
    0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
    0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E,
    0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756
  };

  /**
   * The checksum PostgreSQL would store in {@code pd_checksum} for {@code page} as block {@code
   * blockNumber} of its fork: 1..65535. The page's current {@code pd_checksum} does not matter.
   *
   * @throws IllegalArgumentException if the page is not {@value WalFormat#BLCKSZ} bytes
   */
  public static int compute(byte[] page, int blockNumber) {
    checkSize(page);
    int[] sums = BASE_OFFSETS.clone();
    // The page as uint32 data[BLCKSZ / 128][32]: word j of row i feeds sum j.
    for (int row = 0; row < PageLayout.BLCKSZ / (4 * N_SUMS); row++) {
      int base = row * 4 * N_SUMS;
      for (int j = 0; j < N_SUMS; j++) {
        int off = base + 4 * j;
        int word = LittleEndian.i32(page, off);
        if (off == PageLayout.PD_CHECKSUM) {
          // pd_checksum (bytes 8..9) counts as zero; pd_flags (10..11) shares its word
          word &= 0xFFFF_0000;
        }
        sums[j] = mix(sums[j], word);
      }
    }
    for (int round = 0; round < 2; round++) {
      for (int j = 0; j < N_SUMS; j++) {
        sums[j] = mix(sums[j], 0);
      }
    }
    int result = 0;
    for (int s : sums) {
      result ^= s;
    }
    result ^= blockNumber;
    return Integer.remainderUnsigned(result, 65535) + 1;
  }

  /** {@code CHECKSUM_COMP}: {@code tmp = sum ^ value; sum = tmp * FNV_PRIME ^ (tmp >> 17)}. */
  private static int mix(int sum, int value) {
    int tmp = sum ^ value;
    return tmp * FNV_PRIME ^ (tmp >>> 17);
  }

  /** The checksum stored in the page header. */
  public static int stored(byte[] page) {
    checkSize(page);
    return LittleEndian.u16(page, PageLayout.PD_CHECKSUM);
  }

  /** Computes the checksum and stores it in {@code pd_checksum} (new pages are left alone). */
  public static void set(byte[] page, int blockNumber) {
    if (isNew(page)) {
      return;
    }
    int c = compute(page, blockNumber);
    page[PageLayout.PD_CHECKSUM] = (byte) c;
    page[PageLayout.PD_CHECKSUM + 1] = (byte) (c >>> 8);
  }

  /**
   * True when the stored checksum is the one {@link #compute} gives, or the page is all zeros
   * (PostgreSQL's {@code PageIsVerifiedExtended} accepts new pages without a checksum).
   */
  public static boolean verify(byte[] page, int blockNumber) {
    return isNew(page) || stored(page) == compute(page, blockNumber);
  }

  /** An all-zero page, as relation extension leaves it. */
  public static boolean isNew(byte[] page) {
    checkSize(page);
    for (int i = 0; i < page.length; i += 8) {
      if (LittleEndian.i64(page, i) != 0) {
        return false;
      }
    }
    return true;
  }

  private static void checkSize(byte[] page) {
    if (page.length != PageLayout.BLCKSZ) {
      throw new IllegalArgumentException(
          "a page is " + PageLayout.BLCKSZ + " bytes, got " + page.length);
    }
  }
}
