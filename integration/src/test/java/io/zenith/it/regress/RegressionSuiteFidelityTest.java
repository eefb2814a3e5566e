package io.zenith.it.regress;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.ingest.DatadirImport;
import io.zenith.it.support.Basebackups;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
import io.zenith.pg.PgDistribution;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The redo-fidelity acceptance test (DESIGN §10): PostgreSQL 15's own regression suite runs against
 * a compute whose WAL streams to an in-process pageserver (its synchronous {@code remote_write}
 * standby); then the compute stops cleanly, and a basebackup at its final LSN must hold every page
 * of every relation file exactly as the compute's own files do (after the masking of DESIGN §6),
 * and a compute started from the pageserver must pass {@code pg_amcheck --heapallindexed}.
 *
 * <p>The suite (SQL, expected files, {@code regress.so}) comes from Debian's postgresql-15 source
 * package through {@code make deps} ({@link PgRegressSuite}). The same schedule runs on a vanilla
 * PostgreSQL 15 with the same settings in this test; a regression test may fail on the compute only
 * if it fails on vanilla with the same diff (e.g. expected files of a slightly older minor version
 * than the installed binaries, when Debian's mirror lacks the newest source).
 *
 * <p>Runs the whole {@code parallel_schedule}, {@value #MAX_CONNECTIONS} tests at a time (the
 * in-place tablespace of the {@code tablespace} test is gone again by the end, and nothing else
 * needs what Zenith lacks). The pageserver freezes its in-memory layer every 4 MiB and the compute
 * compresses full-page images with zstd, so that flushed layers and compressed images are on the
 * path. Besides relation pages, the WAL-only SLRUs and two-phase files are compared, and the
 * rebuilt compute's visibility map is checked with {@code pg_visibility}. Artifacts (both runs'
 * {@code regression.out}/{@code .diffs}, the comparison report, mismatching pages) go to {@code
 * target/pg-regress/}; {@code -Dzenith.regress.keepCompute=true} also keeps the compute's data
 * directory and WAL there.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@ExtendWith(NettyLeakCheck.Sampled.class)
class RegressionSuiteFidelityTest {
  static final TenantId TENANT = TenantId.generate();
  static final TimelineId MAIN = TimelineId.generate();
  private static final int MAX_CONNECTIONS = 2;

  /**
   * Settings of both the compute and the vanilla server (besides initdb's own postgresql.conf,
   * which the compute gets too): what the suite needs (prepared transactions), WAL as a compute
   * writes it for the pageserver, and no fsync.
   */
  private static final Map<String, String> SETTINGS =
      Map.of(
          "max_prepared_transactions", "10",
          "fsync", "off",
          "wal_compression", "zstd",
          "wal_log_hints", "on",
          "wal_level", "replica",
          "max_wal_senders", "4",
          "max_replication_slots", "4");

  /** Where this run's artifacts go. */
  Path artifacts() {
    return Path.of("target/pg-regress");
  }

  /**
   * The pageserver's settings: layers frozen every 4 MiB, so that flushed layers are on the path;
   * the history lifecycle at its defaults (a run this short compacts little and collects nothing).
   */
  PageserverConfig pageserverConfig() {
    return new PageserverConfig(
        "127.0.0.1:0", "127.0.0.1:0", "test", "4MiB", "10m", "60s", "256MiB", 2, "30s", true);
  }

  @TempDir static Path data;
  private Path work;
  Pageserver ps;
  private String initdbConf;
  private PgRegressSuite suite;
  private PgRegressSuite.Result vanilla;

  /**
   * Vanilla's outcome, the same for every variant of this test in one JVM: the suite runs on it
   * once (it takes a minute and a half on two cores).
   */
  private static PgRegressSuite.Result vanillaOnce;

  private PgRegressSuite.Result zenith;
  private PgCluster compute;
  private Lsn finalLsn;
  private Lsn importLsn;
  private Map<String, DataDirComparison.Sequence> sequences;

