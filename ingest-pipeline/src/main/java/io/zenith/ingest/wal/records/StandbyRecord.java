package io.zenith.ingest.wal.records;

import static io.zenith.ingest.wal.records.Desc.u;

import java.util.List;

/**
 * Records of the Standby resource manager ({@code storage/standbydefs.h}). Immutable and
 * thread-safe.
 */
public sealed interface StandbyRecord extends PgRecord {

  @Override
  default String rmgrName() {
    return "Standby";
  }

  /**
   * {@code XLOG_RUNNING_XACTS}: {@code xl_running_xacts}, a snapshot of running transactions.
   *
   * @param subxidOverflow whether subtransactions were left out ({@code subxid_overflow})
   * @param nextXid the next xid to be assigned
   * @param oldestRunningXid the oldest running xid (not the oldest xmin)
   * @param latestCompletedXid the latest completed xid
   * @param xids the running top-level xids ({@code xcnt} of them)
   * @param subxids the running subtransaction xids ({@code subxcnt}, after {@code xids} in the
   *     record)
   */
  record RunningXacts(
      boolean subxidOverflow,
      int nextXid,
      int oldestRunningXid,
      int latestCompletedXid,
      List<Integer> xids,
      List<Integer> subxids)
      implements StandbyRecord {

    /** {@code MinSizeOfXactRunningXacts}: offset of {@code xids}. */
    static final int MIN_SIZE = 24;

    public RunningXacts {
      xids = List.copyOf(xids);
      subxids = List.copyOf(subxids);
    }

    public int xcnt() {
      return xids.size();
    }

    public int subxcnt() {
      return subxids.size();
    }

    @Override
    public String typeName() {
      return "RUNNING_XACTS";
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder();
      sb.append("nextXid ").append(u(nextXid));
      sb.append(" latestCompletedXid ").append(u(latestCompletedXid));
      sb.append(" oldestRunningXid ").append(u(oldestRunningXid));
      if (!xids.isEmpty()) {
        sb.append("; ").append(xids.size()).append(" xacts:");
        for (int x : xids) {
          sb.append(' ').append(u(x));
        }
      }
      if (subxidOverflow) {
        sb.append("; subxid ovf");
      }
      return sb.toString();
    }
  }
}
