package io.zenith.ingest.wal.records;

import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.ResourceManager;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormatException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Turns a decoded WAL record into its typed PostgreSQL 15 content ({@link PgRecord}).
 *
 * <p>Each layout is checked against the sizes PostgreSQL's redo reads ({@code sizeof} of the struct
 * where redo copies it whole, the {@code SizeOf*} / {@code MinSizeOf*} macro where it reads a
 * prefix); trailing bytes beyond those are ignored as redo ignores them. Counts are checked against
 * the bytes present. Stateless and thread-safe.
 */
public final class PgRecords {
  private PgRecords() {}

  /**
   * The typed content of {@code record}, or {@link PgRecord.Other} for the types this package does
   * not decode.
   *
   * @throws WalFormatException of kind {@code BAD_RECORD_CONTENT}, naming the record type and LSN,
   *     when the main data is too short, a count overruns it, or a block reference redo needs is
   *     missing
   */
  public static PgRecord parse(DecodedRecord record) {
    ResourceManager rm = record.rmgr();
    String type = record.typeName();
    if (rm == null || "UNKNOWN".equals(type)) {
      return other(record);
    }
    MainData d = new MainData(record, rm.pgName(), type);
    int info = record.info() & 0xF0;
    return switch (rm) {
      case XLOG -> xlog(d, info);
      case TRANSACTION -> XactParser.parse(d, record.info());
      case STORAGE -> smgr(d, info);
      case DATABASE -> dbase(d, info);
      case HEAP -> HeapParser.heap(d, info);
      case HEAP2 -> HeapParser.heap2(d, info);
      case CLOG -> clog(d, info);
      case MULTIXACT -> multixact(d, info);
      case RELMAP -> relmap(d);
      case STANDBY -> standby(d, info);
      default -> other(record);
    };
  }

  static PgRecord.Other other(DecodedRecord record) {
    return new PgRecord.Other(ResourceManager.nameOf(record.rmid()), record.typeName());
  }

  private static PgRecord xlog(MainData d, int info) {
    return switch (info) {
      case 0x00, 0x10 -> checkpoint(d, info == 0x00);
      case 0x30 -> new XlogRecord.NextOid(d.requireAtLeast(4, "Oid").i32(0));
      case 0x40 -> new XlogRecord.Switch();
      case 0x60 -> {
        d.requireAtLeast(XlogRecord.ParameterChange.SIZE, "xl_parameter_change");
        yield new XlogRecord.ParameterChange(
            d.i32(0), d.i32(4), d.i32(8), d.i32(12), d.i32(16), d.i32(20), d.bool(24), d.bool(25));
      }
      case 0x90 -> {
        d.requireAtLeast(XlogRecord.EndOfRecovery.SIZE, "xl_end_of_recovery");
        yield new XlogRecord.EndOfRecovery(new TimestampTz(d.i64(0)), d.i32(8), d.i32(12));
      }
      case 0xA0, 0xB0 -> fpi(d, info == 0xA0);
      default -> other(d.record());
    };
  }

  private static XlogRecord.Checkpoint checkpoint(MainData d, boolean shutdown) {
    d.requireAtLeast(XlogRecord.Checkpoint.SIZE, "CheckPoint");
    // fullPageWrites (bool at 16) is followed by 7 padding bytes: FullTransactionId is 8-aligned;
    // so is pg_time_t at 64 after oldestMultiDB at 56.
    return new XlogRecord.Checkpoint(
        shutdown,
        Lsn.of(d.i64(0)),
        d.i32(8),
        d.i32(12),
        d.bool(16),
        d.i64(24),
        d.i32(32),
        d.i32(36),
        d.i32(40),
        d.i32(44),
        d.i32(48),
        d.i32(52),
        d.i32(56),
        d.i64(64),
        d.i32(72),
        d.i32(76),
        d.i32(80));
  }

  private static XlogRecord.Fpi fpi(MainData d, boolean forHint) {
    if (!forHint) {
      for (BlockRef b : d.record().blocks()) {
        if (!b.hasImage()) {
          throw d.bad("block reference " + b.id() + " has no full-page image");
        }
      }
    }
    return new XlogRecord.Fpi(forHint, d.record().blocks());
  }

  private static PgRecord smgr(MainData d, int info) {
    return switch (info) {
      case 0x10 -> {
        d.requireAtLeast(SmgrRecord.Create.SIZE, "xl_smgr_create");
        int forkNum = d.i32(12);
        ForkNumber fork = ForkNumber.ofNumber(forkNum);
        if (fork == null) {
          throw d.bad("fork number " + forkNum + " is not a fork");
        }
        yield new SmgrRecord.Create(d.relTag(0), fork);
      }
      case 0x20 -> {
        d.requireAtLeast(SmgrRecord.Truncate.SIZE, "xl_smgr_truncate");
        yield new SmgrRecord.Truncate(d.i32(0), d.relTag(4), d.i32(16));
      }
      default -> other(d.record());
    };
  }

