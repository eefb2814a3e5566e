package io.zenith.wal;

/**
 * A relation's physical identity ({@code RelFileNode} in PostgreSQL 15): tablespace OID, database
 * OID (0 for shared relations) and relfilenode number. Printed as PostgreSQL prints it: {@code
 * spc/db/rel}. OIDs are unsigned 32-bit values held in ints.
 */
public record RelTag(int spcOid, int dbOid, int relNumber) implements Comparable<RelTag> {

  /** {@code GLOBALTABLESPACE_OID}: the tablespace of shared catalogs. */
  public static final int GLOBAL_TABLESPACE = 1664;

  /** {@code DEFAULTTABLESPACE_OID}. */
  public static final int DEFAULT_TABLESPACE = 1663;

  @Override
  public String toString() {
    return Integer.toUnsignedString(spcOid)
        + "/"
        + Integer.toUnsignedString(dbOid)
        + "/"
        + Integer.toUnsignedString(relNumber);
  }

  @Override
  public int compareTo(RelTag o) {
    int c = Integer.compareUnsigned(spcOid, o.spcOid);
    if (c == 0) {
      c = Integer.compareUnsigned(dbOid, o.dbOid);
    }
    return c != 0 ? c : Integer.compareUnsigned(relNumber, o.relNumber);
  }
}
