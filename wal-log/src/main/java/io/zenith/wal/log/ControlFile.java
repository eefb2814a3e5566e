package io.zenith.wal.log;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.zip.CRC32C;

/**
 * The durable state of a safekeeper's timeline besides its WAL: who it belongs to, the term it has
 * promised, the history of terms, and the positions it knows. The file {@code safekeeper.control}
 * beside the WAL segments, written temp → fsync → rename → fsync(dir); big-endian:
 *
 * <pre>
 *   0 u32 magic 0x5A534B43 ("ZSKC")   4 u16 format version (1)   6 u16 0
 *   8 16B tenant   24 16B timeline   40 u64 PostgreSQL system id   48 u32 PostgreSQL major
 *  52 u32 WAL segment size   56 u64 promised term (the highest term voted for)
 *  64 u64 commit LSN   72 u64 peer horizon LSN   80 u64 backup LSN
 *  88 u64 recovery start (a durable record boundary to scan the WAL from on restart)
 *  96 u64 pageserver write LSN  104 u64 pageserver flush LSN  112 u64 pageserver apply LSN
 * 120 u32 n   124 n × (u64 term, u64 start LSN): the term history, oldest first
 * end u32 CRC32C of everything before it
 * </pre>
 *
 * Changelog: version 1 (2026-11): first format. Immutable value; {@link #write} makes it durable.
 *
 * @param promisedTerm the highest term this safekeeper voted for; it accepts no WAL of lower terms
 * @param history (term, start LSN) of every term whose WAL this safekeeper holds, oldest first
 * @param recoveryStart a record boundary at or below the end of the durable WAL
 */
