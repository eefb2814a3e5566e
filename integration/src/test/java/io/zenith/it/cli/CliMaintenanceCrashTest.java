package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.control.PageserverClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.it.regress.DataDirComparison;
import io.zenith.layer.Seams;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Issue 11's crash safety of the history lifecycle, through the real {@code ./zenith} launcher: the
 * pageserver process is SIGKILLed at each seam of image creation, L0 compaction and GC ({@link
 * Seams.Seam}, {@code ZENITH_TEST_CRASH_AT}: the process kills itself with {@code kill -KILL} the
 * moment a maintenance pass reaches the seam), one seam per start, while pgbench's tpcb-like
 * workload runs on compute {@code main} through one safekeeper. The settings make every step happen
 * within seconds: a layer per MiB of WAL, images after 2 delta layers, L0 compaction at 3,
 * compaction and GC every second with a 2 MiB horizon.
 *
 * <p>Each start repairs what the previous crash left, and is checked as soon as it answers: the
 * timeline's directory holds exactly the layer files its index registers ({@code GET …/layer}), so
 * no entry names a missing file and no orphan file (nor a temporary one) from before the start
 * remains. (A start that dies at its own seam before the check leaves it to the next one, which
 * then covers both crashes.) After the last seam, a start without one is checked and catches up
 * with the safekeeper. At the end, after one more compaction and GC on request: pgbench saw no
 * error, images and L1 layers exist, and every page of every relation of the stopped compute equals
 * the one the pageserver exports at the compute's final LSN.
 */
@ExtendWith(NettyLeakCheck.Sampled.class)
class CliMaintenanceCrashTest {
  private static final Logger log = LoggerFactory.getLogger(CliMaintenanceCrashTest.class);
  private static final Duration T = Duration.ofSeconds(120);
  private static final String CRASH_AT = "ZENITH_TEST_CRASH_AT";

  @Test
  void aPageserverKilledAtEachMaintenanceSeamRestartsWithExactlyItsIndexedFilesAndTheSamePages()
      throws Exception {
    try (ZenithRepo z = new ZenithRepo(false)) {
      z.keepingLogsOnFailure("CliMaintenanceCrashTest", this::crashAtEverySeam);
    }
  }

