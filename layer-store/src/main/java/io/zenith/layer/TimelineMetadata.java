package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.zip.CRC32C;

/**
 * What a timeline's layer files cannot tell: its ancestry, where its history starts, the PostgreSQL
 * system it belongs to, and its GC cutoff. The source of truth, kept in the file {@code metadata}
 * of the timeline's directory (written durably; 96 bytes, big-endian):
 *
 * <pre>
 *  0 u32 magic 0x5A544C4D ("ZTLM")   4 u16 format version (1)   6 u16 0
 *  8 16B tenant   24 16B timeline   40 16B ancestor timeline (all zero: none)
 * 56 u64 ancestor LSN   64 u64 initdb LSN   72 u64 PostgreSQL system id
 * 80 u32 PostgreSQL major version   84 u64 GC cutoff LSN   92 u32 CRC32C of [0, 92)
 * </pre>
 *
 * Changelog: version 1 (2026-11): first format.
 *
 * @param ancestor the timeline this one branched from, or null for a root timeline
 * @param ancestorLsn the branch point: versions at or below it are read from the ancestor
 * @param initdbLsn where the history of the root timeline starts (its import LSN)
 */
public record TimelineMetadata(
    TenantId tenant,
    TimelineId timeline,
    TimelineId ancestor,
    Lsn ancestorLsn,
    Lsn initdbLsn,
    long systemId,
    int pgVersion,
    Lsn gcCutoff) {

  public static final String FILE_NAME = "metadata";
  static final int MAGIC = 0x5A544C4D;
  static final int FORMAT_VERSION = 1;
  static final int SIZE = 96;

  /** This metadata with another GC cutoff. */
  TimelineMetadata withGcCutoff(Lsn cutoff) {
    return new TimelineMetadata(
        tenant, timeline, ancestor, ancestorLsn, initdbLsn, systemId, pgVersion, cutoff);
  }

  public Optional<TimelineId> ancestorId() {
    return Optional.ofNullable(ancestor);
  }

  /** Durable on return. */
  void write(Path timelineDir) throws IOException {
    DurableFiles.write(timelineDir.resolve(FILE_NAME), toBytes());
  }

  /** The file's 96 bytes (also embedded in the remote index, {@link RemoteIndex}). */
  byte[] toBytes() {
    ByteBuffer b = ByteBuffer.allocate(SIZE);
    b.putInt(MAGIC).putShort((short) FORMAT_VERSION).putShort((short) 0);
    b.put(tenant.toBytes()).put(timeline.toBytes());
    b.put(ancestor == null ? new byte[16] : ancestor.toBytes());
    b.putLong(ancestorLsn.value()).putLong(initdbLsn.value()).putLong(systemId).putInt(pgVersion);
    b.putLong(gcCutoff.value());
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, 92);
    b.putInt((int) c.getValue());
    return b.array();
  }

  /**
   * Reads and checks a timeline's metadata file.
   *
   * @throws LayerStoreException CORRUPT_FILE naming the file, or IO
   */
  static TimelineMetadata read(Path timelineDir) {
    Path f = timelineDir.resolve(FILE_NAME);
    byte[] a;
    try {
      a = Files.readAllBytes(f);
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO, "cannot read " + f + ": " + e.getMessage(), e);
    }
    return fromBytes(a, f.toString());
  }

  /**
   * Checks and decodes the 96 bytes of {@link #toBytes}.
   *
   * @param where names the source in the error
   * @throws LayerStoreException CORRUPT_FILE naming {@code where}
   */
  static TimelineMetadata fromBytes(byte[] a, String where) {
    if (a.length != SIZE) {
      throw corrupt(where, "size " + a.length + ", expected " + SIZE);
    }
    ByteBuffer b = Framed.open(a, "timeline metadata", where, MAGIC, FORMAT_VERSION, SIZE);
    TimelineId anc = TimelineId.fromBytes(a, 40);
    return new TimelineMetadata(
        TenantId.fromBytes(a, 8),
        TimelineId.fromBytes(a, 24),
        anc.hi() == 0 && anc.lo() == 0 ? null : anc,
        Lsn.of(b.getLong(56)),
        Lsn.of(b.getLong(64)),
        b.getLong(72),
        b.getInt(80),
        Lsn.of(b.getLong(84)));
  }

  private static LayerStoreException corrupt(String f, String what) {
    return Framed.corrupt("timeline metadata", f, what);
  }
}
