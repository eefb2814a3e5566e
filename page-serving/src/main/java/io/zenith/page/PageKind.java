package io.zenith.page;

import io.zenith.ingest.pg.PageLayout;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.LittleEndian;

/**
 * What a relation page holds, as far as comparing pages goes: the access method that laid it out,
 * or the map fork it belongs to. Decides which bytes {@link PageMasking} ignores.
 */
public enum PageKind {
  /** A heap (table, TOAST, materialized view) page: no special space. */
  HEAP,
  /** A btree page: 16-byte {@code BTPageOpaqueData}. */
  BTREE,
  /** A hash index page: 16-byte {@code HashPageOpaqueData} ending with {@code 0xFF80}. */
  HASH,
  /** A GIN page: 8-byte {@code GinPageOpaqueData} (no page id). */
  GIN,
  /** A GiST page: 16-byte {@code GISTPageOpaqueData} ending with {@code 0xFF81}. */
  GIST,
  /** An SP-GiST page: 8-byte {@code SpGistPageOpaqueData} ending with {@code 0xFF82}. */
  SPGIST,
  /** A BRIN page: 8-byte special space ending with page type {@code 0xF091..0xF093}. */
  BRIN,
  /** A sequence's page: 8-byte special space holding {@code SEQ_MAGIC} {@code 0x1717}. */
  SEQUENCE,
  /** A page of a {@code vm} fork. */
  VISIBILITY_MAP,
  /** A page of an {@code fsm} fork. */
  FREE_SPACE_MAP,
  /** An all-zero page, or one whose header or special space is not recognized. */
  OTHER;

  /**
   * The kind of {@code page} of the given fork, told from the fork and the special space the way
   * pageinspect and pg_filedump do. GIN has no page id: an 8-byte special space that is neither
   * SP-GiST, BRIN nor a sequence is taken as GIN. Thread-safe.
   */
  public static PageKind detect(byte[] page, ForkNumber fork) {
    if (fork == ForkNumber.VISIBILITY_MAP) {
      return VISIBILITY_MAP;
    }
    if (fork == ForkNumber.FSM) {
      return FREE_SPACE_MAP;
    }
    if (page.length != PageLayout.BLCKSZ || !hasSaneHeader(page)) {
      return OTHER;
    }
    int special = LittleEndian.u16(page, PageLayout.PD_SPECIAL);
    int specialSize = PageLayout.BLCKSZ - special;
    int lastU16 = LittleEndian.u16(page, PageLayout.BLCKSZ - 2);
    return switch (specialSize) {
      case 0 -> HEAP;
      case 16 ->
          lastU16 == 0xFF80 ? HASH : lastU16 == 0xFF81 ? GIST : lastU16 <= 0xFF7F ? BTREE : OTHER;
      case 8 -> {
        if (lastU16 == 0xFF82) {
          yield SPGIST;
        } else if (lastU16 >= 0xF091 && lastU16 <= 0xF093) {
          yield BRIN;
        } else if (LittleEndian.i32(page, special) == 0x1717) {
          yield SEQUENCE;
        }
        yield GIN;
      }
      default -> OTHER;
    };
  }

  /** pd_lower, pd_upper and pd_special in order and within the page, as bufpage.c checks. */
  static boolean hasSaneHeader(byte[] page) {
    int lower = LittleEndian.u16(page, PageLayout.PD_LOWER);
    int upper = LittleEndian.u16(page, PageLayout.PD_UPPER);
    int special = LittleEndian.u16(page, PageLayout.PD_SPECIAL);
    return lower >= PageLayout.SIZE_OF_PAGE_HEADER
        && lower <= upper
        && upper <= special
        && special <= PageLayout.BLCKSZ
        && special % 8 == 0;
  }
}