  private void crashAtEverySeam(ZenithRepo z) throws Exception {
    z.init(1);
    for (Map.Entry<String, String> s :
        Map.of(
                "checkpoint_distance", "'1MiB'",
                "compaction_target_size", "'2MiB'",
                "compaction_threshold", "3",
                "image_creation_threshold", "2",
                "compaction_period", "'1s'",
                "gc_period", "'1s'",
                "gc_horizon", "'2MiB'",
                "pitr_interval", "'0s'")
            .entrySet()) {
      z.setPageserverOption(s.getKey(), s.getValue());
    }
    z.ok("start");
    // Full storage: pgbench runs on across pageserver stops and must see no error, which a lazy
    // compute's reads cannot promise (EIO after the agent's timeout, issue 13 point 6); and this
    // test's GC (2 MiB horizon, no PITR) removes the history at a lazy primary's start LSN, which
    // its agent reads at (ADR 0021, "Consequences").
    z.ok("pg", "create", "main", "--storage", "full");
    int port = z.start("main");
    Map<String, String> shown = z.show("main");
    TenantId tenant = TenantId.parse(shown.get("tenant"));
    TimelineId timeline = TimelineId.parse(shown.get("timeline"));
    Path dir = z.repo.resolve("pageserver/tenants/" + tenant + "/timelines/" + timeline);
    PageserverClient http =
        new PageserverClient(new InetSocketAddress("127.0.0.1", z.httpPort), z::adminToken);
    TimelinePositions positions = new TimelinePositions(z, 1, "main");

    CliSoakTest.PgbenchResult init = CliSoakTest.pgbench(z, port, T, "init", "-i", "-q", "-s", "2");
    assertThat(init.exit()).as(init.output()).isZero();
    Process pgbench = CliSoakTest.startPgbench(z, port, "run", "-c", "2", "-T", "1800");
    Instant restarted;
    try {
      // One start per seam: each start (with the next seam armed) first repairs what the last
      // crash left, which is checked as soon as it answers, then dies at its own seam.
      z.ok("pageserver", "stop");
      String after = "the first start";
      for (Seams.Seam seam : Seams.Seam.values()) {
        if (seam.remote()) {
          continue; // reached by uploads and remote deletions, not by maintenance (ADR 0024)
        }
        restarted = Instant.now();
        long s0 = System.nanoTime();
        long pid = startArmed(z, seam);
        long t0 = System.nanoTime();
        checkIfAlive(z, pid, http, tenant, timeline, dir, restarted, after);
        TimelinePositions.await(
            T,
            "the pageserver (pid " + pid + ") to reach seam " + seam.settingName() + " and die",
            () -> ZenithRepo.sh("kill -0 " + pid) != 0);
        assertThat(z.pageserverLog())
            .as("the pageserver's log says where it died")
            .contains("reached seam " + seam.settingName() + ": SIGKILL to pid " + pid);
        log.info(
            "seam {}: the start took {} s, the process died there {} s after it",
            seam.settingName(),
            secs(t0 - s0),
            secs(System.nanoTime() - t0));
        after = "the crash at " + seam.settingName();
        assertThat(pgbench.isAlive())
            .as("pgbench runs on (log: %s)", Files.readString(CliSoakTest.pgbenchLog(z, "run")))
            .isTrue();
      }
      restarted = Instant.now();
      z.ok("pageserver", "start");
      assertFilesAreTheIndexedOnes(http, tenant, timeline, dir, restarted, "after " + after);
      positions.awaitPageserver(positions.commitLsn().orElseThrow(), T);
    } finally {
      pgbench.destroy();
      pgbench.waitFor();
    }
    String pgbenchOut = Files.readString(CliSoakTest.pgbenchLog(z, "run"));
    assertThat(pgbenchOut).as("pgbench's output").doesNotContain("ERROR", "FATAL");

    z.ok("timeline", "compact", "main");
    z.ok("timeline", "gc", "main");
    assertFilesAreTheIndexedOnes(
        http, tenant, timeline, dir, restarted, "after compact and gc on request");
    ApiModel.LayerCounts layers = http.timeline(tenant, timeline).layers();
    log.info("layers at the end: {}", layers);
    assertThat(layers.image()).as("image layers").isPositive();
    assertThat(layers.l1()).as("L1 layers").isPositive();

    comparePages(z, positions);
  }

  /**
   * Starts the pageserver with {@code ZENITH_TEST_CRASH_AT=seam}; returns its pid. It may reach the
   * seam before it answers, and then {@code pageserver start} fails: its log must say so.
   */
  static long startArmed(ZenithRepo z, Seams.Seam seam) {
    ZenithRepo.Result started =
        z.runWith(Map.of(CRASH_AT, seam.settingName()), "pageserver", "start");
    if (started.exit() == 0) {
      return z.pageserverPid().orElseThrow();
    }
    // A failed start removes the pid file: the log names the process that died at the seam.
    Matcher died =
        Pattern.compile(
                "reached seam " + Pattern.quote(seam.settingName()) + ": SIGKILL to pid (\\d+)")
            .matcher(z.pageserverLog());
    assertThat(died.find())
        .as("pageserver start failed, and not at its seam: %s %s", started.out(), started.err())
        .isTrue();
    return Long.parseLong(died.group(1));
  }