public record ControlFile(
    TenantId tenant,
    TimelineId timeline,
    long systemId,
    int pgVersion,
    int segmentSize,
    long promisedTerm,
    Lsn commitLsn,
    Lsn peerHorizonLsn,
    Lsn backupLsn,
    Lsn recoveryStart,
    Lsn pageserverWriteLsn,
    Lsn pageserverFlushLsn,
    Lsn pageserverApplyLsn,
    List<TermEntry> history) {

  public static final String FILE_NAME = "safekeeper.control";
  static final int MAGIC = 0x5A534B43;
  static final int FORMAT_VERSION = 1;
  private static final int FIXED = 124;

  /** A term and the LSN its WAL starts at. */
  public record TermEntry(long term, Lsn start) {}

  public ControlFile {
    history = List.copyOf(history);
    for (int i = 1; i < history.size(); i++) {
      if (history.get(i).term() <= history.get(i - 1).term()
          || history.get(i).start().isBefore(history.get(i - 1).start())) {
        throw new IllegalArgumentException("term history must grow in term and LSN: " + history);
      }
    }
  }

  /** The term of the last history entry (0 if none): the term of the WAL this safekeeper holds. */
  public long lastLogTerm() {
    return history.isEmpty() ? 0 : history.getLast().term();
  }

  public ControlFile withPromisedTerm(long t) {
    return new ControlFile(
        tenant,
        timeline,
        systemId,
        pgVersion,
        segmentSize,
        t,
        commitLsn,
        peerHorizonLsn,
        backupLsn,
        recoveryStart,
        pageserverWriteLsn,
        pageserverFlushLsn,
        pageserverApplyLsn,
        history);
  }

  public ControlFile withHistory(List<TermEntry> h) {
    return new ControlFile(
        tenant,
        timeline,
        systemId,
        pgVersion,
        segmentSize,
        promisedTerm,
        commitLsn,
        peerHorizonLsn,
        backupLsn,
        recoveryStart,
        pageserverWriteLsn,
        pageserverFlushLsn,
        pageserverApplyLsn,
        h);
  }

  public ControlFile withPositions(Lsn commit, Lsn peerHorizon, Lsn recovery) {
    return new ControlFile(
        tenant,
        timeline,
        systemId,
        pgVersion,
        segmentSize,
        promisedTerm,
        commit,
        peerHorizon,
        backupLsn,
        recovery,
        pageserverWriteLsn,
        pageserverFlushLsn,
        pageserverApplyLsn,
        history);
  }

  public ControlFile withPageserver(Lsn write, Lsn flush, Lsn apply) {
    return new ControlFile(
        tenant,
        timeline,
        systemId,
        pgVersion,
        segmentSize,
        promisedTerm,
        commitLsn,
        peerHorizonLsn,
        backupLsn,
        recoveryStart,
        write,
        flush,
        apply,
        history);
  }

  public byte[] encode() {
    ByteBuffer b = ByteBuffer.allocate(FIXED + 16 * history.size() + 4);
    b.putInt(MAGIC).putShort((short) FORMAT_VERSION).putShort((short) 0);
    b.put(tenant.toBytes()).put(timeline.toBytes());
    b.putLong(systemId).putInt(pgVersion).putInt(segmentSize).putLong(promisedTerm);
    b.putLong(commitLsn.value())
        .putLong(peerHorizonLsn.value())
        .putLong(backupLsn.value())
        .putLong(recoveryStart.value());
    b.putLong(pageserverWriteLsn.value())
        .putLong(pageserverFlushLsn.value())
        .putLong(pageserverApplyLsn.value());
    b.putInt(history.size());
    for (TermEntry e : history) {
      b.putLong(e.term()).putLong(e.start().value());
    }
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, b.position());
    b.putInt((int) c.getValue());
    return b.array();
  }

  /**
   * Decodes a control file.
   *
   * @throws IllegalArgumentException naming what is wrong (magic, version, CRC, length)
   */
  public static ControlFile decode(byte[] a) {
    if (a.length < FIXED + 4) {
      throw new IllegalArgumentException("control file of " + a.length + " bytes is too short");
    }
    ByteBuffer b = ByteBuffer.wrap(a);
    if (b.getInt(0) != MAGIC) {
      throw new IllegalArgumentException(String.format("bad magic %08X", b.getInt(0)));
    }
    int version = Short.toUnsignedInt(b.getShort(4));
    if (version != FORMAT_VERSION) {
      throw new IllegalArgumentException(
          "unknown format version " + version + " (this build reads " + FORMAT_VERSION + ")");
    }
    int n = b.getInt(120);
    if (n < 0 || FIXED + 16L * n + 4 != a.length) {
      throw new IllegalArgumentException(
          "length " + a.length + " does not match " + n + " history entries");
    }
    CRC32C c = new CRC32C();
    c.update(a, 0, a.length - 4);
    if ((int) c.getValue() != b.getInt(a.length - 4)) {
      throw new IllegalArgumentException("CRC mismatch");
    }
    List<TermEntry> h = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      h.add(new TermEntry(b.getLong(FIXED + 16 * i), Lsn.of(b.getLong(FIXED + 16 * i + 8))));
    }
    return new ControlFile(
        TenantId.fromBytes(a, 8),
        TimelineId.fromBytes(a, 24),
        b.getLong(40),
        b.getInt(48),
        b.getInt(52),
        b.getLong(56),
        Lsn.of(b.getLong(64)),
        Lsn.of(b.getLong(72)),
        Lsn.of(b.getLong(80)),
        Lsn.of(b.getLong(88)),
        Lsn.of(b.getLong(96)),
        Lsn.of(b.getLong(104)),
        Lsn.of(b.getLong(112)),
        h);
  }

  /** Durable on return. */
  public void write(Path dir) throws IOException {
    DurableFiles.write(dir.resolve(FILE_NAME), encode());
  }

  /**
   * The control file of {@code dir}, or empty if there is none.
   *
   * @throws IOException when it cannot be read or is corrupt (the message names the file)
   */
  public static Optional<ControlFile> read(Path dir) throws IOException {
    Path f = dir.resolve(FILE_NAME);
    byte[] a;
    try {
      a = Files.readAllBytes(f);
    } catch (NoSuchFileException e) {
      return Optional.empty();
    }
    try {
      return Optional.of(decode(a));
    } catch (IllegalArgumentException e) {
      throw new IOException("corrupt safekeeper control file " + f + ": " + e.getMessage(), e);
    }
  }
}
