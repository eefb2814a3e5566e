package io.zenith.it.bench;

import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
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
import org.openjdk.jmh.infra.Blackhole;

/**
 * Decoder stage throughput on a recorded WAL sample (see {@link BenchMain}): the whole sample
 * through the record assembler (page headers, reassembly, CRC32C), and additionally through the
 * record decoder (block references, images, main data). One invocation = the whole sample; divide
 * the sample size by the time per operation to get MB/s.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class WalDecodeBenchmark {

  /** Directory of the sample's segment files, consecutive, in name order. */
  @Param("")
  public String walDir;

  /** Read chunk size, as a network or file reader would deliver it. */
  @Param({"65536"})
  public int chunkSize;

  private List<ByteBuffer> chunks;
  private Lsn start;
  private int segmentSize;

  @Setup(Level.Trial)
  public void load() throws IOException {
    List<Path> files = BenchMain.sampleFiles(Path.of(walDir));
    segmentSize = (int) Files.size(files.getFirst());
    start = BenchMain.startOf(files.getFirst(), segmentSize);
    chunks = new ArrayList<>();
    for (Path f : files) {
      byte[] all = Files.readAllBytes(f);
      for (int off = 0; off < all.length; off += chunkSize) {
        chunks.add(ByteBuffer.wrap(all, off, Math.min(chunkSize, all.length - off)));
      }
    }
  }

  @Benchmark
  public long assemble(Blackhole bh) {
    WalRecordAssembler a = assembler();
    long n = 0;
    for (ByteBuffer c : chunks) {
      Iterator<WalRecord> it = a.feed(c.duplicate());
      while (it.hasNext()) {
        bh.consume(it.next());
        n++;
      }
    }
    return n;
  }

  @Benchmark
  public long assembleAndDecode(Blackhole bh) {
    WalRecordAssembler a = assembler();
    long n = 0;
    for (ByteBuffer c : chunks) {
      Iterator<WalRecord> it = a.feed(c.duplicate());
      while (it.hasNext()) {
        DecodedRecord d = RecordDecoder.decode(it.next());
        bh.consume(d);
        n++;
      }
    }
    return n;
  }

  private WalRecordAssembler assembler() {
    return new WalRecordAssembler(
        start, WalRecordAssembler.Options.DEFAULT.withSegmentSize(segmentSize));
  }
}
