package io.zenith.ingest.wal.records;

import static io.zenith.ingest.wal.records.Desc.u;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/**
 * Records of the RelMap resource manager ({@code utils/relmapper.h}). Immutable and thread-safe.
 */
public sealed interface RelmapRecord extends PgRecord {

  @Override
  default String rmgrName() {
    return "RelMap";
  }

  /**
   * One catalog's entry in a relation map ({@code RelMapping}).
   *
   * @param mapOid the catalog's OID
   * @param mapFilenode its relfilenode
   */
  record Mapping(int mapOid, int mapFilenode) {}

  /**
   * {@code XLOG_RELMAP_UPDATE}: {@code xl_relmap_update}, a complete new {@code pg_filenode.map}
   * file ({@code RelMapFile}, 512 bytes) for a database or for the shared catalogs.
   *
   * @param dbId the database, 0 for the shared map
   * @param tsId the database's tablespace, or pg_global
   * @param map the file contents, written verbatim by redo
   */
  record Update(int dbId, int tsId, byte[] map) implements RelmapRecord {
    /** {@code MinSizeOfRelmapUpdate}. */
    static final int MIN_SIZE = 12;

    /** {@code sizeof(RelMapFile)}: redo refuses any other size. */
    public static final int MAP_FILE_SIZE = 512;

    /** {@code RELMAPPER_FILEMAGIC}. */
    public static final int MAP_FILE_MAGIC = 0x592717;

    /** {@code MAX_MAPPINGS}. */
    public static final int MAX_MAPPINGS = 62;

    public Update {
      map = map.clone();
    }

    /**
     * The entries of the map: {@code num_mappings} (at offset 4, at most {@link #MAX_MAPPINGS})
     * pairs starting at offset 8. {@link PgRecords#parse} only returns maps whose magic and count
     * are valid.
     */
    public List<Mapping> mappings() {
      ByteBuffer b = ByteBuffer.wrap(map).order(ByteOrder.LITTLE_ENDIAN);
      int n = map.length >= 8 ? b.getInt(4) : 0;
      n = Math.max(0, Math.min(n, Math.min(MAX_MAPPINGS, (map.length - 8) / 8)));
      List<Mapping> out = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        out.add(new Mapping(b.getInt(8 + 8 * i), b.getInt(12 + 8 * i)));
      }
      return List.copyOf(out);
    }

    /** A copy of the map file contents. */
    @Override
    public byte[] map() {
      return map.clone();
    }

    /** {@code nbytes}. */
    public int nbytes() {
      return map.length;
    }

    @Override
    public String typeName() {
      return "UPDATE";
    }

    @Override
    public String describe() {
      return "database " + u(dbId) + " tablespace " + u(tsId) + " size " + map.length;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Update other
          && dbId == other.dbId
          && tsId == other.tsId
          && Arrays.equals(map, other.map);
    }

    @Override
    public int hashCode() {
      return 31 * (31 * dbId + tsId) + Arrays.hashCode(map);
    }

    @Override
    public String toString() {
      return "Update[dbId="
          + u(dbId)
          + ", tsId="
          + u(tsId)
          + ", map="
          + HexFormat.of().formatHex(map)
          + "]";
    }
  }
}
