package io.zenith.wal.log;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.zip.CRC32C;
import org.jspecify.annotations.Nullable;

/**
 * The durable state of a safekeeper's timeline besides its WAL: who it belongs to, the term it has
 * promised, the history of terms, the positions it knows, its backpressure limits and the compute
 * it pulls WAL from. The file {@code safekeeper.control} beside the WAL segments, written temp →
 * fsync → rename → fsync(dir); big-endian:
 *
 * <pre>
 *   0 u32 magic 0x5A534B43 ("ZSKC")   4 u16 format version (2)   6 u16 0
 *   8 16B tenant   24 16B timeline   40 u64 PostgreSQL system id   48 u32 PostgreSQL major
 *  52 u32 WAL segment size   56 u64 timeline start LSN (where its WAL begins)
 *  64 u64 promised term (the highest term voted for)
 *  72 u64 commit LSN   80 u64 peer horizon LSN   88 u64 backup LSN
 *  96 u64 recovery start (a durable record boundary to scan the WAL from on restart)
 * 104 u64 pageserver write LSN  112 u64 pageserver flush LSN  120 u64 pageserver apply LSN
 * 128 u64 max write lag  136 u64 max flush lag  144 u64 max apply lag   (bytes; 0 = no limit)
 * 152 u32 n   156 n × (u64 term, u64 start LSN): the term history, oldest first
 *     u64 compute term (0 = no compute)  u16 port  u16 n + n B host (UTF-8)  u16 n + n B user
 *     u64 stopped compute term (0 = none)                                   (version 2 on)
 * end u32 CRC32C of everything before it
 * </pre>
 *
 * Changelog: version 1 (2026-11): first format. Version 2 (2026-11): the stopped compute term;
 * version 1 files are read (as 0) and written back as version 2. Immutable value; {@link #write}
 * makes it durable.
 *
 * @param promisedTerm the highest term this safekeeper voted for; it accepts no WAL of lower terms
 * @param history (term, start LSN) of every term whose WAL this safekeeper holds, oldest first
 * @param compute the compute this safekeeper pulls WAL from, for the term it was started for
 * @param stoppedComputeTerm the highest term whose compute was reported stopped (0 if none): no
 *     compute of that term or an older one is taken up again
 */