  @BeforeAll
  void runTheSuiteOnVanillaAndOnACompute() throws IOException {
    suite = PgRegressSuite.locate();
    System.out.printf(
        "regression suite of PostgreSQL %s (binaries %s)%n",
        suite.sourceVersion(), suite.binaryVersion());
    String schedule = "parallel_schedule";
    PgDistribution pg = PgDistribution.detect();
    // pg_regress runs as PostgreSQL's OS user, which cannot enter JUnit's private temp directory
    work = Files.createTempDirectory("zenith-regress-");
    pg.createOwnedDirectory(work);

    synchronized (RegressionSuiteFidelityTest.class) {
      if (vanillaOnce == null) {
        try (PgCluster plain = PgCluster.initdb("--data-checksums")) {
          plain.configure(SETTINGS).start();
          vanillaOnce =
              suite.run(
                  pg,
                  plain.port(),
                  schedule,
                  MAX_CONNECTIONS,
                  work.resolve("vanilla"),
                  artifacts().resolve("vanilla"));
        }
      }
      vanilla = vanillaOnce;
    }
    System.out.printf(
        "vanilla: %d tests in %d s, failed: %s%n",
        vanilla.outcomes().size(), vanilla.took().toSeconds(), vanilla.failed());

    try (PgCluster initdb = PgCluster.initdb("--data-checksums");
        LayerStore store = LayerStore.open(data.resolve("ps"), LayerStoreConfig.DEFAULT)) {
      store.createTenant(TENANT);
      importLsn = DatadirImport.run(store, TENANT, MAIN, initdb.dataDir()).lsn();
      initdbConf = Files.readString(initdb.dataDir().resolve("postgresql.conf"));
    }
    ps = Pageserver.start(data.resolve("ps"), pageserverConfig().validate());

    compute = fromBasebackup(null);
    compute
        .configure(SETTINGS)
        .configure(
            Map.of(
                "synchronous_standby_names", "pageserver",
                "synchronous_commit", "remote_write",
                // all of its WAL stays for pg_waldump (VmImageHoles)
                "wal_keep_size", "4GB"))
        .start();
    ps.startWalReceiver(
        TENANT,
        MAIN,
        ApiModel.WalSource.fromCompute(
            "127.0.0.1", compute.port(), "postgres", "pageserver", "pageserver"));
    zenith =
        suite.run(
            pg,
            compute.port(),
            schedule,
            MAX_CONNECTIONS,
            work.resolve("zenith"),
            artifacts().resolve("zenith"));
    System.out.printf(
        "zenith: %d tests in %d s, failed: %s%n",
        zenith.outcomes().size(), zenith.took().toSeconds(), zenith.failed());

    sequences = sequencesOf(compute);
    // A clean stop: the walsender sends everything up to the shutdown checkpoint and waits until
    // the pageserver reports it flushed.
    compute.stop();
    Lsn checkpoint = latestCheckpoint(compute);
    Timeline t = ps.store().timeline(TENANT, MAIN);
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (!t.position().prev().equals(checkpoint) && System.nanoTime() < deadline) {
      sleep(100);
    }
    assertThat(t.position().prev())
        .as("the last record the pageserver ingested is the compute's shutdown checkpoint")
        .isEqualTo(checkpoint);
    ps.stopWalReceiver(TENANT, MAIN);
    finalLsn = t.lastRecordLsn();
    System.out.printf(
        "compute stopped; shutdown checkpoint at %s, final LSN %s%n", checkpoint, finalLsn);
  }

  @AfterAll
  void stop() throws IOException, InterruptedException {
    if (compute != null && Boolean.getBoolean("zenith.regress.keepCompute")) {
      // for investigations: -Dzenith.regress.keepCompute=true keeps the data directory and WAL
      Path keep = artifacts().resolve("compute").toAbsolutePath();
      PgCluster.deleteTree(keep);
      new ProcessBuilder("cp", "-a", compute.dataDir().toString(), keep.toString())
          .inheritIO()
          .start()
          .waitFor();
    }
    if (compute != null) {
      compute.close();
    }
    if (ps != null) {
      ps.close();
    }
    if (work != null) {
      PgCluster.deleteTree(work);
    }
  }