  /**
   * {@link #assertFilesAreTheIndexedOnes} on a pageserver that may die at its armed seam meanwhile:
   * then the next start repairs both crashes' leftovers, and its check covers them.
   */
  private static void checkIfAlive(
      ZenithRepo z,
      long pid,
      PageserverClient http,
      TenantId tenant,
      TimelineId timeline,
      Path dir,
      Instant restarted,
      String after)
      throws Exception {
    try {
      assertFilesAreTheIndexedOnes(http, tenant, timeline, dir, restarted, "after " + after);
    } catch (RuntimeException | AssertionError e) {
      // A killed process stops answering before it is gone: until its parent reaps it, kill -0
      // still finds it. One that is still there after 10 s did not die.
      long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
      while (ZenithRepo.sh("kill -0 " + pid) == 0) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
        Thread.sleep(200);
      }
      log.info(
          "after {}: the pageserver died at its seam before the check; the next one covers it",
          after);
    }
  }

  private static double secs(long nanos) {
    return nanos / 1_000_000 / 1000.0;
  }

  /**
   * The timeline's directory holds exactly the layer files its index registers, apart from the
   * files maintenance passes and flushes of this process are writing: a file written since {@code
   * restarted} and not indexed (yet) is work in progress, one from before is an orphan of the
   * crash. An indexed file is never missing; a retire may delete one between the two listings, so a
   * difference must persist across 10 s of retries to count.
   */
  private static void assertFilesAreTheIndexedOnes(
      PageserverClient http,
      TenantId tenant,
      TimelineId timeline,
      Path dir,
      Instant restarted,
      String when)
      throws Exception {
    String last = "";
    long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
    do {
      Set<String> indexed =
          http.layers(tenant, timeline).layers().stream()
              .map(ApiModel.LayerFileEntry::fileName)
              .collect(Collectors.toCollection(TreeSet::new));
      Map<String, Instant> files = layerFiles(dir);
      Set<String> missing = new TreeSet<>(indexed);
      missing.removeAll(files.keySet());
      Set<String> orphans = new TreeSet<>();
      files.forEach(
          (name, written) -> {
            boolean layer = name.endsWith(".layer") && !indexed.contains(name);
            if ((layer || name.endsWith(".tmp")) && written.isBefore(restarted)) {
              orphans.add(name + " (written " + written + ")");
            }
          });
      if (missing.isEmpty() && orphans.isEmpty() && !indexed.isEmpty()) {
        log.info("{}: {} layer files indexed, each on disk; no orphan", when, indexed.size());
        return;
      }
      last =
          when
              + ": indexed but missing "
              + missing
              + "; from before the restart at "
              + restarted
              + " and not indexed "
              + orphans
              + " (indexed "
              + indexed.size()
              + ")";
      Thread.sleep(300);
    } while (System.nanoTime() < deadline);
    throw new AssertionError(last);
  }

  /** The layer files and temporary files of {@code dir}, with their modification times. */
  private static Map<String, Instant> layerFiles(Path dir) throws IOException {
    Map<String, Instant> out = new java.util.TreeMap<>();
    try (Stream<Path> s = Files.list(dir)) {
      for (Path p : s.toList()) {
        String n = p.getFileName().toString();
        if (n.endsWith(".layer") || n.endsWith(".tmp")) {
          try {
            out.put(n, Files.getLastModifiedTime(p).toInstant());
          } catch (java.nio.file.NoSuchFileException e) {
            // retired or renamed between the listing and the look: not there
          }
        }
      }
    }
    return out;
  }

  /**
   * Stops the compute cleanly, waits for the pageserver to ingest its shutdown checkpoint, exports
   * the branch there and compares every page.
   */
  static void comparePages(ZenithRepo z, TimelinePositions positions) throws IOException {
    Path computeDir = Path.of(z.show("main").get("datadir"));
    z.ok("pg", "stop", "main");
    positions.awaitPageserver(positions.commitLsn().orElseThrow(), T);
    Path out = Files.createTempDirectory("zenith-seams-export-").resolve("main");
    try {
      z.ok("export", "main", out.toString());
      DataDirComparison c =
          DataDirComparison.compare(
              computeDir, out, new DataDirComparison.Facts(Map.of(), Set.of()));
      log.info("pages compared: {}; mismatches: {}", c.pagesCompared, c.mismatches.size());
      assertThat(c.pagesCompared).isGreaterThan(1000);
      assertThat(c.mismatches).as("pages differing after masking").isEmpty();
    } finally {
      ZenithRepo.deleteTree(out.getParent());
    }
  }
}
