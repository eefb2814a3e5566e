package io.zenith.ingest.wal.records;

import static io.zenith.ingest.wal.records.Desc.u;

import java.util.List;

/**
 * Records of the Database resource manager ({@code commands/dbcommands_xlog.h}). Immutable and
 * thread-safe.
 */
public sealed interface DbaseRecord extends PgRecord {

  @Override
  default String rmgrName() {
    return "Database";
  }

  /**
   * {@code XLOG_DBASE_CREATE_FILE_COPY}: {@code xl_dbase_create_file_copy_rec}, a database
   * directory copied file by file from a template (its contents are not in the WAL).
   *
   * @param dbId the new database
   * @param tablespaceId its tablespace
   * @param srcDbId the template database
   * @param srcTablespaceId the template's tablespace
   */
  record CreateFileCopy(int dbId, int tablespaceId, int srcDbId, int srcTablespaceId)
      implements DbaseRecord {
    /** {@code sizeof(xl_dbase_create_file_copy_rec)}. */
    static final int SIZE = 16;

    @Override
    public String typeName() {
      return "CREATE_FILE_COPY";
    }

    @Override
    public String describe() {
      return "copy dir "
          + u(srcTablespaceId)
          + "/"
          + u(srcDbId)
          + " to "
          + u(tablespaceId)
          + "/"
          + u(dbId);
    }
  }

  /**
   * {@code XLOG_DBASE_CREATE_WAL_LOG}: {@code xl_dbase_create_wal_log_rec}, an empty database
   * directory whose contents follow as WAL records.
   *
   * @param dbId the new database
   * @param tablespaceId its tablespace
   */
  record CreateWalLog(int dbId, int tablespaceId) implements DbaseRecord {
    /** {@code sizeof(xl_dbase_create_wal_log_rec)}. */
    static final int SIZE = 8;

    @Override
    public String typeName() {
      return "CREATE_WAL_LOG";
    }

    @Override
    public String describe() {
      return "create dir " + u(tablespaceId) + "/" + u(dbId);
    }
  }

  /**
   * {@code XLOG_DBASE_DROP}: {@code xl_dbase_drop_rec}.
   *
   * @param dbId the dropped database
   * @param tablespaceIds the tablespaces whose directories for it are removed
   */
  record Drop(int dbId, List<Integer> tablespaceIds) implements DbaseRecord {
    /** {@code MinSizeOfDbaseDropRec}. */
    static final int MIN_SIZE = 8;

    public Drop {
      tablespaceIds = List.copyOf(tablespaceIds);
    }

    @Override
    public String typeName() {
      return "DROP";
    }

    @Override
    public String describe() {
      StringBuilder sb = new StringBuilder("dir");
      for (int ts : tablespaceIds) {
        sb.append(' ').append(u(ts)).append('/').append(u(dbId));
      }
      return sb.toString();
    }
  }
}
