package io.zenith.it.bench;

import io.zenith.ingest.pg.PgControl;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.log.WalLog;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * A safekeeper's write path alone: the pageserver sample's WAL (pgbench, from a record boundary to
 * the end of its last record) appended to a fresh {@link WalLog} in 128 KiB chunks — what a
 * walsender sends per XLogData message — with a {@link WalLog#flush()} (fsync, segment completion)
 * after every {@code groupKiB} of WAL. {@code log} is that; {@code raw} writes the same bytes into
 * 16 MiB files with {@code FileChannel.write} and {@code force} at the same points, the floor any
 * log on this disk sits on. One operation = the whole sample.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class SafekeeperAppendBenchmark {
  static final int CHUNK = 128 * 1024;

  @Param("")
  public String root;

  @Param({"128", "1024", "16384"})
  public int groupKiB;

  private List<ByteBuffer> chunks;
  private Lsn start;
  private long systemId;
  private Path dir;

  @Setup(Level.Trial)
  public void sample() throws IOException {
    PageserverSample sample = PageserverSample.get(Path.of(root));
    systemId =
        PgControl.parse(Files.readAllBytes(sample.initdb.resolve("global/pg_control"))).systemId();
    start = sample.importLsn;
    int segmentSize = PageserverSample.SEGMENT_SIZE;
    ByteBuffer all = ByteBuffer.allocate((int) sample.walBytes);
    for (byte[] seg : sample.walChunks) {
      all.put(seg);
    }
    all.flip().position(start.segmentOffset(segmentSize));
    WalRecordAssembler a =
        new WalRecordAssembler(
            start, WalRecordAssembler.Options.DEFAULT.withSegmentSize(segmentSize));
    for (Iterator<?> it = a.feed(all.duplicate()); it.hasNext(); ) {
      it.next();
    }
    all.limit(all.position() + (int) a.lastRecordEnd().minus(start));
    chunks = new ArrayList<>();
    while (all.hasRemaining()) {
      int n = Math.min(CHUNK, all.remaining());
      chunks.add(all.slice(all.position(), n).asReadOnlyBuffer());
      all.position(all.position() + n);
    }
  }

  /** Bytes appended per operation. */
  long bytes() {
    return chunks.stream().mapToLong(ByteBuffer::remaining).sum();
  }

  @Setup(Level.Iteration)
  public void freshDir() throws IOException {
    dir = Files.createTempDirectory(Path.of(root, "integration/target"), "bench-sk-append-");
  }

  @TearDown(Level.Iteration)
  public void removeDir() throws IOException {
    BenchMain.deleteTree(dir);
  }

  @Benchmark
  public Lsn log() throws IOException {
    try (WalLog log = WalLog.open(dir, PageserverSample.SEGMENT_SIZE, systemId, start)) {
      Lsn at = start;
      long sinceFlush = 0;
      for (ByteBuffer c : chunks) {
        log.append(at, c.duplicate());
        at = at.plus(c.remaining());
        sinceFlush += c.remaining();
        if (sinceFlush >= groupKiB * 1024L) {
          log.flush();
          sinceFlush = 0;
        }
      }
      return log.flush();
    }
  }

  @Benchmark
  public long raw() throws IOException {
    int segmentSize = PageserverSample.SEGMENT_SIZE;
    long pos = start.value();
    long sinceFlush = 0;
    FileChannel ch = null;
    long seg = -1;
    try {
      for (ByteBuffer c : chunks) {
        ByteBuffer b = c.duplicate();
        while (b.hasRemaining()) {
          if (pos / segmentSize != seg) {
            if (ch != null) {
              ch.force(false);
              ch.close();
            }
            seg = pos / segmentSize;
            ch =
                FileChannel.open(
                    dir.resolve(Long.toString(seg)),
                    StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE);
          }
          int n = (int) Math.min(b.remaining(), segmentSize - pos % segmentSize);
          ByteBuffer part = b.slice(b.position(), n);
          long p = pos % segmentSize;
          while (part.hasRemaining()) {
            p += ch.write(part, p);
          }
          b.position(b.position() + n);
          pos += n;
        }
        sinceFlush += c.remaining();
        if (sinceFlush >= groupKiB * 1024L) {
          ch.force(false);
          sinceFlush = 0;
        }
      }
      if (ch != null) {
        ch.force(false);
      }
      return pos;
    } finally {
      if (ch != null) {
        ch.close();
      }
    }
  }
}
