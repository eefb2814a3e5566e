package io.zenith.ingest.pg;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * PostgreSQL 15's {@code global/pg_control} ({@code ControlFileData}, x86-64 layout): a view over
 * the 8 KiB file with the fields Zenith reads or changes. Offsets, little-endian:
 *
 * <pre>
 *   0 u64 system_identifier      8 u32 pg_control_version   12 u32 catalog_version_no
 *  16 i32 state                 24 i64 time                32 u64 checkPoint
 *  40 CheckPoint (88 bytes)    128 u64 unloggedLSN        136 u64 minRecoveryPoint
 * 144 u32 minRecoveryPointTLI  152 u64 backupStartPoint   160 u64 backupEndPoint
 * 168 bool backupEndRequired   172 i32 wal_level          176 bool wal_log_hints
 * 180 i32 MaxConnections       184 i32 max_worker_processes  188 i32 max_wal_senders
 * 192 i32 max_prepared_xacts   196 i32 max_locks_per_xact    200 bool track_commit_timestamp
 * 228 u32 xlog_seg_size        252 u32 data_checksum_version
 * 288 u32 crc: CRC32C of bytes [0, 288)
 * </pre>
 *
 * Not thread-safe (a mutable view).
 */
public final class PgControl {
  /** {@code PG_CONTROL_FILE_SIZE}: the file is padded to this size. */
  public static final int FILE_SIZE = 8192;

  public static final int CHECKPOINT_COPY = 40;
  static final int CRC_OFFSET = 288;

  public static final int DB_SHUTDOWNED = 1;
  public static final int DB_IN_PRODUCTION = 6;

  private final byte[] bytes;
  private final ByteBuffer b;

  private PgControl(byte[] bytes) {
    this.bytes = bytes;
    this.b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
  }

  /**
   * A view over a copy of {@code file}.
   *
   * @throws IllegalArgumentException if it is not a PostgreSQL 15 control file with a valid CRC
   */
  public static PgControl parse(byte[] file) {
    if (file.length != FILE_SIZE) {
      throw new IllegalArgumentException(
          "pg_control is " + file.length + " bytes, expected " + FILE_SIZE);
    }
    PgControl c = new PgControl(file.clone());
    if (!c.crcValid()) {
      throw new IllegalArgumentException("pg_control has an invalid CRC");
    }
    if (c.controlVersion() != 1300) {
      throw new IllegalArgumentException(
          "pg_control version " + c.controlVersion() + " is not PostgreSQL 15's (1300)");
    }
    return c;
  }

  public boolean crcValid() {
    CRC32C c = new CRC32C();
    c.update(bytes, 0, CRC_OFFSET);
    return (int) c.getValue() == b.getInt(CRC_OFFSET);
  }

  /** The file content with its CRC recomputed. */
  public byte[] toBytes() {
    CRC32C c = new CRC32C();
    c.update(bytes, 0, CRC_OFFSET);
    b.putInt(CRC_OFFSET, (int) c.getValue());
    return bytes.clone();
  }

  public long systemId() {
    return b.getLong(0);
  }

  public int controlVersion() {
    return b.getInt(8);
  }

  public int state() {
    return b.getInt(16);
  }

  public void setState(int s) {
    b.putInt(16, s);
  }

  public void setTime(long epochSeconds) {
    b.putLong(24, epochSeconds);
  }

  public long checkPoint() {
    return b.getLong(32);
  }

  public void setCheckPoint(long lsn) {
    b.putLong(32, lsn);
  }

  public CheckPointData checkPointCopy() {
    return CheckPointData.decode(bytes, CHECKPOINT_COPY);
  }

  public void setCheckPointCopy(CheckPointData cp) {
    cp.encodeInto(bytes, CHECKPOINT_COPY);
  }

  /** Clears what a running, recovering or backed-up server would have left behind. */
  public void clearRecoveryAndBackup() {
    b.putLong(136, 0).putInt(144, 0).putLong(152, 0).putLong(160, 0);
    bytes[168] = 0;
  }

  public int walSegmentSize() {
    return b.getInt(228);
  }

  public int dataChecksumVersion() {
    return b.getInt(252);
  }

  /** Copies the settings a hot standby must match ({@code XLOG_PARAMETER_CHANGE}). */
  public void setParameters(
      int maxConnections,
      int maxWorkerProcesses,
      int maxWalSenders,
      int maxPreparedXacts,
      int maxLocksPerXact,
      int walLevel,
      boolean walLogHints,
      boolean trackCommitTimestamp) {
    b.putInt(172, walLevel);
    bytes[176] = (byte) (walLogHints ? 1 : 0);
    b.putInt(180, maxConnections)
        .putInt(184, maxWorkerProcesses)
        .putInt(188, maxWalSenders)
        .putInt(192, maxPreparedXacts)
        .putInt(196, maxLocksPerXact);
    bytes[200] = (byte) (trackCommitTimestamp ? 1 : 0);
  }

  public int maxConnections() {
    return b.getInt(180);
  }

  public int maxPreparedXacts() {
    return b.getInt(192);
  }
}