public record ControlFile(
    Identity identity,
    long promisedTerm,
    List<TermEntry> history,
    Positions positions,
    PageserverFeedback pageserver,
    LagLimits lagLimits,
    @Nullable ComputeSource compute,
    long stoppedComputeTerm) {

  public static final String FILE_NAME = "safekeeper.control";
  static final int MAGIC = 0x5A534B43;
  static final int FORMAT_VERSION = 2;
  private static final int HISTORY_AT = 152;

  /** What the log is: fixed when the timeline is created. */
  public record Identity(
      TenantId tenant,
      TimelineId timeline,
      long systemId,
      int pgVersion,
      int segmentSize,
      Lsn startLsn) {

    /**
     * What tells two timelines of the same id apart, for messages: "system id 7301234567890123456,
     * PostgreSQL 15, 16 MiB segments, start 0/3000028".
     */
    public String describe() {
      return "system id "
          + Long.toUnsignedString(systemId)
          + ", PostgreSQL "
          + pgVersion
          + ", "
          + (segmentSize % (1 << 20) == 0 ? (segmentSize >> 20) + " MiB" : segmentSize + " byte")
          + " segments, start "
          + startLsn;
    }
  }

  /** A term and the LSN its WAL starts at. */
  public record TermEntry(long term, Lsn start) {}

  /**
   * Positions a safekeeper persists now and then (each is a lower bound of the live value).
   *
   * @param recoveryStart a record boundary at or below the end of the durable WAL
   */
  public record Positions(Lsn commitLsn, Lsn peerHorizonLsn, Lsn backupLsn, Lsn recoveryStart) {}

  /**
   * What the pageserver last reported: received, flushed to its layer files ({@code
   * disk_consistent_lsn}), and its durable position (the LSN below which it never needs WAL again:
   * ADR 0007), which bounds WAL retention.
   */
  public record PageserverFeedback(Lsn writeLsn, Lsn flushLsn, Lsn applyLsn) {
    /** Each position the newer of the two. */
    public PageserverFeedback max(PageserverFeedback o) {
      return new PageserverFeedback(
          Lsn.max(writeLsn, o.writeLsn),
          Lsn.max(flushLsn, o.flushLsn),
          Lsn.max(applyLsn, o.applyLsn));
    }
  }

  /**
   * The compute replication lag settings: how far (bytes) the pageserver's write, flush and apply
   * positions may trail before flush acknowledgements are withheld. 0 means no limit.
   */
  public record LagLimits(long maxWriteLag, long maxFlushLag, long maxApplyLag) {
    public static final LagLimits NONE = new LagLimits(0, 0, 0);

    public LagLimits {
      if (maxWriteLag < 0 || maxFlushLag < 0 || maxApplyLag < 0) {
        throw new IllegalArgumentException("lag limits must not be negative");
      }
    }

    /**
     * The highest LSN a safekeeper may acknowledge given the pageserver's positions: the minimum
     * over the limits that are set, or {@code flushed} when none is.
     */
    public Lsn ackLimit(Lsn flushed, PageserverFeedback ps) {
      long limit = flushed.value();
      limit = cap(limit, ps.writeLsn(), maxWriteLag);
      limit = cap(limit, ps.flushLsn(), maxFlushLag);
      limit = cap(limit, ps.applyLsn(), maxApplyLag);
      return Lsn.of(limit);
    }

    private static long cap(long limit, Lsn base, long lag) {
      if (lag == 0) {
        return limit;
      }
      long allowed = base.value() + lag;
      return allowed < 0 || Long.compareUnsigned(allowed, limit) > 0 ? limit : allowed;
    }
  }

  /** A primary compute started for {@code term}, reached as a physical-replication standby. */
  public record ComputeSource(long term, String host, int port, String user) {
    public ComputeSource {
      if (term <= 0) {
        throw new IllegalArgumentException("a compute belongs to a term > 0");
      }
      if (port < 1 || port > 65535) {
        throw new IllegalArgumentException("port " + port + " is out of range");
      }
      if (host.isEmpty() || user.isEmpty()) {
        throw new IllegalArgumentException("host and user must not be empty");
      }
    }
  }

  public ControlFile {
    if (stoppedComputeTerm < 0) {
      throw new IllegalArgumentException("stopped compute term " + stoppedComputeTerm + " < 0");
    }
    history = List.copyOf(history);
    for (int i = 1; i < history.size(); i++) {
      if (history.get(i).term() <= history.get(i - 1).term()
          || history.get(i).start().isBefore(history.get(i - 1).start())) {
        throw new IllegalArgumentException("term history must grow in term and LSN: " + history);
      }
    }
  }

  /** A new timeline's state: no term yet, everything at its start LSN. */
  public static ControlFile create(Identity id, LagLimits limits) {
    Lsn s = id.startLsn();
    return new ControlFile(
        id,
        0,
        List.of(),
        new Positions(s, s, Lsn.INVALID, s),
        new PageserverFeedback(s, s, s),
        limits,
        null,
        0);
  }

  /** The term of the last history entry (0 if none): the term of the WAL this safekeeper holds. */
  public long lastLogTerm() {
    return history.isEmpty() ? 0 : history.getLast().term();
  }

  public ControlFile withPromisedTerm(long t) {
    return new ControlFile(
        identity, t, history, positions, pageserver, lagLimits, compute, stoppedComputeTerm);
  }

  public ControlFile withHistory(List<TermEntry> h) {
    return new ControlFile(
        identity, promisedTerm, h, positions, pageserver, lagLimits, compute, stoppedComputeTerm);
  }

  public ControlFile withPositions(Positions p) {
    return new ControlFile(
        identity, promisedTerm, history, p, pageserver, lagLimits, compute, stoppedComputeTerm);
  }

  public ControlFile withPageserver(PageserverFeedback f) {
    return new ControlFile(
        identity, promisedTerm, history, positions, f, lagLimits, compute, stoppedComputeTerm);
  }

  public ControlFile withLagLimits(LagLimits l) {
    return new ControlFile(
        identity, promisedTerm, history, positions, pageserver, l, compute, stoppedComputeTerm);
  }

  public ControlFile withCompute(@Nullable ComputeSource c) {
    return new ControlFile(
        identity, promisedTerm, history, positions, pageserver, lagLimits, c, stoppedComputeTerm);
  }

  public ControlFile withStoppedComputeTerm(long t) {
    return new ControlFile(
        identity, promisedTerm, history, positions, pageserver, lagLimits, compute, t);
  }

  public byte[] encode() {
    byte[] host = compute == null ? new byte[0] : utf8(compute.host());
    byte[] user = compute == null ? new byte[0] : utf8(compute.user());
    ByteBuffer b =
        ByteBuffer.allocate(
            HISTORY_AT
                + 4
                + 16 * history.size()
                + 8
                + 2
                + 2
                + host.length
                + 2
                + user.length
                + 8
                + 4);
    b.putInt(MAGIC).putShort((short) FORMAT_VERSION).putShort((short) 0);
    b.put(identity.tenant().toBytes()).put(identity.timeline().toBytes());
    b.putLong(identity.systemId()).putInt(identity.pgVersion()).putInt(identity.segmentSize());
    b.putLong(identity.startLsn().value()).putLong(promisedTerm);
    b.putLong(positions.commitLsn().value())
        .putLong(positions.peerHorizonLsn().value())
        .putLong(positions.backupLsn().value())
        .putLong(positions.recoveryStart().value());
    b.putLong(pageserver.writeLsn().value())
        .putLong(pageserver.flushLsn().value())
        .putLong(pageserver.applyLsn().value());
    b.putLong(lagLimits.maxWriteLag())
        .putLong(lagLimits.maxFlushLag())
        .putLong(lagLimits.maxApplyLag());
    b.putInt(history.size());
    for (TermEntry e : history) {
      b.putLong(e.term()).putLong(e.start().value());
    }
    b.putLong(compute == null ? 0 : compute.term())
        .putShort((short) (compute == null ? 0 : compute.port()));
    b.putShort((short) host.length).put(host).putShort((short) user.length).put(user);
    b.putLong(stoppedComputeTerm);
    CRC32C c = new CRC32C();
    c.update(b.array(), 0, b.position());
    b.putInt((int) c.getValue());
    return b.array();
  }

  private static byte[] utf8(String s) {
    byte[] a = s.getBytes(StandardCharsets.UTF_8);
    if (a.length > 0xFFFF) {
      throw new IllegalArgumentException("a name of " + a.length + " bytes is too long");
    }
    return a;
  }

  /**
   * Decodes a control file.
   *
   * @throws IllegalArgumentException naming what is wrong (magic, version, CRC, length)
   */
  public static ControlFile decode(byte[] a) {
    if (a.length < HISTORY_AT + 4 + 8 + 6 + 4) {
      throw new IllegalArgumentException("control file of " + a.length + " bytes is too short");
    }
    ByteBuffer b = ByteBuffer.wrap(a);
    if (b.getInt(0) != MAGIC) {
      throw new IllegalArgumentException(String.format("bad magic %08X", b.getInt(0)));
    }
    int version = Short.toUnsignedInt(b.getShort(4));
    if (version != 1 && version != FORMAT_VERSION) {
      throw new IllegalArgumentException(
          "unknown format version " + version + " (this build reads " + FORMAT_VERSION + ")");
    }
    CRC32C c = new CRC32C();
    c.update(a, 0, a.length - 4);
    if ((int) c.getValue() != b.getInt(a.length - 4)) {
      throw new IllegalArgumentException("CRC mismatch");
    }
    try {
      b.position(8);
      Identity id =
          new Identity(
              TenantId.fromBytes(a, 8),
              TimelineId.fromBytes(a, 24),
              b.getLong(40),
              b.getInt(48),
              b.getInt(52),
              Lsn.of(b.getLong(56)));
      b.position(64);
      long promised = b.getLong();
      Positions p =
          new Positions(
              Lsn.of(b.getLong()), Lsn.of(b.getLong()), Lsn.of(b.getLong()), Lsn.of(b.getLong()));
      PageserverFeedback ps =
          new PageserverFeedback(Lsn.of(b.getLong()), Lsn.of(b.getLong()), Lsn.of(b.getLong()));
      LagLimits limits = new LagLimits(b.getLong(), b.getLong(), b.getLong());
      int n = b.getInt();
      if (n < 0 || n > (a.length - HISTORY_AT) / 16) {
        throw new IllegalArgumentException("history of " + n + " entries does not fit");
      }
      List<TermEntry> h = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        h.add(new TermEntry(b.getLong(), Lsn.of(b.getLong())));
      }
      long computeTerm = b.getLong();
      int port = Short.toUnsignedInt(b.getShort());
      String host = string(b);
      String user = string(b);
      long stoppedComputeTerm = version >= 2 ? b.getLong() : 0;
      if (b.position() != a.length - 4) {
        throw new IllegalArgumentException(
            "length " + a.length + " does not match its contents (" + (b.position() + 4) + ")");
      }
      ComputeSource compute =
          computeTerm == 0 ? null : new ComputeSource(computeTerm, host, port, user);
      return new ControlFile(id, promised, h, p, ps, limits, compute, stoppedComputeTerm);
    } catch (BufferUnderflowException e) {
      throw new IllegalArgumentException("length " + a.length + " does not match its contents");
    }
  }

  private static String string(ByteBuffer b) {
    byte[] s = new byte[Short.toUnsignedInt(b.getShort())];
    b.get(s);
    return new String(s, StandardCharsets.UTF_8);
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
