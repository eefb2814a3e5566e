package io.zenith.it.bench;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.WalIngest;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.layer.Key;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
import io.zenith.layer.Value;
import io.zenith.layer.Version;
import io.zenith.page.PageReconstructor;
import io.zenith.page.redo.WalRedoConfig;
import io.zenith.page.redo.WalRedoManager;
import io.zenith.pg.PgDistribution;
import io.zenith.wal.Lsn;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
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
 * GetPage@LSN of one heap page whose history at the chosen LSN is a base image followed by exactly
 * {@code deltas} WAL records (a pgbench table page updated by many transactions), with the page
 * cache off: index lookups, layer-file reads and one WAL-redo round trip.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class GetPageBenchmark {
  @Param("")
  public String root;

  @Param({"0", "1", "10", "100"})
  public int deltas;

  private Path storeDir;
  private final LayerStore[] store = new LayerStore[1];
  private Timeline timeline;
  private WalRedoManager redo;
  private PageReconstructor pages;
  private Key key;
  private Lsn lsn;

  @Setup(Level.Trial)
  public void setUp() throws IOException {
    PageserverSample sample = PageserverSample.get(Path.of(root));
    storeDir = Files.createTempDirectory("zenith-bench-getpage-");
    timeline = sample.importInto(storeDir, LayerStoreConfig.DEFAULT, store);
    sample.ingestAll(
        timeline, new WalIngest(timeline, (t, k, l) -> IngestBenchmark.noFileCopy(k, l)));
    timeline.checkpoint();
    key =
        longestChain(timeline)
            .orElseThrow(
                () -> new IllegalStateException("no page with 100 WAL records after a base"));
    List<Version> h = timeline.history(key, timeline.lastRecordLsn());
    int base = h.size() - 1;
    lsn = h.get(base - deltas).lsn();
    redo =
        WalRedoManager.start(
            PgDistribution.detect(),
            WalRedoConfig.defaults().withMaxProcessesPerTenant(1),
            new SimpleMeterRegistry());
    pages = new PageReconstructor(PageReconstructor.using(redo), 0);
    pages.page(timeline, key, lsn); // start the redo process outside the measurement
  }

  /** A heap page whose newest base is followed by at least 100 WAL records. */
  static Optional<Key> longestChain(Timeline t) {
    Key best = null;
    int bestLen = 0;
    for (var rf :
        io.zenith.ingest.keys.Catalog.relations(t, KeySpace.ALL_RELATIONS, t.lastRecordLsn())) {
      if (rf.fork() != io.zenith.wal.ForkNumber.MAIN || rf.blocks() > 64) {
        continue;
      }
      for (int blk = 0; blk < rf.blocks(); blk++) {
        Key k = KeySpace.relBlock(rf.rel(), rf.fork(), blk);
        List<Version> h = t.history(k, t.lastRecordLsn());
        boolean allRecords =
            h.subList(0, h.size() - 1).stream().allMatch(v -> v.value() instanceof Value.WalRecord);
        if (allRecords && h.getLast().value() instanceof Value.Image && h.size() - 1 > bestLen) {
          best = k;
          bestLen = h.size() - 1;
        }
      }
    }
    return bestLen >= 100 ? Optional.of(best) : Optional.empty();
  }

  @Benchmark
  public byte[] getPage() {
    return pages.page(timeline, key, lsn);
  }

  @TearDown(Level.Trial)
  public void tearDown() throws IOException {
    redo.close();
    store[0].close();
    BenchMain.deleteTree(storeDir);
  }
}
