package io.zenith.it.bench;

import io.zenith.ingest.DatadirImport;
import io.zenith.ingest.WalIngest;
import io.zenith.ingest.wal.records.TypedRecord;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * A recorded workload for the pageserver's stage benchmarks: the data directory right after initdb
 * (to import) and the WAL a pgbench run wrote on top of it (to ingest), kept under {@code
 * integration/target/bench-pageserver} so benchmarks and repeated runs share it.
 */
final class PageserverSample {
  static final int SEGMENT_SIZE = 16 << 20;

  final Path dir;
  final Path initdb;
  final Path wal;
  final Lsn importLsn;
  final List<byte[]> walChunks;
  final long walBytes;

  private PageserverSample(Path dir) throws IOException {
    this.dir = dir;
    this.initdb = dir.resolve("initdb");
    this.wal = dir.resolve("wal");
    this.importLsn = Lsn.parse(Files.readString(dir.resolve("import.lsn")).trim());
    this.walChunks = new ArrayList<>();
    long n = 0;
    for (Path f : WalSegmentFiles.consecutiveFrom(wal, importLsn, SEGMENT_SIZE)) {
      byte[] b = Files.readAllBytes(f);
      walChunks.add(b);
      n += b.length;
    }
    this.walBytes = n;
  }

  /** The sample in {@code root}/integration/target/bench-pageserver, recorded if missing. */
  static PageserverSample get(Path root) throws IOException {
    Path dir = root.resolve("integration/target/bench-pageserver");
    if (!Files.exists(dir.resolve("import.lsn"))) {
      record(dir);
    }
    return new PageserverSample(dir);
  }

  private static void record(Path dir) throws IOException {
    System.out.println(
        "recording the pageserver sample: initdb, pgbench -i -s 10, CHECKPOINT, pgbench -T 20 ...");
    BenchMain.deleteTree(dir);
    Files.createDirectories(dir);
    try (PgCluster c = PgCluster.initdb("--data-checksums")) {
      copyTree(c.dataDir(), dir.resolve("initdb"));
      Lsn importLsn;
      try (LayerStore probe =
          LayerStore.open(Files.createTempDirectory("zenith-probe-"), LayerStoreConfig.DEFAULT)) {
        TenantId t = TenantId.generate();
        probe.createTenant(t);
        importLsn = DatadirImport.run(probe, t, TimelineId.generate(), c.dataDir()).lsn();
      }
      Files.writeString(dir.resolve("import.lsn"), importLsn + "\n");
      c.configure(
          Map.of(
              "max_wal_size",
              "4GB",
              "checkpoint_timeout",
              "1h",
              "wal_keep_size",
              "4GB",
              "wal_log_hints",
              "on"));
      c.start();
      BenchMain.pgbench(c, List.of("-i", "-s", "10", "-q"));
      // Without a checkpoint no page of the run would start from a full-page image: pgbench -i
      // builds its pages from init records, and GetPageBenchmark needs image + N deltas.
      c.sql("CHECKPOINT");
      BenchMain.pgbench(c, List.of("-T", "20", "-c", "4", "-j", "2", "-n"));
      c.stop();
      Files.createDirectories(dir.resolve("wal"));
      for (Path f : WalSegmentFiles.consecutiveFrom(c.walDir(), importLsn, SEGMENT_SIZE)) {
        Files.copy(
            f, dir.resolve("wal").resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
      }
    }
  }

  static void copyTree(Path from, Path to) throws IOException {
    try (Stream<Path> walk = Files.walk(from)) {
      for (Path p : walk.toList()) {
        Path target = to.resolve(from.relativize(p));
        if (Files.isDirectory(p)) {
          Files.createDirectories(target);
        } else {
          Files.copy(p, target, StandardCopyOption.REPLACE_EXISTING);
        }
      }
    }
  }

  /** A fresh layer store in a temp directory with the sample's initdb imported. */
  Timeline importInto(Path storeDir, LayerStoreConfig config, LayerStore[] out) throws IOException {
    LayerStore store = LayerStore.open(storeDir, config);
    out[0] = store;
    TenantId t = TenantId.generate();
    store.createTenant(t);
    return DatadirImport.run(store, t, TimelineId.generate(), initdb).timeline();
  }

  /** Ingests the whole sample's WAL into {@code timeline}; returns the number of records. */
  long ingestAll(Timeline timeline, WalIngest ingest) {
    WalRecordAssembler a =
        new WalRecordAssembler(
            importLsn, WalRecordAssembler.Options.DEFAULT.withSegmentSize(SEGMENT_SIZE));
    long n = 0;
    boolean first = true;
    for (byte[] seg : walChunks) {
      ByteBuffer b = ByteBuffer.wrap(seg);
      if (first) {
        b.position(importLsn.segmentOffset(SEGMENT_SIZE));
        first = false;
      }
      for (Iterator<WalRecord> it = a.feed(b); it.hasNext(); ) {
        ingest.ingest(TypedRecord.decode(it.next()));
        n++;
      }
    }
    return n;
  }
}
