package io.zenith.ingest;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.keys.CommitTimestamps;
import io.zenith.ingest.keys.CommitTimestamps.AfterEnd;
import io.zenith.ingest.keys.CommitTimestamps.Found;
import io.zenith.ingest.keys.CommitTimestamps.Result;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalSegmentFiles;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Commit records of a real PostgreSQL 15 become commit-time versions: with {@code
 * track_commit_timestamp} on, PostgreSQL reports each transaction's commit time, which is the time
 * its commit record carries; the search then finds, for that exact time, the LSN of that commit
 * (between the insert positions before and after it), for a microsecond earlier the commit before,
 * and after the last commit "after the end". A prepared transaction's COMMIT PREPARED counts too.
 */
class CommitTimestampIngestTest {
  @TempDir Path storeDir;

  /** One transaction: its commit time as PostgreSQL reports it, insert positions around it. */
  private record Xact(Instant time, Lsn before, Lsn after) {}

  @Test
  void commitRecordsMapTimesToTheirLsns() throws Exception {
    try (PgCluster cluster = PgCluster.initdb("--wal-segsize=16");
        LayerStore store = LayerStore.open(storeDir, LayerStoreConfig.DEFAULT)) {
      cluster.configure(
          Map.of(
              "track_commit_timestamp", "on",
              "max_prepared_transactions", "2",
              "fsync", "off",
              "autovacuum", "off",
              "timezone", "UTC"));
      TenantId tenant = TenantId.generate();
      store.createTenant(tenant);
      DatadirImport.Result imported =
          DatadirImport.run(store, tenant, TimelineId.generate(), cluster.dataDir());
      Timeline timeline = imported.timeline();
      cluster.start();
      cluster.sql("CREATE TABLE t(i int)");
      List<Xact> xacts = new ArrayList<>();
      for (int i = 1; i <= 5; i++) {
        Lsn before = Lsn.parse(cluster.sql("SELECT pg_current_wal_insert_lsn()").strip());
        String time;
        if (i == 3) {
          cluster.sql("BEGIN; INSERT INTO t VALUES (3); PREPARE TRANSACTION 'p'");
          before = Lsn.parse(cluster.sql("SELECT pg_current_wal_insert_lsn()").strip());
          cluster.sql("COMMIT PREPARED 'p'");
        } else {
          cluster.sql("INSERT INTO t VALUES (" + i + ")");
        }
        time = cluster.sql("SELECT pg_xact_commit_timestamp(xmin) FROM t WHERE i = " + i);
        Lsn after = Lsn.parse(cluster.sql("SELECT pg_current_wal_insert_lsn()").strip());
        // the session's time zone is UTC: "2026-12-06 10:00:00.12345+00"
        Instant at = Instant.parse(time.strip().replace(' ', 'T').replace("+00", "Z"));
        xacts.add(new Xact(at, before, after));
        Thread.sleep(20);
      }
      cluster.stop();

      WalIngest ingest =
          new WalIngest(
              timeline,
              (t, k, l) -> {
                throw new AssertionError("no page is read");
              });
      try (IngestPipeline pipeline =
          new IngestPipeline(
              timeline, ingest, IngestPipeline.Options.DEFAULT, new SimpleMeterRegistry())) {
        pipeline
            .run(
                WalSegmentFiles.read(
                    WalSegmentFiles.sequence(
                        WalSegmentFiles.consecutiveFrom(
                            cluster.walDir(), imported.lsn(), 16 << 20)),
                    imported.lsn()),
                16 << 20,
                imported.systemId(),
                (ingested, disk) -> {})
            .block(Duration.ofMinutes(2));
      }

      Lsn previous = null;
      for (Xact x : xacts) {
        Result r = CommitTimestamps.lsnByTimestamp(timeline, x.time());
        assertThat(r).isInstanceOf(Found.class);
        Found f = (Found) r;
        assertThat(f.commit().time()).isEqualTo(x.time());
        assertThat(f.lsn()).isEqualTo(f.commit().lsn()).isGreaterThan(x.before());
        assertThat(f.lsn()).isLessThanOrEqualTo(x.after());
        if (previous != null) {
          Result earlier = CommitTimestamps.lsnByTimestamp(timeline, x.time().minusNanos(1000));
          assertThat(earlier).isInstanceOf(Found.class);
          assertThat(((Found) earlier).lsn()).isEqualTo(previous);
        }
        previous = f.lsn();
      }
      Xact last = xacts.getLast();
      Lsn lastCommit = previous;
      assertThat(CommitTimestamps.lsnByTimestamp(timeline, last.time().plusMillis(1)))
          .isInstanceOfSatisfying(
              AfterEnd.class, a -> assertThat(a.lastCommit().lsn()).isEqualTo(lastCommit));
    }
  }
}
