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
