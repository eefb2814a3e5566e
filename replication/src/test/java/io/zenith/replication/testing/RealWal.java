package io.zenith.replication.testing;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.server.WalPiece;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalSegmentName;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Map;
import reactor.core.publisher.Flux;

/**
 * Complete WAL segments written by a real PostgreSQL 15 (timeline 1, 16 MiB segments): initdb, then
 * a workload with full-page images, a record larger than a segment and segment switches. Copied out
 * of the running cluster (a shutdown checkpoint would recycle them), so every segment in {@code
 * [start(), end())} is whole and was never recycled.
 *
 * <p>Made once per test JVM by {@link #get()} (a few seconds) and shared; its files are deleted at
 * JVM exit. Read-only and thread-safe once made.
 */
public final class RealWal {
  public static final int TIMELINE = 1;

  private static final String WORKLOAD =
      """
      create table t (id int primary key, v text);
      insert into t select g, repeat('x', 200) from generate_series(1, 60000) g;
      checkpoint;
      update t set v = repeat('y', 200) where id % 3 = 0;
      select pg_switch_wal();
      select pg_logical_emit_message(false, 'zenith', repeat('m', 17 * 1024 * 1024));
      insert into t values (0, 'last');
      select pg_switch_wal();
      """;

  private static RealWal instance;

  private final Path dir;
  private final int segmentSize;
  private final long systemId;
  private final Lsn start;
  private final Lsn end;

  private RealWal(Path dir, int segmentSize, long systemId, Lsn start, Lsn end) {
    this.dir = dir;
    this.segmentSize = segmentSize;
    this.systemId = systemId;
    this.start = start;
    this.end = end;
  }

  public static synchronized RealWal get() {
    if (instance == null) {
      instance = create();
      Path d = instance.dir;
      Runtime.getRuntime().addShutdownHook(new Thread(() -> PgCluster.deleteTree(d)));
    }
    return instance;
  }

  private static RealWal create() {
    try (PgCluster c = PgCluster.initdb()) {
      c.configure(
          Map.of(
              "wal_level", "replica",
              "fsync", "off",
              "max_wal_size", "1GB",
              "min_wal_size", "1GB",
              // the workload's checkpoint would otherwise recycle the first segments
              "wal_keep_size", "1GB",
              "checkpoint_timeout", "1h"));
      c.start();
      c.sql(WORKLOAD);
      int segmentSize = PgWal.segmentSize(c);
      long systemId =
          Long.parseUnsignedLong(c.sql("select system_identifier from pg_control_system()").trim());
      // Everything before the segment being written now is complete.
      Lsn current = PgWal.lsn(c, "pg_current_wal_lsn()");
      long firstSegment = 1;
      long endSegment = current.segmentNumber(segmentSize);
      Path dir = Files.createTempDirectory("zenith-realwal-");
      for (long s = firstSegment; s < endSegment; s++) {
        String name = new WalSegmentName(TIMELINE, s).fileName(segmentSize);
        Files.copy(c.walDir().resolve(name), dir.resolve(name), StandardCopyOption.COPY_ATTRIBUTES);
      }
      return new RealWal(
          dir,
          segmentSize,
          systemId,
          Lsn.of(firstSegment * segmentSize),
          Lsn.of(endSegment * segmentSize));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public int segmentSize() {
    return segmentSize;
  }

  public long systemId() {
    return systemId;
  }

  /** Start of the first segment. */
  public Lsn start() {
    return start;
  }

  /** End of the last segment. */
  public Lsn end() {
    return end;
  }

  /** The segment file holding {@code lsn}. */
  public Path segmentFile(Lsn lsn) {
    return dir.resolve(WalSegmentName.of(TIMELINE, lsn, segmentSize).fileName(segmentSize));
  }

  /**
   * The WAL in {@code [from, to)} as pieces of {@code pieceSize} bytes (the last shorter), read
   * from the files on demand into pooled direct buffers: what a safekeeper's log would serve.
   * Pieces may span segment files.
   */
  public Flux<WalPiece> pieces(Lsn from, Lsn to, int pieceSize) {
    return Flux.generate(
        () -> from,
        (at, sink) -> {
          if (!at.isBefore(to)) {
            sink.complete();
            return at;
          }
          int n = (int) Math.min(pieceSize, to.minus(at));
          ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(n);
          try {
            read(at, n, buf);
          } catch (RuntimeException e) {
            buf.release();
            throw e;
          }
          sink.next(new WalPiece(at, buf));
          return at.plus(n);
        });
  }

  /** The bytes {@code [from, to)}. */
  public byte[] bytes(Lsn from, Lsn to) {
    ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(to.minus(from)));
    Lsn at = from;
    while (out.hasRemaining()) {
      try (FileChannel ch = FileChannel.open(segmentFile(at), StandardOpenOption.READ)) {
        int offset = at.segmentOffset(segmentSize);
        int n = Math.min(out.remaining(), segmentSize - offset);
        ByteBuffer part = out.slice(out.position(), n);
        while (part.hasRemaining()) {
          if (ch.read(part, offset + part.position()) < 0) {
            throw new IllegalStateException(segmentFile(at) + " ends early");
          }
        }
        out.position(out.position() + n);
        at = at.plus(n);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return out.array();
  }

  /** Size and SHA-256 of {@code bytes}, for assertions that must not print megabytes. */
  public static String digest(byte[] bytes) {
    MessageDigest md = PgWal.sha256();
    return bytes.length + " bytes, sha256 " + HexFormat.of().formatHex(md.digest(bytes));
  }

  /** Reads {@code n} bytes at {@code at} into {@code buf}, across segment files. */
  private void read(Lsn at, int n, ByteBuf buf) {
    int left = n;
    Lsn pos = at;
    while (left > 0) {
      int offset = pos.segmentOffset(segmentSize);
      int len = Math.min(left, segmentSize - offset);
      try (FileChannel ch = FileChannel.open(segmentFile(pos), StandardOpenOption.READ)) {
        int done = 0;
        while (done < len) {
          int r = buf.writeBytes(ch, offset + done, len - done);
          if (r < 0) {
            throw new IllegalStateException(segmentFile(pos) + " ends before " + pos.plus(done));
          }
          done += r;
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      left -= len;
      pos = pos.plus(len);
    }
  }
}
