package io.zenith.ingest.pg;

import java.util.Locale;

/**
 * Page arithmetic of PostgreSQL 15's SLRUs (CLOG, multixact offsets and members) with 8 KiB pages,
 * as in {@code clog.c}, {@code multixact.c} and {@code slru.c}. All ids are unsigned 32-bit.
 */
public final class SlruLayout {
  private SlruLayout() {}

  public static final int PAGES_PER_SEGMENT = 32;

  /** Segment file name inside the SLRU's directory ({@code %04X}: four or more hex digits). */
  public static String segmentFileName(int segno) {
    return String.format(Locale.ROOT, "%04X", segno);
  }

  public static int segmentOf(int pageno) {
    return Integer.divideUnsigned(pageno, PAGES_PER_SEGMENT);
  }

  public static int blockInSegment(int pageno) {
    return Integer.remainderUnsigned(pageno, PAGES_PER_SEGMENT);
  }

  // ------------------------------------------------------------------ CLOG

  public static final int CLOG_XACTS_PER_PAGE = PageLayout.BLCKSZ * 4;
  public static final int XACT_COMMITTED = 1;
  public static final int XACT_ABORTED = 2;

  public static int clogPage(int xid) {
    return Integer.divideUnsigned(xid, CLOG_XACTS_PER_PAGE);
  }

  public static int clogByte(int xid) {
    return Integer.remainderUnsigned(xid, CLOG_XACTS_PER_PAGE) / 4;
  }

  public static int clogShift(int xid) {
    return Integer.remainderUnsigned(xid, 4) * 2;
  }

  /** {@code CLOGPagePrecedes}. */
  public static boolean clogPagePrecedes(int page1, int page2) {
    int xid1 = page1 * CLOG_XACTS_PER_PAGE + Xids.FIRST_NORMAL + 1;
    int xid2 = page2 * CLOG_XACTS_PER_PAGE + Xids.FIRST_NORMAL + 1;
    return Xids.precedes(xid1, xid2) && Xids.precedes(xid1, xid2 + CLOG_XACTS_PER_PAGE - 1);
  }

  // -------------------------------------------------------- multixact offsets

  public static final int OFFSETS_PER_PAGE = PageLayout.BLCKSZ / 4;

  public static int offsetPage(int multi) {
    return Integer.divideUnsigned(multi, OFFSETS_PER_PAGE);
  }

  /** Byte offset of a multixact's member offset within its page. */
  public static int offsetByte(int multi) {
    return Integer.remainderUnsigned(multi, OFFSETS_PER_PAGE) * 4;
  }

  /** {@code MultiXactOffsetPagePrecedes}. */
  public static boolean offsetPagePrecedes(int page1, int page2) {
    int m1 = page1 * OFFSETS_PER_PAGE + 1 + 1;
    int m2 = page2 * OFFSETS_PER_PAGE + 1 + 1;
    return Xids.multiPrecedes(m1, m2) && Xids.multiPrecedes(m1, m2 + OFFSETS_PER_PAGE - 1);
  }

  // -------------------------------------------------------- multixact members

  static final int MEMBERS_PER_GROUP = 4;
  static final int GROUP_SIZE = 4 * 4 + 4;
  static final int GROUPS_PER_PAGE = PageLayout.BLCKSZ / GROUP_SIZE;
  public static final int MEMBERS_PER_PAGE = GROUPS_PER_PAGE * MEMBERS_PER_GROUP;

  public static int memberPage(int offset) {
    return Integer.divideUnsigned(offset, MEMBERS_PER_PAGE);
  }

  private static int groupByte(int offset) {
    return Integer.remainderUnsigned(
            Integer.divideUnsigned(offset, MEMBERS_PER_GROUP), GROUPS_PER_PAGE)
        * GROUP_SIZE;
  }

  /** Byte of the member's status flags (one byte per member, little-endian flag word). */
  public static int memberFlagByte(int offset) {
    return groupByte(offset) + Integer.remainderUnsigned(offset, MEMBERS_PER_GROUP);
  }

  /** First byte of the member's xid. */
  public static int memberXidByte(int offset) {
    return groupByte(offset) + 4 + Integer.remainderUnsigned(offset, MEMBERS_PER_GROUP) * 4;
  }

  public static int memberSegment(int offset) {
    return segmentOf(memberPage(offset));
  }

  /** {@code MXOffsetToMemberSegment(MaxMultiXactOffset)}: where member segment numbers wrap. */
  public static final int MAX_MEMBER_SEGMENT = memberSegment(0xFFFFFFFF);

  /** {@code SlruMayDeleteSegment}: both ends of the segment precede the cutoff page. */
  public static boolean mayDeleteSegment(int segno, int cutoffPage, PagePrecedes precedes) {
    int first = segno * PAGES_PER_SEGMENT;
    return precedes.test(first, cutoffPage)
        && precedes.test(first + PAGES_PER_SEGMENT - 1, cutoffPage);
  }

  /** A page order of one SLRU. */
  @FunctionalInterface
  public interface PagePrecedes {
    boolean test(int page1, int page2);
  }
}
