package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.safekeeper.SafekeeperApiModel.TimelineInfo;
import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.gateway.safekeeper.SafekeeperSettings;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Three safekeepers managed through the real {@code ./zenith} launcher, one process per command:
 * init lays them out, {@code start}/{@code stop} include them, {@code pg start} elects a term and
 * makes them the primary's synchronous quorum (commits go on with two of three and wait with one),
 * {@code pg stop} tells every safekeeper that the compute stopped (none pulls from it any more), a
 * rebuilt compute gets a new term and sees every committed row, {@code pg stop} does not hang with
 * every safekeeper down (one warning line each), and {@code status} shows it all in aligned tables.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliSafekeepersTest {
  private ZenithRepo z;

  @BeforeAll
  void init() throws IOException {
    z = new ZenithRepo(false);
    assertThat(z.init(3).out()).contains("branch main, 3 safekeepers; next: zenith start");
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  @Test
  @Order(1)
  void initLaysOutTheSafekeepersAndBadIdsAreRefused() throws IOException {
    String config = Files.readString(z.repo.resolve("config.toml"));
    for (int id = 1; id <= 3; id++) {
      assertThat(config)
          .contains(
              "[[safekeepers]]\nid = "
                  + id
                  + "\nlisten_http = \"127.0.0.1:"
                  + z.safekeeperHttpPort(id)
                  + "\"\nlisten_pg = \"127.0.0.1:"
                  + (z.safekeeperHttpPort(id) + 1)
                  + "\"");
      SafekeeperSettings own = SafekeeperSettings.load(z.repo.resolve("safekeepers/sk" + id));
      assertThat(own.id()).isEqualTo(id);
      assertThat(own.httpAddress().getPort()).isEqualTo(z.safekeeperHttpPort(id));
      assertThat(own.pgAddress().getPort()).isEqualTo(z.safekeeperHttpPort(id) + 1);
      // every other safekeeper is a peer, itself is not
      int self = id;
      assertThat(own.peers())
          .extracting(p -> p.id() + " " + p.httpAddress().getPort())
          .containsExactlyElementsOf(
              IntStream.rangeClosed(1, 3)
                  .filter(p -> p != self)
                  .mapToObj(p -> p + " " + z.safekeeperHttpPort(p))
                  .toList());
    }
    assertThat(z.fails(1, "safekeeper", "stop", "9"))
        .isEqualTo("zenith safekeeper stop: error: unknown safekeeper 9 (safekeepers: 1, 2, 3)");
    assertThat(z.fails(1, "safekeeper", "start", "0"))
        .isEqualTo("zenith safekeeper start: error: unknown safekeeper 0 (safekeepers: 1, 2, 3)");
    assertThat(z.fails(1, "safekeeper", "stop", "2"))
        .isEqualTo("zenith safekeeper stop: error: safekeeper 2 is not running");
    assertThat(z.fails(2, "safekeeper", "start", "two")).contains("'two' is not an int");
    assertThat(z.fails(2, "safekeeper", "restart")).contains("Missing required parameter");
    Path other = z.root.resolve("other");
    assertThat(z.runIn(other, "init", "--safekeepers", "8").exit()).isEqualTo(2);
    assertThat(z.runIn(other, "init", "--safekeepers", "8").err())
        .startsWith("zenith init: error: --safekeepers must be between 0 and 7");
    assertThat(other).doesNotExist();
  }

  @Test
  @Order(2)
  void startStartsThePageserverAndEverySafekeeper() {
    String out = z.ok("start").out();
    assertThat(out)
        .contains("starting the pageserver ... running (pid ")
        .containsPattern(
            "starting safekeeper 1 \\.\\.\\. running \\(pid \\d+\\) after [\\d.]+ s: http"
                + " 127\\.0\\.0\\.1:"
                + z.safekeeperHttpPort(1)
                + ", libpq 127\\.0\\.0\\.1:"
                + (z.safekeeperHttpPort(1) + 1)
                + ", log .*safekeepers/sk1/safekeeper\\.log")
        .contains("starting safekeeper 2 ... running (pid ")
        .contains("starting safekeeper 3 ... running (pid ");
    List<String> again = z.ok("start").lines();
    assertThat(again.get(0)).startsWith("pageserver is already running (pid ");
    assertThat(again.get(3)).startsWith("safekeeper 3 is already running (pid ");
    assertThat(z.safekeeperPid(2)).isPresent();

    List<String> status = z.ok("status").lines();
    assertThat(status.get(4)).isEqualTo("safekeepers: 3 of 3 running (commits need 2)");
    List<String> table = status.subList(status.indexOf("") + 1, status.size());
    assertThat(table.get(0))
        .matches("SAFEKEEPER {2}ADDRESS +LIBPQ +STATUS +BRANCH +TERM +FLUSH LSN +COMMIT LSN");
    assertThat(table).hasSize(4);
    assertThat(table.get(2))
        .matches(
            "2 +127\\.0\\.0\\.1:" + z.safekeeperHttpPort(2) + " +127\\.0\\.0\\.1:\\d+ +running");
  }

  @Test
  @Order(3)
  void aPrimaryIsElectedAndCommitsWithAMajority() throws Exception {
    z.ok("pg", "create", "main");
    ZenithRepo.Result startedMain = z.ok("pg", "start", "main");
    String started = startedMain.out();
    assertThat(started)
        .containsPattern(
            "electing a term of branch main among safekeepers 1, 2, 3 \\(majority 2\\) \\.\\.\\."
                + " term 1, WAL up to \\d+/[0-9A-F]+ \\(donor safekeeper \\d, voters 1, 2, 3\\)")
        .containsPattern(
            "compute main is running as the primary of branch main \\(from \\S+, term 1\\)");
    assertThat(z.show("main")).containsEntry("term", "1");
    String conf =
        Files.readString(Path.of(z.show("main").get("datadir")).resolve("postgresql.conf"));
    assertThat(conf)
        .contains("synchronous_standby_names = 'ANY 2 (sk_1, sk_2, sk_3)'")
        .contains("synchronous_commit = on")
        .contains("fsync = off")
        .contains("max_slot_wal_keep_size = 1GB")
        .doesNotContain("'pageserver'");
    int port = ZenithRepo.portIn(startedMain, "main");
    z.sql(port, "CREATE TABLE t(id int PRIMARY KEY, v text)");
    z.sql(port, "INSERT INTO t SELECT g, 'three' FROM generate_series(1, 100) g");
    assertThat(
            z.sql(
                port,
                "SELECT string_agg(application_name, ',' ORDER BY application_name)"
                    + " FROM pg_stat_replication WHERE sync_state = 'quorum'"))
        .isEqualTo("sk_1,sk_2,sk_3");

    List<String> status = z.ok("status").lines();
    int computes = status.indexOf("") + 1;
    assertThat(status.get(computes)).matches("NODE +ADDRESS +BRANCH +LSN +STORAGE +STATUS +TERM");
    assertThat(status.get(computes + 1))
        .matches("main +127\\.0\\.0\\.1:\\d+ +main +\\S+ +full +running +1");
    List<String> sks = status.subList(status.lastIndexOf("") + 1, status.size());
    assertThat(sks).hasSize(4);
    for (String row : sks.subList(1, 4)) {
      assertThat(row).matches("\\d +\\S+ +\\S+ +running +main +1 +\\d+/[0-9A-F]+ +\\d+/[0-9A-F]+");
    }
    CliQuickStartTest.assertAligned(status.subList(computes, computes + 2));
    CliQuickStartTest.assertAligned(sks);

    // one of three down: the other two are a majority
    assertThat(z.ok("safekeeper", "stop", "1").out()).isEqualTo("stopped safekeeper 1\n");
    z.sql(port, "INSERT INTO t SELECT g, 'two' FROM generate_series(101, 200) g");
    assertThat(z.status(3).out()).contains("safekeepers: 2 of 3 running (commits need 2)");

    // two of three down: a commit waits, without an error ...
    z.ok("safekeeper", "stop", "2");
    CompletableFuture<ZenithRepo.PsqlResult> blocked =
        CompletableFuture.supplyAsync(
            () -> z.psql(port, "INSERT INTO t SELECT g, 'one' FROM generate_series(201, 300) g"));
    Thread.sleep(4000);
    assertThat(blocked).as("a commit with one safekeeper of three").isNotDone();
    // ... until a majority is back
    assertThat(z.ok("safekeeper", "start", "2").out())
        .startsWith("starting safekeeper 2 ... running");
    ZenithRepo.PsqlResult r = blocked.get(60, TimeUnit.SECONDS);
    assertThat(r.exit()).as(r.output()).isZero();
    assertThat(r.output()).doesNotContain("WARNING").doesNotContain("ERROR");
    z.ok("safekeeper", "start", "1");
    assertThat(z.sql(port, "SELECT count(*) FROM t")).isEqualTo("300");
  }

  /** What safekeeper {@code id} says about the timeline of the compute {@code shown}. */
  private TimelineInfo safekeeperTimeline(int id, Map<String, String> shown) {
    return new SafekeeperClient(
            id,
            new InetSocketAddress("127.0.0.1", z.safekeeperHttpPort(id)),
            Duration.ofSeconds(10),
            z::adminToken)
        .timeline(TenantId.parse(shown.get("tenant")), TimelineId.parse(shown.get("timeline")));
  }

  @Test
  @Order(4)
  void aRebuiltPrimaryGetsANewTermAndEveryRow() {
    Map<String, String> shown = z.show("main");
    ZenithRepo.Result stopped = z.ok("pg", "stop", "main", "--destroy");
    assertThat(stopped.out()).isEqualTo("stopped compute main\ndestroyed compute main\n");
    assertThat(stopped.err()).isEmpty();
    // Every safekeeper was told: none pulls from the stopped compute any more.
    for (int id = 1; id <= 3; id++) {
      TimelineInfo t = safekeeperTimeline(id, shown);
      assertThat(t.compute()).as("safekeeper %d: %s", id, t).isNull();
      assertThat(t.intake()).as("safekeeper %d: %s", id, t).isEqualTo("idle");
      assertThat(t.stoppedComputeTerm()).isEqualTo(1);
      assertThat(t.term()).isEqualTo(1);
    }
    z.ok("pg", "create", "main");
    ZenithRepo.Result started = z.ok("pg", "start", "main");
    assertThat(started.out()).contains("term 2");
    assertThat(z.show("main")).containsEntry("term", "2");
    int port = ZenithRepo.portIn(started, "main");
    assertThat(z.sql(port, "SELECT count(*), sum(id) FROM t")).isEqualTo("300|45150");
    z.sql(port, "INSERT INTO t VALUES (301, 'term 2')");
    List<String> status = z.ok("status").lines();
    assertThat(status)
        .anyMatch(l -> l.matches("main +127\\.0\\.0\\.1:\\d+ +main +\\S+ +full +running +2"));
    assertThat(status.stream().filter(l -> l.matches("\\d +\\S+ +\\S+ +running +main +2 .*")))
        .hasSize(3);
  }

  @Test
  @Order(5)
  void withEverySafekeeperDownStopDoesNotHangAndStartSaysWhoIsMissing() {
    for (int id = 1; id <= 3; id++) {
      z.ok("safekeeper", "stop", Integer.toString(id));
    }
    long t0 = System.nanoTime();
    ZenithRepo.Result stopped = z.ok("pg", "stop", "main");
    assertThat(stopped.out()).endsWith("stopped compute main\n");
    assertThat(System.nanoTime() - t0).isLessThan(TimeUnit.SECONDS.toNanos(60));
    // One warning line per safekeeper that could not be told that the compute stopped.
    assertThat(stopped.err().lines())
        .containsExactlyElementsOf(
            IntStream.rangeClosed(1, 3)
                .mapToObj(
                    id ->
                        "warning: could not tell safekeeper "
                            + id
                            + " that compute 'main' (term 2) stopped: safekeeper "
                            + id
                            + " is not running (nothing answers at http://127.0.0.1:"
                            + z.safekeeperHttpPort(id)
                            + "); start it with `zenith safekeeper start "
                            + id
                            + "`")
                .toList());
    assertThat(z.show("main")).containsEntry("term", "-").containsEntry("status", "stopped");

    String error = z.fails(1, "pg", "start", "main");
    assertThat(error)
        .startsWith(
            "zenith pg start: error: cannot start compute 'main': 3 of 3 safekeepers do not"
                + " answer and a majority (2) must: safekeeper 1: safekeeper 1 is not running"
                + " (nothing answers at http://127.0.0.1:"
                + z.safekeeperHttpPort(1)
                + "); start it with `zenith safekeeper start 1`; safekeeper 2: ");
    assertThat(z.show("main")).containsEntry("status", "stopped");
  }

  @Test
  @Order(6)
  void stopStopsComputesThenThePageserverThenTheSafekeepers() {
    z.ok("start");
    assertThat(z.sql(z.start("main"), "SELECT count(*) FROM t")).isEqualTo("301");
    ZenithRepo.Result stop = z.ok("stop");
    assertThat(stop.err()).isEmpty();
    assertThat(stop.lines())
        .containsExactly(
            "stopped compute main",
            "stopped the pageserver",
            "stopped safekeeper 1",
            "stopped safekeeper 2",
            "stopped safekeeper 3");
    for (int id = 1; id <= 3; id++) {
      assertThat(z.safekeeperPid(id)).isEmpty();
    }
    assertThat(z.status(3).out()).contains("safekeepers: 0 of 3 running (commits need 2)");
  }
}
