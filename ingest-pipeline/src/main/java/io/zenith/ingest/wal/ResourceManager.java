package io.zenith.ingest.wal;

import java.util.Map;
import java.util.function.IntUnaryOperator;

/**
 * PostgreSQL 15's builtin resource managers ({@code access/rmgrlist.h}): their ids, the names
 * {@code pg_waldump} prints, and the record type names its {@code rm_identify} functions return.
 *
 * <p>Each rmgr masks {@code xl_info} its own way before naming it, exactly as PostgreSQL does: most
 * drop the low four {@code XLR_*} bits, Transaction keeps only {@code XLOG_XACT_OPMASK}, and
 * CommitTs / ReplicationOrigin compare the raw byte.
 */
public enum ResourceManager {
  XLOG(
      0,
      "XLOG",
      ResourceManager::highBits,
      Map.ofEntries(
          Map.entry(0x00, "CHECKPOINT_SHUTDOWN"),
          Map.entry(0x10, "CHECKPOINT_ONLINE"),
          Map.entry(0x20, "NOOP"),
          Map.entry(0x30, "NEXTOID"),
          Map.entry(0x40, "SWITCH"),
          Map.entry(0x50, "BACKUP_END"),
          Map.entry(0x60, "PARAMETER_CHANGE"),
          Map.entry(0x70, "RESTORE_POINT"),
          Map.entry(0x80, "FPW_CHANGE"),
          Map.entry(0x90, "END_OF_RECOVERY"),
          Map.entry(0xA0, "FPI_FOR_HINT"),
          Map.entry(0xB0, "FPI"),
          Map.entry(0xD0, "OVERWRITE_CONTRECORD"))),
  TRANSACTION(
      1,
      "Transaction",
      info -> info & 0x70,
      Map.of(
          0x00, "COMMIT",
          0x10, "PREPARE",
          0x20, "ABORT",
          0x30, "COMMIT_PREPARED",
          0x40, "ABORT_PREPARED",
          0x50, "ASSIGNMENT",
          0x60, "INVALIDATION")),
  STORAGE(2, "Storage", ResourceManager::highBits, Map.of(0x10, "CREATE", 0x20, "TRUNCATE")),
  CLOG(3, "CLOG", ResourceManager::highBits, Map.of(0x00, "ZEROPAGE", 0x10, "TRUNCATE")),
  DATABASE(
      4,
      "Database",
      ResourceManager::highBits,
      Map.of(0x00, "CREATE_FILE_COPY", 0x10, "CREATE_WAL_LOG", 0x20, "DROP")),
  TABLESPACE(5, "Tablespace", ResourceManager::highBits, Map.of(0x00, "CREATE", 0x10, "DROP")),
  MULTIXACT(
      6,
      "MultiXact",
      ResourceManager::highBits,
      Map.of(0x00, "ZERO_OFF_PAGE", 0x10, "ZERO_MEM_PAGE", 0x20, "CREATE_ID", 0x30, "TRUNCATE_ID")),
  RELMAP(7, "RelMap", ResourceManager::highBits, Map.of(0x00, "UPDATE")),
  STANDBY(
      8,
      "Standby",
      ResourceManager::highBits,
      Map.of(0x00, "LOCK", 0x10, "RUNNING_XACTS", 0x20, "INVALIDATIONS")),
  HEAP2(
      9,
      "Heap2",
      ResourceManager::highBits,
      Map.of(
          0x00, "REWRITE",
          0x10, "PRUNE",
          0x20, "VACUUM",
          0x30, "FREEZE_PAGE",
          0x40, "VISIBLE",
          0x50, "MULTI_INSERT",
          0xD0, "MULTI_INSERT+INIT",
          0x60, "LOCK_UPDATED",
          0x70, "NEW_CID")),
  HEAP(
      10,
      "Heap",
      ResourceManager::highBits,
      Map.ofEntries(
          Map.entry(0x00, "INSERT"),
          Map.entry(0x80, "INSERT+INIT"),
          Map.entry(0x10, "DELETE"),
          Map.entry(0x20, "UPDATE"),
          Map.entry(0xA0, "UPDATE+INIT"),
          Map.entry(0x40, "HOT_UPDATE"),
          Map.entry(0xC0, "HOT_UPDATE+INIT"),
          Map.entry(0x30, "TRUNCATE"),
          Map.entry(0x50, "HEAP_CONFIRM"),
          Map.entry(0x60, "LOCK"),
          Map.entry(0x70, "INPLACE"))),
  BTREE(
      11,
      "Btree",
      ResourceManager::highBits,
      Map.ofEntries(
          Map.entry(0x00, "INSERT_LEAF"),
          Map.entry(0x10, "INSERT_UPPER"),
          Map.entry(0x20, "INSERT_META"),
          Map.entry(0x30, "SPLIT_L"),
          Map.entry(0x40, "SPLIT_R"),
          Map.entry(0x50, "INSERT_POST"),
          Map.entry(0x60, "DEDUP"),
          Map.entry(0x70, "DELETE"),
          Map.entry(0x80, "UNLINK_PAGE"),
          Map.entry(0x90, "UNLINK_PAGE_META"),
          Map.entry(0xA0, "NEWROOT"),
          Map.entry(0xB0, "MARK_PAGE_HALFDEAD"),
          Map.entry(0xC0, "VACUUM"),
          Map.entry(0xD0, "REUSE_PAGE"),
          Map.entry(0xE0, "META_CLEANUP"))),
  HASH(
      12,
      "Hash",
      ResourceManager::highBits,
      Map.ofEntries(
          Map.entry(0x00, "INIT_META_PAGE"),
          Map.entry(0x10, "INIT_BITMAP_PAGE"),
          Map.entry(0x20, "INSERT"),
          Map.entry(0x30, "ADD_OVFL_PAGE"),
          Map.entry(0x40, "SPLIT_ALLOCATE_PAGE"),
          Map.entry(0x50, "SPLIT_PAGE"),
          Map.entry(0x60, "SPLIT_COMPLETE"),
          Map.entry(0x70, "MOVE_PAGE_CONTENTS"),
          Map.entry(0x80, "SQUEEZE_PAGE"),
          Map.entry(0x90, "DELETE"),
          Map.entry(0xA0, "SPLIT_CLEANUP"),
          Map.entry(0xB0, "UPDATE_META_PAGE"),
          Map.entry(0xC0, "VACUUM_ONE_PAGE"))),
  GIN(
      13,
      "Gin",
      ResourceManager::highBits,
      Map.of(
          0x10, "CREATE_PTREE",
          0x20, "INSERT",
          0x30, "SPLIT",
          0x40, "VACUUM_PAGE",
          0x90, "VACUUM_DATA_LEAF_PAGE",
          0x50, "DELETE_PAGE",
          0x60, "UPDATE_META_PAGE",
          0x70, "INSERT_LISTPAGE",
          0x80, "DELETE_LISTPAGE")),
  GIST(
      14,
      "Gist",
      ResourceManager::highBits,
      Map.of(
          0x00, "PAGE_UPDATE",
          0x10, "DELETE",
          0x20, "PAGE_REUSE",
          0x30, "PAGE_SPLIT",
          0x60, "PAGE_DELETE",
          0x70, "ASSIGN_LSN")),
  SEQUENCE(15, "Sequence", ResourceManager::highBits, Map.of(0x00, "LOG")),
  SPGIST(
      16,
      "SPGist",
      ResourceManager::highBits,
      Map.of(
          0x10, "ADD_LEAF",
          0x20, "MOVE_LEAFS",
          0x30, "ADD_NODE",
          0x40, "SPLIT_TUPLE",
          0x50, "PICKSPLIT",
          0x60, "VACUUM_LEAF",
          0x70, "VACUUM_ROOT",
          0x80, "VACUUM_REDIRECT")),
  BRIN(
      17,
      "BRIN",
      ResourceManager::highBits,
      Map.of(
          0x00, "CREATE_INDEX",
          0x10, "INSERT",
          0x90, "INSERT+INIT",
          0x20, "UPDATE",
          0xA0, "UPDATE+INIT",
          0x30, "SAMEPAGE_UPDATE",
          0x40, "REVMAP_EXTEND",
          0x50, "DESUMMARIZE")),
  COMMIT_TS(18, "CommitTs", info -> info, Map.of(0x00, "ZEROPAGE", 0x10, "TRUNCATE")),
  REPLICATION_ORIGIN(19, "ReplicationOrigin", info -> info, Map.of(0x00, "SET", 0x10, "DROP")),
  GENERIC(20, "Generic", info -> 0, Map.of(0, "Generic")),
  LOGICAL_MESSAGE(21, "LogicalMessage", ResourceManager::highBits, Map.of(0x00, "MESSAGE"));

