package io.zenith.it.bench;

import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.page.redo.RedoRequest;
import io.zenith.page.redo.ScratchCluster;
import io.zenith.page.redo.WalRedoProcess;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentFiles;
import io.zenith.wal.WalStream;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
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
 * WAL redo round trip: one {@link WalRedoProcess} (a {@code postgres --single} backend running
 * {@code zenith_walredo}) rebuilding heap pages of a real cluster's WAL, each request starting at
 * the page's full-page image or init record and carrying the first {@code records} records of its
 * history. Time per request; divide by {@code records} for the time per record. The fixed cost per
 * request (pipe round trip, files created and unlinked for the relation) dominates short requests.
 *
 * <p>Needs PostgreSQL 15 (a throw-away cluster records the WAL in the trial set-up). Not a test.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class WalRedoBenchmark {

  /** Records per request: the page's image or init record and the ones after it. */
  @Param({"1", "10", "100"})
  public int records;

  private PgCluster cluster;
  private ScratchCluster scratch;
  private WalRedoProcess process;
  private List<RedoRequest> requests;
  private int next;

  private static final String WORKLOAD =
      """
      CREATE TABLE b (id int PRIMARY KEY, v int, pad text) WITH (fillfactor = 50);
      INSERT INTO b SELECT g, g, repeat('x', 60) FROM generate_series(1, 20000) g;
      CHECKPOINT;
      UPDATE b SET v = v + 1 WHERE id % 3 = 0;
      UPDATE b SET v = v + 1 WHERE id % 3 = 1;
      UPDATE b SET v = v + 1 WHERE id % 3 = 2;
      DELETE FROM b WHERE id % 10 = 0;
      """;

  @Setup(Level.Trial)
  public void setUp() throws IOException {
    cluster = PgCluster.initdb("--data-checksums");
    cluster.configure(Map.of("wal_log_hints", "on", "autovacuum", "off", "fsync", "off"));
    cluster.start();
    cluster.sql(WORKLOAD);
    cluster.stop();
    WalSegmentFiles.Sequence seq =
        WalSegmentFiles.sequence(WalSegmentFiles.listSegments(cluster.walDir()));
    List<WalRecord> raw =
        WalStream.records(
                WalSegmentFiles.read(seq, seq.startLsn()),
                seq.startLsn(),
                WalRecordAssembler.Options.DEFAULT.withSegmentSize(seq.segmentSize()))
            .collectList()
            .block();
    record Key(RelTag rel, ForkNumber fork, int block) {}
    Map<Key, List<DecodedRecord>> histories = new HashMap<>();
    for (WalRecord w : raw) {
      DecodedRecord d = RecordDecoder.decode(w);
      if (d.rmgr() == null || !d.rmgr().pgName().startsWith("Heap")) {
        continue;
      }
      for (BlockRef b : d.blocks()) {
        Key k = new Key(b.rel(), b.fork(), b.blockNumber());
        if (b.appliesImage() || b.willInit()) {
          histories.put(k, new ArrayList<>());
        }
        List<DecodedRecord> h = histories.get(k);
        if (h != null && (h.isEmpty() || h.getLast() != d)) {
          h.add(d);
        }
      }
    }
    requests = new ArrayList<>();
    histories.forEach(
        (k, h) -> {
          if (h.size() >= records && k.fork() == ForkNumber.MAIN) {
            requests.add(
                RedoRequest.ofDecoded(k.rel(), k.fork(), k.block(), null, h.subList(0, records)));
          }
        });
    if (requests.isEmpty()) {
      throw new IllegalStateException("no heap page has " + records + " records of history");
    }
    scratch =
        ScratchCluster.create(
            cluster.distribution(), Path.of(System.getProperty("java.io.tmpdir")), true, true);
    process = WalRedoProcess.start(scratch, Duration.ofSeconds(60));
  }

  @Benchmark
  public byte[] roundTrip() {
    RedoRequest r = requests.get(next);
    next = (next + 1) % requests.size();
    return process.apply(r, Duration.ofSeconds(10));
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    if (process != null) {
      process.close();
    }
    if (scratch != null) {
      scratch.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }
}
