package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.wal.Lsn;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The pageserver killed with SIGKILL during a bulk load on a compute: commits wait while it is
 * down, it resumes ingest from its disk-consistent LSN when restarted, the load completes, and a
 * fresh compute sees every row the load reported committed. Then the RocksDB index is deleted while
 * everything is stopped: the pageserver rebuilds it from the layer files and serves the same data.
 * The repository has no safekeepers, so the pageserver is the compute's synchronous standby (with
 * safekeepers, commits do not wait for the pageserver).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliCrashRecoveryTest {
  private static final int BATCHES = 300;
  private static final int ROWS_PER_BATCH = 1000;
  private static final Pattern FLUSHED =
      Pattern.compile("flushed layer \\S+ of [0-9a-f]{32}/([0-9a-f]{32}): .* LSN \\S+\\.\\.(\\S+)");
  private static final Pattern STREAMING =
      Pattern.compile("streaming WAL of [0-9a-f]{32}/([0-9a-f]{32}) from \\S+ at (\\S+)");

  private ZenithRepo z;

  /** Compute main's port, from its first start. */
  private int mainPort;

  private String mainTimeline;
  private long committedRows;

  @BeforeAll
  void setUp() throws IOException {
    z = new ZenithRepo(false);
    z.init(0);
    // small in-memory layers: several are flushed during the load, before the kill
    z.setPageserverOption("checkpoint_distance", "'4MiB'");
    z.ok("start");
    z.ok("pg", "create", "main");
    mainPort = z.start("main");
    mainTimeline = z.show("main").get("timeline");
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  @Test
  @Order(1)
  void killingThePageserverDuringABulkLoadLosesNoCommittedRow() throws Exception {
    int port = mainPort;
    z.sql(port, "CREATE TABLE load(i int, pad text)");
    StringBuilder script = new StringBuilder();
    for (int k = 0; k < BATCHES; k++) {
      script
          .append("INSERT INTO load SELECT g, repeat('x', 200) FROM generate_series(")
          .append(k * ROWS_PER_BATCH + 1)
          .append(", ")
          .append((k + 1) * ROWS_PER_BATCH)
          .append(") g;\n");
    }
    Path sql = z.root.resolve("load.sql");
    Path out = z.root.resolve("load.out");
    Files.writeString(sql, script);
    // psql without -q prints "INSERT 0 1000" once each batch has committed (synchronously
    // replicated to the pageserver)
    List<String> cmd =
        List.of(
            z.pg.bin("psql").toString(),
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            Integer.toString(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-f",
            sql.toString());
    Process load =
        new ProcessBuilder(cmd)
            .redirectErrorStream(true)
            .redirectOutput(out.toFile())
            .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
            .start();
    try {
      awaitCommitted(out, 40, 120);
      long pid = z.pageserverPid().orElseThrow();
      assertThat(ZenithRepo.sh("kill -9 " + pid)).isZero();
      awaitDead(pid);
      Lsn durableBeforeKill = lastFlushed(z.pageserverLog());
      assertThat(durableBeforeKill).as("layers flushed before the kill").isNotNull();

      // while the pageserver is down, commits wait for their synchronous standby
      Thread.sleep(1000);
      int during = committed(out);
      Thread.sleep(3000);
      assertThat(committed(out)).as("commits while the pageserver is down").isEqualTo(during);
      assertThat(during).isLessThan(BATCHES);
      assertThat(load.isAlive()).isTrue();
      assertThat(z.status(3).out())
          .contains("pageserver:  stopped")
          .contains("safekeepers: none (the pageserver is each primary's synchronous standby)");

      int logLength = z.pageserverLog().length();
      assertThat(z.ok("pageserver", "start").out()).contains("starting the pageserver ... running");
      assertThat(load.waitFor(3, TimeUnit.MINUTES)).as("the load finished").isTrue();
      assertThat(load.exitValue()).as(Files.readString(out)).isZero();

      // ingest resumed from the disk-consistent LSN the pageserver had made durable: at least the
      // end of the last layer it logged as flushed (a flush may commit just before the kill
      // without getting to its log line)
      Matcher m = STREAMING.matcher(z.pageserverLog().substring(logLength));
      Lsn resumedAt = null;
      while (m.find() && resumedAt == null) {
        if (m.group(1).equals(mainTimeline)) {
          resumedAt = Lsn.parse(m.group(2));
        }
      }
      assertThat(resumedAt).as("restart streamed from").isGreaterThanOrEqualTo(durableBeforeKill);
    } finally {
      load.destroyForcibly();
    }
    committedRows = (long) committed(out) * ROWS_PER_BATCH;
    assertThat(committedRows).isEqualTo((long) BATCHES * ROWS_PER_BATCH);

    z.ok("pg", "stop", "main", "--destroy");
    z.ok("pg", "create", "main");
    assertThat(z.sql(z.start("main"), "SELECT count(*), count(DISTINCT i) FROM load"))
        .isEqualTo(committedRows + "|" + committedRows);
  }

  @Test
  @Order(2)
  void aDeletedIndexIsRebuiltFromTheLayerFiles() throws IOException {
    z.ok("stop");
    Path index = z.repo.resolve("pageserver/index");
    assertThat(index).isDirectory();
    ZenithRepo.deleteTree(index);
    int logLength = z.pageserverLog().length();
    z.ok("start");
    assertThat(index).isDirectory();
    assertThat(z.pageserverLog().substring(logLength))
        .contains("rebuilt the index of ")
        .contains("/" + mainTimeline + " from ");
    assertThat(z.sql(z.start("main"), "SELECT count(*), sum(i) FROM load"))
        .isEqualTo(committedRows + "|" + (committedRows * (committedRows + 1) / 2));
  }

  private static int committed(Path out) throws IOException {
    return (int) Files.readAllLines(out).stream().filter(l -> l.equals("INSERT 0 1000")).count();
  }

  private static void awaitCommitted(Path out, int batches, int seconds) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    while (committed(out) < batches) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("the load committed only " + committed(out) + " batches");
      }
      Thread.sleep(20);
    }
  }

  private static void awaitDead(long pid) throws InterruptedException {
    for (int i = 0;
        i < 500 && ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
        i++) {
      Thread.sleep(20);
    }
  }

  /** The end LSN of the last layer of main flushed according to {@code log}. */
  private Lsn lastFlushed(String log) {
    Matcher m = FLUSHED.matcher(log);
    Lsn last = null;
    while (m.find()) {
      if (m.group(1).equals(mainTimeline)) {
        Lsn l = Lsn.parse(m.group(2));
        if (last == null || l.isAfter(last)) {
          last = l;
        }
      }
    }
    return last;
  }
}
