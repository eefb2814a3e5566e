package io.zenith.ingest.wal.records;

import static io.zenith.ingest.wal.records.Desc.u;

import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;

/**
 * Records of the Storage resource manager ({@code catalog/storage_xlog.h}). Immutable and
 * thread-safe.
 */
public sealed interface SmgrRecord extends PgRecord {

  /** {@code SMGR_TRUNCATE_HEAP}. */
  int TRUNCATE_HEAP = 0x0001;

  /** {@code SMGR_TRUNCATE_VM}. */
  int TRUNCATE_VM = 0x0002;

  /** {@code SMGR_TRUNCATE_FSM}. */
  int TRUNCATE_FSM = 0x0004;

  @Override
  default String rmgrName() {
    return "Storage";
  }

  /**
   * {@code XLOG_SMGR_CREATE}: {@code xl_smgr_create}, a relation fork file was created.
   *
   * @param rel the relation
   * @param fork the fork
   */
  record Create(RelTag rel, ForkNumber fork) implements SmgrRecord {
    /** {@code sizeof(xl_smgr_create)}. */
    static final int SIZE = 16;

    @Override
    public String typeName() {
      return "CREATE";
    }

    @Override
    public String describe() {
      return Desc.relPath(rel, fork);
    }
  }

  /**
   * {@code XLOG_SMGR_TRUNCATE}: {@code xl_smgr_truncate}.
   *
   * @param blkno the new length in blocks of the main fork; redo also shrinks the FSM and VM to
   *     match when their flags are set
   * @param rel the relation
   * @param flags {@code SMGR_TRUNCATE_*} bits: which forks are truncated
   */
  record Truncate(int blkno, RelTag rel, int flags) implements SmgrRecord {
    /** {@code sizeof(xl_smgr_truncate)}. */
    static final int SIZE = 20;

    public boolean truncatesHeap() {
      return (flags & TRUNCATE_HEAP) != 0;
    }

    public boolean truncatesVisibilityMap() {
      return (flags & TRUNCATE_VM) != 0;
    }

    public boolean truncatesFreeSpaceMap() {
      return (flags & TRUNCATE_FSM) != 0;
    }

    @Override
    public String typeName() {
      return "TRUNCATE";
    }

    @Override
    public String describe() {
      return Desc.relPath(rel, ForkNumber.MAIN) + " to " + u(blkno) + " blocks flags " + flags;
    }
  }
}
