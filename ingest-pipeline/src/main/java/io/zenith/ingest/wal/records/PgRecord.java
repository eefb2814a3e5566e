package io.zenith.ingest.wal.records;

import java.util.List;

/**
 * The typed content of a PostgreSQL 15 WAL record that the pageserver must understand, as produced
 * by {@link PgRecords#parse}. One sub-interface per resource manager, one record per record type;
 * every other record is an {@link Other}.
 *
 * <p>Field names follow the C structs; unsigned 32-bit values (xids, OIDs, block numbers) are held
 * in {@code int}s and printed with {@link Integer#toUnsignedString(int)}. Lists are unmodifiable.
 * All implementations are immutable and thread-safe.
 */
public sealed interface PgRecord
    permits XlogRecord,
        XactRecord,
        SmgrRecord,
        DbaseRecord,
        HeapRecord,
        ClogRecord,
        MultiXactRecord,
        RelmapRecord,
        StandbyRecord,
        PgRecord.Other {

  /** The resource manager name as pg_waldump prints it ({@code XLOG}, {@code Heap2}, ...). */
  String rmgrName();

  /** The record type name as pg_waldump prints it ({@code COMMIT}, {@code INSERT+INIT}, ...). */
  String typeName();

  /**
   * One line describing the content, modeled on what pg_waldump prints after the type name (same
   * field names and order; timestamps in UTC). Block references are not part of it. Empty when
   * there is nothing to say.
   */
  String describe();

  /**
   * The visibility-map bits that replaying this record sets or clears, in the order redo applies
   * them. Empty for every record that leaves the visibility map alone.
   */
  default List<VisibilityMapChange> visibilityMapChanges() {
    return List.of();
  }

  /**
   * A record this package does not decode (btree, hash, gin, gist, spgist, brin, sequence, generic,
   * logical message, commit_ts, replication origin, tablespace, custom resource managers, and the
   * XLOG, Transaction, Heap, Heap2 and Standby types not decoded here).
   *
   * @param rmgr the resource manager name as pg_waldump prints it ({@code custom128} for custom
   *     ones)
   * @param type the record type name, {@code UNKNOWN} when PostgreSQL has none
   */
  record Other(String rmgr, String type) implements PgRecord {
    @Override
    public String rmgrName() {
      return rmgr;
    }

    @Override
    public String typeName() {
      return type;
    }

    @Override
    public String describe() {
      return "";
    }
  }
}
