package io.zenith.it.regress;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.layer.LayerStats;
import io.zenith.layer.Timeline;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The redo-fidelity acceptance test with the history churning (issue 11): layers frozen every MiB,
 * image layers once two delta layers cover a partition, L0 layers merged once there are three,
 * compaction every 2 s and GC every 3 s with a 16 MiB horizon and no PITR window. Image layers are
 * materialized by WAL redo while the suite runs and GC removes what they replace, so a page built
 * wrongly into an image, or a version GC drops too early, shows up as a mismatch against the
 * compute's own files or in {@code pg_amcheck}. Its pageserver ingests the same run of the suite as
 * the default variant's ({@link RegressionRun}). Its layer files are also evicted under a 4 MiB
 * budget (issue 12's eviction acceptance): every comparison reads what it needs back from remote
 * storage, a real s3proxy on loopback. Artifacts go to {@code target/pg-regress-churn/}.
 */
class RegressionSuiteFidelityUnderChurnTest extends RegressionSuiteFidelityTest {
  @Override
  Path artifacts() {
    return Path.of("target/pg-regress-churn");
  }

  @Override
  RegressionRun.Variant variant() {
    return RegressionRun.Variant.CHURN;
  }

  /** A compute from a full basebackup here: the default variant checks a lazy one. */
  @Override
  boolean lazyRebuild() {
    return false;
  }

  /** The churn happened: without it the comparisons above would prove nothing new. */
  @Test
  void imageLayersWereCreatedL0LayersMergedAndGarbageCollected() {
    Timeline t = ps.store().timeline(TENANT, MAIN);
    LayerStats s = t.layerStats();
    assertThat(s.images()).as("image layers: %s", s).isPositive();
    assertThat(s.l1()).as("L1 layers: %s", s).isPositive();
    assertThat(t.gcCutoff().isValid()).as("a GC cutoff was set").isTrue();
    String metrics = ps.scrapeMetrics();
    assertThat(metrics).containsPattern("zenith_gc_versions_removed_total\\{[^}]*\\} [1-9]");
    // and the layers lived under a budget: evicted, and read back when needed (issue 12)
    assertThat(metrics).containsPattern("zenith_layer_evictions_total(\\{[^}]*\\})? [1-9]");
    assertThat(metrics).containsPattern("zenith_layer_downloads_total(\\{[^}]*\\})? [1-9]");
    // what the budget cost (ADR 0027 quotes these): downloads from s3proxy and evictions
    metrics
        .lines()
        .filter(
            l -> l.matches("zenith_layer_(downloads|download_\\w+|evictions|evicted_\\w+)_total.*"))
        .forEach(System.out::println);
  }
}
