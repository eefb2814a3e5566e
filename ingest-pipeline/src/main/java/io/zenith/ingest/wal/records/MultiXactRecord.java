package io.zenith.ingest.wal.records;

import static io.zenith.ingest.wal.records.Desc.u;

import java.util.List;

/**
 * Records of the MultiXact resource manager ({@code access/multixact.h}). Immutable and
 * thread-safe.
 */
public sealed interface MultiXactRecord extends PgRecord {

  @Override
  default String rmgrName() {
    return "MultiXact";
  }

  /** {@code MultiXactStatus}, with the abbreviations pg_waldump prints. */
  enum Status {
    FOR_KEY_SHARE("keysh"),
    FOR_SHARE("sh"),
    FOR_NO_KEY_UPDATE("fornokeyupd"),
    FOR_UPDATE("forupd"),
    NO_KEY_UPDATE("nokeyupd"),
    UPDATE("upd");

    private final String abbreviation;

    Status(String abbreviation) {
      this.abbreviation = abbreviation;
    }

    /** The C enum value. */
    public int code() {
      return ordinal();
    }

    public String abbreviation() {
      return abbreviation;
    }

    /** The status with this C value, or null. */
    public static Status ofCode(int code) {
      Status[] all = values();
      return code >= 0 && code < all.length ? all[code] : null;
    }
  }

  /**
   * A member of a MultiXact ({@code MultiXactMember}).
   *
   * @param xid the member transaction
   * @param status how it holds the tuple
   */
  record Member(int xid, Status status) {}

  /**
   * {@code XLOG_MULTIXACT_ZERO_OFF_PAGE}: a page of {@code pg_multixact/offsets} was zeroed.
   *
   * @param pageno the page
   */
  record ZeroOffPage(int pageno) implements MultiXactRecord {
    @Override
    public String typeName() {
      return "ZERO_OFF_PAGE";
    }

    @Override
    public String describe() {
      return Integer.toString(pageno);
    }
  }

  /**
   * {@code XLOG_MULTIXACT_ZERO_MEM_PAGE}: a page of {@code pg_multixact/members} was zeroed.
   *
   * @param pageno the page
   */
  record ZeroMemPage(int pageno) implements MultiXactRecord {
    @Override
    public String typeName() {
      return "ZERO_MEM_PAGE";
    }

    @Override
    public String describe() {
      return Integer.toString(pageno);
    }
  }

  /**
   * {@code XLOG_MULTIXACT_CREATE_ID}: {@code xl_multixact_create}.
   *
   * @param mid the new MultiXactId
   * @param moff its first offset in the members SLRU
   * @param members its members
   */
  record CreateId(int mid, int moff, List<Member> members) implements MultiXactRecord {
    /** {@code SizeOfMultiXactCreate}. */
    static final int MIN_SIZE = 12;

    /** {@code sizeof(MultiXactMember)}: xid and a 4-byte enum. */
    static final int MEMBER_SIZE = 8;

    public CreateId {
      members = List.copyOf(members);
    }

    public int nmembers() {
      return members.size();
    }

    @Override
    public String typeName() {
      return "CREATE_ID";
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder();
      sb.append(u(mid)).append(" offset ").append(u(moff)).append(" nmembers ");
      sb.append(members.size()).append(": ");
      for (Member m : members) {
        sb.append(u(m.xid())).append(" (").append(m.status().abbreviation()).append(") ");
      }
      return Desc.line(sb);
    }
  }

  /**
   * {@code XLOG_MULTIXACT_TRUNCATE_ID}: {@code xl_multixact_truncate}, the ranges removed from the
   * offsets and members SLRUs.
   *
   * @param oldestMultiDb database holding the new oldest MultiXact
   * @param startTruncOff first MultiXactId removed from offsets
   * @param endTruncOff the new oldest MultiXactId (exclusive end)
   * @param startTruncMemb first member offset removed
   * @param endTruncMemb the new oldest member offset (exclusive end)
   */
  record TruncateId(
      int oldestMultiDb, int startTruncOff, int endTruncOff, int startTruncMemb, int endTruncMemb)
      implements MultiXactRecord {
    /** {@code SizeOfMultiXactTruncate}. */
    static final int SIZE = 20;

    @Override
    public String typeName() {
      return "TRUNCATE_ID";
    }

    @Override
    public String describe() {
      return "offsets ["
          + u(startTruncOff)
          + ", "
          + u(endTruncOff)
          + "), members ["
          + u(startTruncMemb)
          + ", "
          + u(endTruncMemb)
          + ")";
    }
  }
}
