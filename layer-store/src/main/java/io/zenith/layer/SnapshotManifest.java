package io.zenith.layer;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.zip.CRC32C;

/**
 * The manifest of a snapshot to share (ADR 0028): what a snapshot is, and the size and CRC32C of
 * each of its image layer files. Written last, so a snapshot without one is incomplete. Layout
 * ({@code docs/formats/snapshot-manifest.md}; all integers big-endian):
 *
 * <pre>
 *  0 u32 magic 0x5A534E50 ("ZSNP")   4 u16 format version (1)   6 u16 0
 *  8 u64 LSN (every file holds images at it)   16 u64 previous record LSN (0: unknown)
 * 24 u64 PostgreSQL system id   32 u32 PostgreSQL major version
 * 36 16B source tenant   52 16B source timeline   68 u64 created (ms since the epoch, UTC)
 * 76 u16 n, n bytes UTF-8: source branch name ("" when unnamed)
 *    u32 file count, then per file: u16 n, n bytes UTF-8 name, u64 size, u32 CRC32C of its bytes
 *    u32 CRC32C of everything before
 * </pre>
 *
 * Changelog: version 1 (2026-12): first format. Immutable.
 *
 * @param prevLsn the start of the last record before {@link #lsn}, INVALID when the snapshot was
 *     not taken at the source's last record (as a branch's, ADR 0005)
 */
public record SnapshotManifest(
    Lsn lsn,
    Lsn prevLsn,
    long systemId,
    int pgVersion,
    TenantId sourceTenant,
    TimelineId sourceTimeline,
    String sourceBranch,
    Instant created,
    List<FileEntry> files) {

  static final int MAGIC = 0x5A534E50;
  static final int FORMAT_VERSION = 1;
  private static final int FIXED = 76;

  /** The name of the manifest object in a snapshot's location. */
  public static final String OBJECT_NAME = "manifest";

  /**
   * One file of the snapshot: its object name relative to the snapshot's location ({@code
   * layers/000001.layer}), its size and the CRC32C of all its bytes.
   */
  public record FileEntry(String name, long size, int crc32c) {}

  public SnapshotManifest {
    files = List.copyOf(files);
    Set<String> names = new HashSet<>();
    for (FileEntry f : files) {
      if (!names.add(f.name())) {
        throw new IllegalArgumentException("file " + f.name() + " is listed twice");
      }
    }
  }

  /** The sum of the files' sizes. */
  public long bytes() {
    return files.stream().mapToLong(FileEntry::size).sum();
  }

  /** The manifest's bytes. */
  public byte[] toBytes() {
    try {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      DataOutputStream d = new DataOutputStream(bytes);
      d.writeInt(MAGIC);
      d.writeShort(FORMAT_VERSION);
      d.writeShort(0);
      d.writeLong(lsn.value());
      d.writeLong(prevLsn.value());
      d.writeLong(systemId);
      d.writeInt(pgVersion);
      d.write(sourceTenant.toBytes());
      d.write(sourceTimeline.toBytes());
      d.writeLong(created.toEpochMilli());
      string(d, sourceBranch);
      d.writeInt(files.size());
      for (FileEntry f : files) {
        string(d, f.name());
        d.writeLong(f.size());
        d.writeInt(f.crc32c());
      }
      d.flush();
      CRC32C c = new CRC32C();
      c.update(bytes.toByteArray());
      d.writeInt((int) c.getValue());
      d.flush();
      return bytes.toByteArray();
    } catch (IOException e) {
      throw new UncheckedIOException(e); // a ByteArrayOutputStream does not fail
    }
  }

  private static void string(DataOutputStream d, String s) throws IOException {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    if (b.length > 0xFFFF) {
      throw new IllegalArgumentException("name longer than 65535 bytes: " + s);
    }
    d.writeShort(b.length);
    d.write(b);
  }

  /**
   * Checks and decodes a manifest.
   *
   * @param where names the manifest in the error
   * @throws LayerStoreException CORRUPT_FILE "corrupt snapshot manifest {@code where}: …" (size,
   *     magic, CRC, version, then the fields)
   */
  public static SnapshotManifest fromBytes(byte[] a, String where) {
    ByteBuffer b = Framed.open(a, "snapshot manifest", where, MAGIC, FORMAT_VERSION, FIXED + 10);
    b.limit(a.length - 4).position(8);
    try {
      Lsn lsn = Lsn.of(b.getLong());
      Lsn prev = Lsn.of(b.getLong());
      long systemId = b.getLong();
      int pgVersion = b.getInt();
      TenantId tenant = TenantId.fromBytes(a, 36);
      TimelineId timeline = TimelineId.fromBytes(a, 52);
      b.position(68);
      Instant created = Instant.ofEpochMilli(b.getLong());
      String branch = string(b);
      int n = b.getInt();
      if (n < 0 || n > b.remaining() / 14) {
        throw Framed.corrupt("snapshot manifest", where, "bad file count " + n);
      }
      List<FileEntry> files = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        files.add(new FileEntry(string(b), b.getLong(), b.getInt()));
      }
      if (b.hasRemaining()) {
        throw Framed.corrupt("snapshot manifest", where, b.remaining() + " bytes after the files");
      }
      if (!lsn.isValid()) {
        throw Framed.corrupt("snapshot manifest", where, "no LSN");
      }
      return new SnapshotManifest(
          lsn, prev, systemId, pgVersion, tenant, timeline, branch, created, files);
    } catch (BufferUnderflowException | IllegalArgumentException e) {
      throw Framed.corrupt("snapshot manifest", where, "truncated or malformed fields");
    }
  }

  private static String string(ByteBuffer b) {
    int n = Short.toUnsignedInt(b.getShort());
    byte[] s = new byte[n];
    b.get(s);
    return new String(s, StandardCharsets.UTF_8);
  }
}