  @Test
  void regressionTestsFailOnTheComputeOnlyAsTheyFailOnVanilla() {
    assertThat(zenith.outcomes().keySet())
        .as("tests run on the compute and on vanilla")
        .containsExactlyInAnyOrderElementsOf(vanilla.outcomes().keySet());
    List<String> both = new ArrayList<>();
    Map<String, String> zenithOnly = new LinkedHashMap<>();
    for (String test : zenith.failed()) {
      String vanillaOutcome = vanilla.outcomes().get(test);
      String ours = zenith.diffs().getOrDefault(test, "");
      String theirs = vanilla.diffs().getOrDefault(test, "");
      if (!"ok".equals(vanillaOutcome) && ours.equals(theirs)) {
        both.add(test);
      } else {
        zenithOnly.put(
            test,
            "ok".equals(vanillaOutcome)
                ? "passes on vanilla"
                : "fails on vanilla too, but differently");
      }
    }
    List<String> vanillaOnly =
        vanilla.failed().stream().filter(n -> !zenith.failed().contains(n)).toList();
    System.out.printf(
        "regression tests: %d run; failing on both (same diff): %s; only on the compute: %s;"
            + " only on vanilla: %s%n",
        zenith.outcomes().size(), both, zenithOnly, vanillaOnly);
    assertThat(zenithOnly)
        .as(
            "regression tests failing on the compute but not (the same way) on vanilla; diffs in"
                + " %s",
            artifacts().toAbsolutePath())
        .isEmpty();
  }

  @Test
  void everyPageOfEveryRelationEqualsTheComputesOwn() throws IOException {
    try (PgCluster rebuilt = fromBasebackup(finalLsn.toString())) {
      Set<String> vmHoles = VmImageHoles.scan(compute.distribution(), compute.walDir(), importLsn);
      DataDirComparison c =
          DataDirComparison.compare(
              compute.dataDir(),
              rebuilt.dataDir(),
              new DataDirComparison.Facts(sequences, vmHoles));
      String report =
          String.format(
              "pages compared: %d relation pages %s and %d SLRU pages in %d files; not"
                  + " WAL-logged, on one side only: %d zero pages,"
                  + " %d empty VM pages; sequences ahead: %d; VM pages whose bits the WAL lacks"
                  + " (PG15 CREATE DATABASE WAL_LOG): %d; mismatches: %d%n",
              c.pagesCompared,
              c.comparedByKind,
              c.slruPagesCompared,
              c.filesCompared,
              c.zeroTailPages,
              c.emptyVmPagesWithoutWal,
              c.sequencesAhead,
              c.vmBitsNotInWal.size(),
              c.mismatches.size());
      StringBuilder sb = new StringBuilder(report);
      c.vmBitsNotInWal.forEach(v -> sb.append("VM bits not in WAL: ").append(v).append('\n'));
      c.oneSidedWithoutWal.forEach(
          v -> sb.append("one side only, not WAL-logged: ").append(v).append('\n'));
      Files.createDirectories(artifacts().resolve("mismatches"));
      int saved = 0;
      for (DataDirComparison.Mismatch m : c.mismatches) {
        sb.append(m).append('\n');
        if (saved++ < 200 && m.block() >= 0) {
          byte[][] pages = c.pages(m);
          String base = m.file().replace('/', '_') + "_" + m.block();
          Files.write(artifacts().resolve("mismatches/" + base + ".basebackup"), pages[0]);
          Files.write(artifacts().resolve("mismatches/" + base + ".compute"), pages[1]);
        }
      }
      Files.writeString(artifacts().resolve("comparison.txt"), sb);
      System.out.print(report);
      c.mismatches.stream().limit(50).forEach(m -> System.out.println("  " + m));
      assertThat(c.mismatches)
          .as(
              "pages differing after masking, of %d compared (report in %s)",
              c.pagesCompared, artifacts().resolve("comparison.txt").toAbsolutePath())
          .isEmpty();
      assertThat(c.pagesCompared).isGreaterThan(10_000);
    }
  }

