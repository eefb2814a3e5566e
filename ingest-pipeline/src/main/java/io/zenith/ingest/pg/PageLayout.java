package io.zenith.ingest.pg;

import io.zenith.wal.WalFormat;

/**
 * PostgreSQL 15's relation page layout ({@code bufpage.h}, {@code pg_config.h}), in one place: the
 * page size, how many pages a relation segment file holds, the offsets of the page header's fields
 * (all little-endian), and {@code PageInit}. Ingest builds pages with it, page serving reconstructs
 * and checks them, basebackups lay out segment files.
 *
 * <pre>
 *  0 u64 pd_lsn (high 32 bits first)   8 u16 pd_checksum   10 u16 pd_flags
 * 12 u16 pd_lower   14 u16 pd_upper   16 u16 pd_special   18 u16 pd_pagesize_version
 * 20 u32 pd_prune_xid                 24 line pointers (SizeOfPageHeaderData = 24)
 * </pre>
 *
 * <p>Stateless and thread-safe.
 */
public final class PageLayout {
  private PageLayout() {}

  /**
   * Relation page size ({@code BLCKSZ}). Defined by wal-log's {@link WalFormat#BLCKSZ}, since the
   * WAL carries full-page images of this size and wal-log depends on no other module; this is the
   * name page-layout code uses.
   */
  public static final int BLCKSZ = WalFormat.BLCKSZ;

  /** Pages per relation segment file ({@code RELSEG_SIZE}: 1 GiB of {@link #BLCKSZ} pages). */
  public static final int RELSEG_SIZE = 131072;

  /** {@code SizeOfPageHeaderData}: where the line pointers (or a VM page's map) start. */
  public static final int SIZE_OF_PAGE_HEADER = 24;

  /** {@code PG_PAGE_LAYOUT_VERSION}, in the low byte of {@code pd_pagesize_version}. */
  public static final int PAGE_LAYOUT_VERSION = 4;

  public static final int PD_LSN = 0;
  public static final int PD_CHECKSUM = 8;
  public static final int PD_FLAGS = 10;
  public static final int PD_LOWER = 12;
  public static final int PD_UPPER = 14;
  public static final int PD_SPECIAL = 16;
  public static final int PD_PAGESIZE_VERSION = 18;
  public static final int PD_PRUNE_XID = 20;

  /** {@code PageInit(page, BLCKSZ, 0)}: an empty page with a valid header. */
  public static byte[] emptyPage() {
    byte[] p = new byte[BLCKSZ];
    putU16(p, PD_LOWER, SIZE_OF_PAGE_HEADER);
    putU16(p, PD_UPPER, BLCKSZ);
    putU16(p, PD_SPECIAL, BLCKSZ);
    putU16(p, PD_PAGESIZE_VERSION, BLCKSZ | PAGE_LAYOUT_VERSION);
    return p;
  }

  /** {@code PageIsNew}: pd_upper is zero (the page was never initialized). */
  public static boolean isNew(byte[] page) {
    return page[PD_UPPER] == 0 && page[PD_UPPER + 1] == 0;
  }

  private static void putU16(byte[] p, int at, int v) {
    p[at] = (byte) v;
    p[at + 1] = (byte) (v >>> 8);
  }
}
