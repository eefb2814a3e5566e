package io.zenith.ingest.keys;

import io.zenith.layer.Key;
import io.zenith.layer.KeyRange;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;

/**
 * How PostgreSQL's files map to layer-store keys. Field 1 names the key space; things that change
 * together are adjacent in key order. A permanent format, like the values (see {@code
 * docs/formats/keys.md}).
 *
 * <pre>
 * 00 spc db rel fork blk        relation block (8 KiB page)
 * 00 spc db rel fork FFFFFFFF   relation fork size: u32 blocks, big-endian; absent = no such fork
 * 01 kind segno 0 0 blk         SLRU page (kind 0 pg_xact, 1 multixact offsets, 2 members)
 * 01 kind segno 0 0 FFFFFFFF    SLRU segment size: u32 pages; absent = no such segment
 * 02 spc db 0 0 0               database directory exists (value: the PG_VERSION file)
 * 03 spc db 0 0 0               relation map file pg_filenode.map (512 bytes; global: 1664/0)
 * 04 xid 0 0 0 0                two-phase state file (pg_twophase/XXXXXXXX)
 * 05 0 0 0 0 0                  pg_control (8 KiB, as PostgreSQL writes it)
 * 05 0 0 0 0 1                  the current CheckPoint struct (88 bytes)
 * 06 0 0 0 0 0                  commit time: one version per commit record (i64 TimestampTz)
 * </pre>
 */
public final class KeySpace {
  private KeySpace() {}

  public static final int REL = 0x00;
  public static final int SLRU = 0x01;
  public static final int DB_DIR = 0x02;
  public static final int RELMAP = 0x03;
  public static final int TWO_PHASE = 0x04;
  public static final int CONTROL = 0x05;
  public static final int COMMIT_TIME = 0x06;

  /** Field 6 of the size key of a relation fork or SLRU segment. */
  public static final int SIZE_BLOCK = 0xFFFFFFFF;

  public static final Key CONTROL_FILE = new Key(CONTROL, 0, 0, 0, 0, 0);
  public static final Key CHECKPOINT = new Key(CONTROL, 0, 0, 0, 0, 1);

  /**
   * The commit time of the last commit: a version at the end LSN of every commit record, its value
   * the record's commit time ({@link CommitTimestamps}). Its versions map times to LSNs.
   */
  public static final Key COMMIT_TIMESTAMP = new Key(COMMIT_TIME, 0, 0, 0, 0, 0);

  /** PostgreSQL's SLRUs that the pageserver keeps. */
  public enum Slru {
    CLOG(0, "pg_xact"),
    MULTIXACT_OFFSETS(1, "pg_multixact/offsets"),
    MULTIXACT_MEMBERS(2, "pg_multixact/members");

    private final int code;
    private final String dir;

    Slru(int code, String dir) {
      this.code = code;
      this.dir = dir;
    }

    public int code() {
      return code;
    }

    /** The directory of the data directory holding its segments. */
    public String dir() {
      return dir;
    }

    public static Slru of(int code) {
      for (Slru s : values()) {
        if (s.code == code) {
          return s;
        }
      }
      throw new IllegalArgumentException("unknown SLRU kind " + code);
    }
  }

  public static Key relBlock(RelTag rel, ForkNumber fork, int blk) {
    return new Key(REL, rel.spcOid(), rel.dbOid(), rel.relNumber(), fork.ordinal(), blk);
  }

  public static Key relSize(RelTag rel, ForkNumber fork) {
    return relBlock(rel, fork, SIZE_BLOCK);
  }

  public static boolean isRelSize(Key k) {
    return k.field1() == REL && k.field6() == SIZE_BLOCK;
  }

  public static boolean isRelKey(Key k) {
    return k.field1() == REL;
  }

  public static RelTag relOf(Key k) {
    return new RelTag(k.field2(), k.field3(), k.field4());
  }

  public static ForkNumber forkOf(Key k) {
    return ForkNumber.ofNumber(k.field5());
  }

  /** Every relation key of a database (blocks and sizes). */
  public static KeyRange relationsOf(int spc, int db) {
    Key start = new Key(REL, spc, db, 0, 0, 0);
    Key last = new Key(REL, spc, db, -1, 0xFF, -1);
    return new KeyRange(start, last.next());
  }

  /** Every relation key. */
  public static final KeyRange ALL_RELATIONS = new KeyRange(Key.MIN, new Key(SLRU, 0, 0, 0, 0, 0));

  public static Key slruBlock(Slru slru, int segno, int blk) {
    return new Key(SLRU, slru.code, segno, 0, 0, blk);
  }

  public static Key slruSegmentSize(Slru slru, int segno) {
    return slruBlock(slru, segno, SIZE_BLOCK);
  }

  public static KeyRange slruKeys(Slru slru) {
    Key start = new Key(SLRU, slru.code, 0, 0, 0, 0);
    Key last = new Key(SLRU, slru.code, -1, 0, 0, -1);
    return new KeyRange(start, last.next());
  }

  public static Key dbDir(int spc, int db) {
    return new Key(DB_DIR, spc, db, 0, 0, 0);
  }

  public static final KeyRange ALL_DB_DIRS =
      new KeyRange(new Key(DB_DIR, 0, 0, 0, 0, 0), new Key(RELMAP, 0, 0, 0, 0, 0));

  public static Key relmap(int spc, int db) {
    return new Key(RELMAP, spc, db, 0, 0, 0);
  }

  public static Key twoPhase(int xid) {
    return new Key(TWO_PHASE, xid, 0, 0, 0, 0);
  }

  public static final KeyRange ALL_TWO_PHASE =
      new KeyRange(new Key(TWO_PHASE, 0, 0, 0, 0, 0), new Key(CONTROL, 0, 0, 0, 0, 0));

  /** A u32 size value (relation fork blocks, SLRU segment pages). */
  public static byte[] encodeSize(int n) {
    return new byte[] {(byte) (n >>> 24), (byte) (n >>> 16), (byte) (n >>> 8), (byte) n};
  }

  public static int decodeSize(byte[] b) {
    if (b.length != 4) {
      throw new IllegalArgumentException("a size value is 4 bytes, got " + b.length);
    }
    return (b[0] & 0xFF) << 24 | (b[1] & 0xFF) << 16 | (b[2] & 0xFF) << 8 | (b[3] & 0xFF);
  }
}
