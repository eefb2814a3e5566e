package io.zenith.ingest.wal.records;

import static io.zenith.ingest.wal.records.Desc.u;

/** Records of the CLOG resource manager ({@code access/clog.h}). Immutable and thread-safe. */
public sealed interface ClogRecord extends PgRecord {

  @Override
  default String rmgrName() {
    return "CLOG";
  }

  /**
   * {@code CLOG_ZEROPAGE}: a commit-log page was initialized to zeros.
   *
   * @param pageno the page (a C {@code int})
   */
  record ZeroPage(int pageno) implements ClogRecord {
    @Override
    public String typeName() {
      return "ZEROPAGE";
    }

    @Override
    public String describe() {
      return "page " + pageno;
    }
  }

  /**
   * {@code CLOG_TRUNCATE}: {@code xl_clog_truncate}, commit-log segments before {@code pageno}'s
   * segment are removed.
   *
   * @param pageno the cutoff page
   * @param oldestXact the new oldest xid
   * @param oldestXactDb the database holding it
   */
  record Truncate(int pageno, int oldestXact, int oldestXactDb) implements ClogRecord {
    /** {@code sizeof(xl_clog_truncate)}. */
    static final int SIZE = 12;

    @Override
    public String typeName() {
      return "TRUNCATE";
    }

    @Override
    public String describe() {
      return "page " + pageno + "; oldestXact " + u(oldestXact);
    }
  }
}
