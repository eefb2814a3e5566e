package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.zenith.page.fuse.FuseSupport;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Lazy computes through the real launcher (issue 13 points 3, 4 and 6; ADR 0021): {@code pg create}
 * makes a lazy compute with {@code --storage lazy} and a full one by default (ADR 0021 point 6);
 * {@code pg list} (table and JSON) and {@code pg show} say which. A lazy compute runs pgbench on
 * its agent's mounts and a full compute of the same branch sees the same balances; {@code pg stop}
 * leaves no mount; the agent killed with SIGKILL stops its PostgreSQL and shows the compute as
 * failed, and {@code pg start} brings it back with its data. Real PostgreSQL, real FUSE.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class CliLazyComputeTest {
  private ZenithRepo z;

  @BeforeAll
  void init() {
    Optional<String> fuse = FuseSupport.unusable();
    assumeTrue(fuse.isEmpty(), () -> "FUSE is not usable here: " + fuse.orElse(""));
    try {
      z = new ZenithRepo(false);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    z.init();
    z.ok("start");
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  @Test
  void aLazyComputeRunsPgbenchLikeAFullComputeAndComesBackAfterItsAgentIsKilled() throws Exception {
    assertThat(z.ok("pg", "create", "lazy", "--storage", "lazy").out()).contains("storage lazy");
    // full is the default for now (ADR 0021 point 6)
    ZenithRepo.Result full = z.ok("pg", "create", "full");
    assertThat(full.out()).contains("storage full");
    assertThat(full.err()).isEmpty();
    assertThat(z.fails(2, "pg", "create", "x", "--storage", "fast"))
        .contains("storage must be lazy or full, not 'fast'");
    List<String> list = z.ok("pg", "list").lines();
    assertThat(list.get(0)).matches("NODE +ADDRESS +BRANCH +LSN +STORAGE +STATUS");
    assertThat(list).anyMatch(l -> l.matches("lazy +\\S+ +main +latest +lazy +stopped"));
    assertThat(list).anyMatch(l -> l.matches("full +\\S+ +main +latest +full +stopped"));
    ObjectMapper json = new ObjectMapper();
    List<String> kinds = new ArrayList<>();
    for (String l : z.ok("pg", "list", "--json").lines()) {
      JsonNode n = json.readTree(l);
      kinds.add(n.get("name").asText() + "=" + n.get("storage").asText());
    }
    assertThat(kinds).containsExactlyInAnyOrder("lazy=lazy", "full=full");

    // pgbench on the lazy compute's mounts
    ZenithRepo.Result started = z.ok("pg", "start", "lazy");
    assertThat(started.out())
        .contains("fetching slim basebackup")
        .contains("starting compute agent");
    int port = ZenithRepo.portIn(started, "lazy");
    assertThat(fuseMounts()).hasSize(2);
    pgbench(port, "-i", "-s", "1", "-q");
    pgbench(port, "-c", "2", "-T", "3", "-n");
    String sum = z.sql(port, "SELECT sum(abalance) FROM pgbench_accounts");
    String history = z.sql(port, "SELECT count(*), sum(delta) FROM pgbench_history");
    String lsn = z.sql(port, "SELECT pg_current_wal_lsn()");
    assertThat(z.show("lazy")).containsEntry("storage", "lazy").containsEntry("status", "running");
    z.ok("pg", "stop", "lazy");
    assertThat(fuseMounts()).isEmpty();

    // a full compute of the same branch sees the same balances
    int fullPort = z.start("full");
    assertThat(z.sql(fullPort, "SELECT sum(abalance) FROM pgbench_accounts")).isEqualTo(sum);
    z.sql(fullPort, "UPDATE pgbench_accounts SET abalance = abalance + 1000 WHERE aid <= 10");
    // a lazy read-only compute at the LSN where pgbench ended (the full one's start waited for
    // the pageserver to get there) sees pgbench's balances, not the full compute's update
    z.ok("pg", "create", "ro", "--lsn", lsn, "--storage", "lazy");
    int roPort = z.start("ro");
    assertThat(z.sql(roPort, "SELECT sum(abalance) FROM pgbench_accounts")).isEqualTo(sum);
    // it reads at its LSN, which its agent holds against GC; a primary's reads at the latest LSN
    assertThat(agentCommandLine("ro")).contains("--lsn " + lsn).doesNotContain("--primary");
    z.ok("pg", "stop", "ro");
    z.sql(fullPort, "UPDATE pgbench_accounts SET abalance = abalance - 1000 WHERE aid <= 10");
    z.ok("pg", "stop", "full");

    // the agent killed: PostgreSQL stopped, the compute failed, then started again
    port = z.start("lazy");
    assertThat(z.sql(port, "SELECT count(*), sum(delta) FROM pgbench_history")).isEqualTo(history);
    assertThat(agentCommandLine("lazy")).contains("--primary");
    Path agentDir = z.computeDataDir().resolve("lazy/agent");
    long agent = Long.parseLong(Files.readString(agentDir.resolve("ready")).strip());
    long postmaster = postmasterPid();
    assertThat(ZenithRepo.sh("kill -9 " + agent)).isZero();
    awaitGone(postmaster);
    Map<String, String> show = z.show("lazy");
    assertThat(show).containsEntry("status", "failed");
    assertThat(show.get("agent")).startsWith("failed: the compute agent exited with status 137");
    assertThat(z.ok("pg", "list").lines()).anyMatch(l -> l.matches("lazy .* lazy +failed"));
    assertThat(z.status(0).out()).contains("computes:    0 running, 3 stopped, 1 failed");
    assertThat(fuseMounts()).isEmpty();
    port = z.start("lazy");
    assertThat(z.sql(port, "SELECT sum(abalance) FROM pgbench_accounts")).isEqualTo(sum);
    z.sql(port, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 10");
    assertThat(z.show("lazy")).containsEntry("status", "running");
    z.ok("pg", "stop", "lazy");
    assertThat(fuseMounts()).isEmpty();
    assertThat(agentDir).doesNotExist();
  }

  /**
   * Issue 13's branch check at pgbench scale 10 ({@code -Dzenith.lazy.scale}: 100 in {@code make
   * test-long}) and its pageserver fault: a lazy compute on a new branch of a pgbench database
   * answers the parent's sum; the pageserver killed with SIGKILL while a scan on it reads pages it
   * has not seen makes that query fail with an ERROR or wait and finish after the restart, never
   * answer another sum, and the compute answers again afterwards.
   */
  @Test
  void aLazyBranchAnswersItsParentsSumAndAPageserverKillMidQueryNeverGivesWrongRows()
      throws Exception {
    int scale = Integer.getInteger("zenith.lazy.scale", 10);
    z.ok("branch", "bench10");
    z.ok("pg", "create", "parent10", "--branch", "bench10", "--storage", "lazy");
    int port = z.start("parent10");
    long started = System.nanoTime();
    pgbench(port, "-i", "-s", Integer.toString(scale), "-q");
    pgbench(port, "-c", "2", "-T", "2", "-n");
    System.out.printf(
        "pgbench -i -s %d and 2 s of tpcb-like on a lazy compute: %d ms%n",
        scale, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started));
    String sum = z.sql(port, "SELECT sum(abalance) FROM pgbench_accounts");
    assertThat(sum).isNotEqualTo("0");
    String lsn = z.sql(port, "SELECT pg_current_wal_lsn()");
    branchOnceIngested("child10", "bench10@" + lsn);
    z.ok("pg", "stop", "parent10", "--destroy");
    z.ok("pg", "create", "child10", "--branch", "child10", "--storage", "lazy");
    port = z.start("child10");
    // A scan of every row that sleeps 40 ms every scale × 1000 rows (4 s in all), of pages
    // nothing on this compute read before: its mounts are new, so they come from the pageserver.
    String slowScan =
        "SET max_parallel_workers_per_gather = 0;\n"
            + "SELECT sum(abalance) FROM pgbench_accounts"
            + (" WHERE aid % " + scale * 1000 + " <> 0 OR pg_sleep(0.04)::text = '';\n");
    Path out = Files.createTempFile("zenith-lazy-scan-", ".txt");
    Process scan =
        z.psqlCommand(port, "-f", "-")
            .redirectErrorStream(true)
            .redirectOutput(out.toFile())
            .start();
    try (var w = scan.getOutputStream()) {
      w.write(slowScan.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }
    try {
      Thread.sleep(1500); // pacing: the kill must land while the scan reads
      assertThat(scan.isAlive()).as("the scan still runs when the pageserver is killed").isTrue();
      long pageserver = z.pageserverPid().orElseThrow();
      assertThat(ZenithRepo.sh("kill -9 " + pageserver)).isZero();
      awaitGone(pageserver);
      assertThat(z.ok("pageserver", "start").out()).contains("running");
      assertThat(scan.waitFor(120, TimeUnit.SECONDS)).as("the scan ended").isTrue();
      String result = Files.readString(out).strip();
      System.out.printf(
          "the scan across the pageserver kill: exit %d: %s%n", scan.exitValue(), result);
      if (scan.exitValue() == 0) {
        assertThat(result).as("a scan that finished answers the sum").isEqualTo(sum);
      } else {
        assertThat(result).as("a scan that failed says why").contains("ERROR");
      }
    } finally {
      scan.destroyForcibly();
      Files.deleteIfExists(out);
    }
    // the compute is still up and reads again, with the right rows
    assertThat(z.show("child10")).containsEntry("status", "running");
    assertThat(z.sql(port, "SELECT sum(abalance) FROM pgbench_accounts")).isEqualTo(sum);
    z.ok("pg", "stop", "child10", "--destroy");
    assertThat(fuseMounts()).isEmpty();
  }

  /** Creates a branch at an LSN the pageserver may not have ingested yet (bounded: 60 s). */
  private void branchOnceIngested(String name, String at) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    ZenithRepo.Result r;
    while ((r = z.run("branch", name, at)).exit() != 0) {
      assertThat(System.nanoTime()).as("branch %s at %s: %s", name, at, r).isLessThan(deadline);
      Thread.sleep(200);
    }
  }

  private void pgbench(int port, String... args) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(z.pg.bin("pgbench").toString()));
    cmd.addAll(List.of(args));
    cmd.addAll(
        List.of("-h", "127.0.0.1", "-p", Integer.toString(port), "-U", "postgres", "postgres"));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    assertThat(p.waitFor(120, TimeUnit.SECONDS)).as("pgbench ended").isTrue();
    assertThat(p.exitValue()).as("pgbench %s\n%s", cmd, out).isZero();
  }

  /** The running agent's command line, from its ready file's pid. */
  private String agentCommandLine(String compute) throws IOException {
    Path ready = z.computeDataDir().resolve(compute + "/agent/ready");
    long pid = Long.parseLong(Files.readString(ready).strip());
    return ProcessHandle.of(pid).flatMap(p -> p.info().commandLine()).orElseThrow();
  }

  private long postmasterPid() throws IOException {
    Path pid = z.computeDataDir().resolve("lazy/pgdata/postmaster.pid");
    return Long.parseLong(Files.readAllLines(pid).get(0).strip());
  }

  /** Waits (bounded) until the watchdog has stopped the compute's PostgreSQL. */
  private static void awaitGone(long pid) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
      assertThat(System.nanoTime())
          .as("postmaster %d stopped within 30 s", pid)
          .isLessThan(deadline);
      Thread.sleep(100);
    }
  }

  /** Our FUSE mounts ({@code fuse.zenith}) under the test's directories. */
  private List<String> fuseMounts() throws IOException {
    return Files.readAllLines(Path.of("/proc/self/mountinfo")).stream()
        .filter(l -> l.contains(" - fuse.zenith "))
        .filter(
            l ->
                l.contains(" " + z.root.toAbsolutePath())
                    || l.contains(" " + z.computeDataDir().toAbsolutePath()))
        .toList();
  }
}
