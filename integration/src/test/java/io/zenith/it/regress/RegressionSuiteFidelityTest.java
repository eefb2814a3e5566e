package io.zenith.it.regress;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
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
 * <p>The compute is a lazy one (issue 13, {@link LazyRegressCompute}): its relation files are read
 * through its FUSE mounts (the pageserver's pages at the import LSN under its overlay) after the
 * stop, so the comparison covers the lazy read and write path as well as redo. The default
 * variant's {@code pg_amcheck} runs on a lazy primary at the final LSN (the read path {@code pg
 * start} uses), the churn variant's on a compute from a full basebackup.
 *
 * <p>The suite (SQL, expected files, {@code regress.so}) comes from Debian's postgresql-15 source
 * package through {@code make deps} ({@link PgRegressSuite}). The same schedule runs on a vanilla
 * PostgreSQL 15 with the same settings in this test; a regression test may fail on the compute only
 * if it fails on vanilla with the same diff (e.g. expected files of a slightly older minor version
 * than the installed binaries, when Debian's mirror lacks the newest source).
 *
 * <p>Runs the whole {@code parallel_schedule}, two tests at a time (the in-place tablespace of the
 * {@code tablespace} test is gone again by the end, and nothing else needs what Zenith lacks). The
 * pageserver freezes its in-memory layer every 4 MiB and the compute compresses full-page images
 * with zstd, so that flushed layers and compressed images are on the path. Besides relation pages,
 * the WAL-only SLRUs and two-phase files are compared, and the rebuilt compute's visibility map is
 * checked with {@code pg_visibility}.
 *
 * <p>The suite runs once per test JVM for every variant of this test ({@link RegressionRun}): the
 * compute streams to one pageserver per variant, each a synchronous standby, and each variant
 * checks its own pageserver against the same compute. Artifacts (both runs' {@code
 * regression.out}/{@code .diffs} under the first variant's directory, each variant's comparison
 * report and mismatching pages) go to {@code target/pg-regress/}; {@code
 * -Dzenith.regress.keepCompute=true} also keeps the compute's data directory and WAL there.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@ExtendWith(NettyLeakCheck.Sampled.class)
class RegressionSuiteFidelityTest {
  static final TenantId TENANT = RegressionRun.TENANT;
  static final TimelineId MAIN = RegressionRun.MAIN;

  /** Where this run's artifacts go. */
  Path artifacts() {
    return Path.of("target/pg-regress");
  }

  /** Which of the run's pageservers this test checks. */
  RegressionRun.Variant variant() {
    return RegressionRun.Variant.DEFAULT;
  }

  @TempDir static Path data;
  Pageserver ps;
  private RegressionRun run;
  private PgRegressSuite.Result vanilla;
  private PgRegressSuite.Result zenith;
  private PgCluster compute;
  private Lsn finalLsn;

  @BeforeAll
  void runTheSuiteOnVanillaAndOnACompute() throws IOException {
    run = RegressionRun.get(artifacts());
    System.out.print(RegressionRun.notes());
    vanilla = run.vanilla;
    zenith = run.zenith;
    compute = run.compute;
    ps = run.pageservers.get(variant());
    finalLsn = run.finalLsn.get(variant());
    System.out.printf(
        "pageserver %s (%s): final LSN %s%n", variant().standby(), variant().config, finalLsn);
  }

  @AfterAll
  void keepCompute() throws IOException, InterruptedException {
    if (compute != null && Boolean.getBoolean("zenith.regress.keepCompute")) {
      // for investigations: -Dzenith.regress.keepCompute=true keeps the data directory and WAL
      Path keep = artifacts().resolve("compute").toAbsolutePath();
      PgCluster.deleteTree(keep);
      new ProcessBuilder("cp", "-a", compute.dataDir().toString(), keep.toString())
          .inheritIO()
          .start()
          .waitFor();
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
      Set<String> vmHoles =
          VmImageHoles.scan(compute.distribution(), compute.walDir(), run.importLsn);
      DataDirComparison c =
          DataDirComparison.compare(
              compute.dataDir(),
              rebuilt.dataDir(),
              new DataDirComparison.Facts(run.sequences, vmHoles));
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

  /**
   * Whether the compute that {@code pg_amcheck} checks is a lazy one (a primary on mounts at the
   * latest LSN, as {@code pg start --storage lazy} makes it) rather than one from a full
   * basebackup.
   */
  boolean lazyRebuild() {
    return true;
  }

  @Test
  void amcheckAndPgVisibilityPassOnAComputeRebuiltFromThePageserver() throws IOException {
    if (lazyRebuild()) {
      Lsn latest = ps.store().timeline(TENANT, MAIN).lastRecordLsn();
      try (LazyRegressCompute lazy =
          LazyRegressCompute.mount(ps, latest, true, data, run.initdbConf)) {
        amcheckAndPgVisibility(lazy.cluster());
      }
    } else {
      try (PgCluster fresh = fromBasebackup(null)) {
        amcheckAndPgVisibility(fresh);
      }
    }
  }

  private void amcheckAndPgVisibility(PgCluster fresh) {
    fresh.configure(RegressionRun.SETTINGS).start();
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
    for (String db : fresh.sql("SELECT datname FROM pg_database WHERE datallowconn").split("\n")) {
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

  // ---------------------------------------------------------------- helpers

  /**
   * A data directory from this test's pageserver's basebackup at {@code lsn} (latest if null), with
   * the initdb's postgresql.conf (locale, text search and date settings the suite expects).
   */
  private PgCluster fromBasebackup(String lsn) {
    return RegressionRun.fromBasebackup(ps, lsn, data, run.initdbConf);
  }
}