  private static final ResourceManager[] BY_ID = new ResourceManager[22];

  static {
    for (ResourceManager r : values()) {
      BY_ID[r.id] = r;
    }
  }

  private final int id;
  private final String pgName;
  private final IntUnaryOperator mask;
  private final Map<Integer, String> types;

  ResourceManager(int id, String pgName, IntUnaryOperator mask, Map<Integer, String> types) {
    this.id = id;
    this.pgName = pgName;
    this.mask = mask;
    this.types = types;
  }

  private static int highBits(int info) {
    return info & 0xF0;
  }

  public int id() {
    return id;
  }

  /** The name pg_waldump prints in its {@code rmgr:} column. */
  public String pgName() {
    return pgName;
  }

  /** The record type name PostgreSQL's {@code rm_identify} returns, or null if it has none. */
  public String identify(int info) {
    return types.get(mask.applyAsInt(info & 0xFF));
  }

  /** The builtin resource manager with this id, or null (custom or invalid ids). */
  public static ResourceManager ofId(int rmid) {
    return rmid >= 0 && rmid < BY_ID.length ? BY_ID[rmid] : null;
  }

  /** The rmgr name pg_waldump prints for any id, custom ones included ({@code custom128}). */
  public static String nameOf(int rmid) {
    ResourceManager r = ofId(rmid);
    return r != null ? r.pgName : String.format(java.util.Locale.ROOT, "custom%03d", rmid);
  }

  /**
   * The first word of pg_waldump's {@code desc:} column: the type name, or {@code UNKNOWN} when
   * PostgreSQL has no name for this info byte.
   */
  public static String typeNameOf(int rmid, int info) {
    ResourceManager r = ofId(rmid);
    String t = r == null ? null : r.identify(info);
    return t != null ? t : "UNKNOWN";
  }
}
