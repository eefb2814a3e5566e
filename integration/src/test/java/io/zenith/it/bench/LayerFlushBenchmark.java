package io.zenith.it.bench;

import io.zenith.ingest.WalIngest;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
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
 * The flush stage alone: one frozen in-memory layer holding the whole sample's versions written to
 * a layer file (LZ4, CRCs, index, fsync, rename) and committed to RocksDB. One operation = one
 * flush; {@link #bytesPerFlush()} gives the in-memory layer size for MB/s.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class LayerFlushBenchmark {
  @Param("")
  public String root;

  private PageserverSample sample;
  private Path storeDir;
  private final LayerStore[] store = new LayerStore[1];
  private Timeline timeline;
  static volatile long lastLayerBytes;

  @Setup(Level.Trial)
  public void sample() throws IOException {
    sample = PageserverSample.get(Path.of(root));
  }

  @Setup(Level.Iteration)
  public void frozenLayer() throws IOException {
    storeDir = Files.createTempDirectory("zenith-bench-flush-");
    timeline =
        sample.importInto(
            storeDir, LayerStoreConfig.DEFAULT.withCheckpointDistance(8L << 30), store);
    sample.ingestAll(
        timeline, new WalIngest(timeline, (t, k, l) -> IngestBenchmark.noFileCopy(k, l)));
    lastLayerBytes = timeline.openLayerBytes();
    timeline.freezeIfDue(true);
  }

  @Benchmark
  public boolean flush() {
    return timeline.flushOldestFrozen();
  }

  static long bytesPerFlush() {
    return lastLayerBytes;
  }

  @TearDown(Level.Iteration)
  public void drop() throws IOException {
    store[0].close();
    BenchMain.deleteTree(storeDir);
  }
}