  @Test
  void amcheckAndPgVisibilityPassOnAComputeRebuiltFromThePageserver() {
    try (PgCluster fresh = fromBasebackup(null)) {
      fresh.configure(SETTINGS).start();
      String out =
          fresh.run(
              "pg_amcheck",
              List.of(
                  "--heapallindexed",
                  "--install-missing",
                  "--all",
                  "-h",
                  "127.0.0.1",
                  "-p",
                  Integer.toString(fresh.port()),
                  "-U",
                  "postgres"));
      assertThat(out).as("pg_amcheck output").isEmpty();
      assertThat(fresh.sql("regression", "SELECT count(*) > 100 FROM pg_class").trim())
          .isEqualTo("t");
      // The compute's own map hides map bugs; a rebuilt one must not claim what the heap denies.
      for (String db :
          fresh.sql("SELECT datname FROM pg_database WHERE datallowconn").split("\n")) {
        if (db.isBlank()) {
          continue;
        }
        String wrong =
            fresh.sql(
                db.trim(),
                """
                CREATE EXTENSION IF NOT EXISTS pg_visibility;
                SELECT count(*) FROM pg_class c,
                  LATERAL (SELECT * FROM pg_check_visible(c.oid)
                           UNION ALL SELECT * FROM pg_check_frozen(c.oid)) t
                WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence = 'p';
                """);
        assertThat(wrong.trim())
            .as("tuples of %s a visibility-map bit wrongly marks all-visible or frozen", db)
            .isEqualTo("0");
      }
    }
  }

  // ---------------------------------------------------------------- helpers

  /**
   * A data directory from the pageserver's basebackup at {@code lsn} (latest if null), with the
   * initdb's postgresql.conf (locale, text search and date settings the suite expects).
   */
  private PgCluster fromBasebackup(String lsn) {
    PgCluster c = Basebackups.fetch(ps.pgPort(), TENANT, MAIN, lsn, data);
    try {
      Files.writeString(c.dataDir().resolve("postgresql.conf"), initdbConf);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return c;
  }

  /** Every sequence of every database, by file: {@code base/<db oid>/<relfilenode>}. */
  private static Map<String, DataDirComparison.Sequence> sequencesOf(PgCluster c) {
    Map<String, DataDirComparison.Sequence> out = new LinkedHashMap<>();
    for (String db :
        c.sql("SELECT oid || ' ' || datname FROM pg_database WHERE datallowconn").split("\n")) {
      if (db.isBlank()) {
        continue;
      }
      String[] oidName = db.trim().split(" ", 2);
      String rows =
          c.sql(
              oidName[1],
              "SELECT pg_relation_filenode(seqrelid), seqincrement, seqcycle FROM pg_sequence");
      for (String row : rows.split("\n")) {
        if (row.isBlank()) {
          continue;
        }
        String[] f = row.trim().split("\\|");
        out.put(
            "base/" + oidName[0] + "/" + f[0],
            new DataDirComparison.Sequence(Long.parseLong(f[1]), f[2].equals("t")));
      }
    }
    return out;
  }

  private static final Pattern LATEST_CHECKPOINT =
      Pattern.compile("Latest checkpoint location:\\s+([0-9A-F]+/[0-9A-F]+)");

  private static Lsn latestCheckpoint(PgCluster c) {
    String out = c.run("pg_controldata", List.of("-D", c.dataDir().toString()));
    Matcher m = LATEST_CHECKPOINT.matcher(out);
    assertThat(m.find()).as("pg_controldata output:%n%s", out).isTrue();
    assertThat(out).contains("Database cluster state:               shut down");
    return Lsn.parse(m.group(1));
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