  private static PgRecord dbase(MainData d, int info) {
    return switch (info) {
      case 0x00 -> {
        d.requireAtLeast(DbaseRecord.CreateFileCopy.SIZE, "xl_dbase_create_file_copy_rec");
        yield new DbaseRecord.CreateFileCopy(d.i32(0), d.i32(4), d.i32(8), d.i32(12));
      }
      case 0x10 -> {
        d.requireAtLeast(DbaseRecord.CreateWalLog.SIZE, "xl_dbase_create_wal_log_rec");
        yield new DbaseRecord.CreateWalLog(d.i32(0), d.i32(4));
      }
      case 0x20 -> {
        d.requireAtLeast(DbaseRecord.Drop.MIN_SIZE, "xl_dbase_drop_rec");
        int n = d.i32(4);
        d.seek(DbaseRecord.Drop.MIN_SIZE);
        yield new DbaseRecord.Drop(d.i32(0), d.nextInts(n, "ntablespaces"));
      }
      default -> other(d.record());
    };
  }

  private static PgRecord clog(MainData d, int info) {
    return switch (info) {
      case 0x00 -> new ClogRecord.ZeroPage(d.requireAtLeast(4, "int pageno").i32(0));
      case 0x10 -> {
        d.requireAtLeast(ClogRecord.Truncate.SIZE, "xl_clog_truncate");
        yield new ClogRecord.Truncate(d.i32(0), d.i32(4), d.i32(8));
      }
      default -> other(d.record());
    };
  }

  private static PgRecord multixact(MainData d, int info) {
    return switch (info) {
      case 0x00 -> new MultiXactRecord.ZeroOffPage(d.requireAtLeast(4, "int pageno").i32(0));
      case 0x10 -> new MultiXactRecord.ZeroMemPage(d.requireAtLeast(4, "int pageno").i32(0));
      case 0x20 -> {
        d.requireAtLeast(MultiXactRecord.CreateId.MIN_SIZE, "xl_multixact_create");
        int n = d.i32(8);
        d.seek(MultiXactRecord.CreateId.MIN_SIZE);
        d.checkCount(n, MultiXactRecord.CreateId.MEMBER_SIZE, "nmembers");
        List<MultiXactRecord.Member> members = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
          int xid = d.nextI32("member xid");
          int code = d.nextI32("member status");
          MultiXactRecord.Status status = MultiXactRecord.Status.ofCode(code);
          if (status == null) {
            throw d.bad("member " + i + " has invalid MultiXactStatus " + code);
          }
          members.add(new MultiXactRecord.Member(xid, status));
        }
        yield new MultiXactRecord.CreateId(d.i32(0), d.i32(4), members);
      }
      case 0x30 -> {
        d.requireAtLeast(MultiXactRecord.TruncateId.SIZE, "xl_multixact_truncate");
        yield new MultiXactRecord.TruncateId(d.i32(0), d.i32(4), d.i32(8), d.i32(12), d.i32(16));
      }
      default -> other(d.record());
    };
  }

  private static PgRecord relmap(MainData d) {
    d.requireAtLeast(RelmapRecord.Update.MIN_SIZE, "xl_relmap_update");
    int nbytes = d.i32(8);
    d.seek(RelmapRecord.Update.MIN_SIZE);
    d.checkCount(nbytes, 1, "nbytes");
    if (nbytes != RelmapRecord.Update.MAP_FILE_SIZE) {
      throw d.bad(
          "relation map is "
              + nbytes
              + " bytes, expected "
              + RelmapRecord.Update.MAP_FILE_SIZE
              + " (sizeof(RelMapFile))");
    }
    byte[] map = d.nextBytes(nbytes, "relation map");
    // RelMapFile starts with magic and num_mappings.
    int magic = d.i32(RelmapRecord.Update.MIN_SIZE);
    int count = d.i32(RelmapRecord.Update.MIN_SIZE + 4);
    if (magic != RelmapRecord.Update.MAP_FILE_MAGIC) {
      throw d.bad(
          String.format(
              Locale.ROOT,
              "relation map magic is 0x%X, expected 0x%X",
              magic,
              RelmapRecord.Update.MAP_FILE_MAGIC));
    }
    if (count < 0 || count > RelmapRecord.Update.MAX_MAPPINGS) {
      throw d.bad(
          "relation map has "
              + count
              + " mappings, at most "
              + RelmapRecord.Update.MAX_MAPPINGS
              + " fit");
    }
    return new RelmapRecord.Update(d.i32(0), d.i32(4), map);
  }

  private static PgRecord standby(MainData d, int info) {
    if (info != 0x10) {
      return other(d.record());
    }
    d.requireAtLeast(StandbyRecord.RunningXacts.MIN_SIZE, "xl_running_xacts");
    int xcnt = d.i32(0);
    int subxcnt = d.i32(4);
    d.seek(StandbyRecord.RunningXacts.MIN_SIZE);
    List<Integer> xids = d.nextInts(xcnt, "xcnt");
    List<Integer> subxids = d.nextInts(subxcnt, "subxcnt");
    return new StandbyRecord.RunningXacts(
        d.bool(8), d.i32(12), d.i32(16), d.i32(20), xids, subxids);
  }
}
