package io.zenith.it.bench;

import io.zenith.ingest.WalIngest;
import io.zenith.layer.Key;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
import io.zenith.wal.Lsn;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * The ingest stage alone: the sample's WAL (pgbench on a fresh cluster) decoded and written as
 * versions into the open in-memory layer of a freshly imported timeline (the checkpoint distance is
 * large enough that nothing is frozen or flushed during the measurement). One operation = the whole
 * sample; MB/s = sample WAL bytes / time.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class IngestBenchmark {
  @Param("")
  public String root;

  private PageserverSample sample;
  private Path storeDir;
  private LayerStore[] store = new LayerStore[1];
  private Timeline timeline;

  @Setup(Level.Trial)
  public void sample() throws IOException {
    sample = PageserverSample.get(Path.of(root));
  }

  @Setup(Level.Iteration)
  public void freshTimeline() throws IOException {
    storeDir = Files.createTempDirectory("zenith-bench-ingest-");
    timeline =
        sample.importInto(
            storeDir, LayerStoreConfig.DEFAULT.withCheckpointDistance(8L << 30), store);
  }

  @Benchmark
  public long ingest() {
    return sample.ingestAll(timeline, new WalIngest(timeline, (t, k, l) -> noFileCopy(k, l)));
  }

  static byte[] noFileCopy(Key k, Lsn l) {
    throw new IllegalStateException(
        "the sample has no CREATE DATABASE ... FILE_COPY (" + k + "@" + l + ")");
  }

  @TearDown(Level.Iteration)
  public void drop() throws IOException {
    store[0].close();
    BenchMain.deleteTree(storeDir);
  }
}
