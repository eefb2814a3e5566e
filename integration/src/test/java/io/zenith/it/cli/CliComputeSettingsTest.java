package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Compute settings through the real launcher: {@code pg create --config}, {@code pg config}, {@code
 * pg show}; settings and {@code ALTER SYSTEM} survive {@code pg stop} + {@code pg start} (the data
 * directory is rebuilt from a basebackup each time) and a crash; two-phase commit with {@code
 * max_prepared_transactions}; {@code pg_stat_statements} preloaded; settings the control plane owns
 * and malformed ones refused with one line; a quote in a value stays inside that value.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliComputeSettingsTest {
  /** A value that would add a line {@code fsync = on} if it were not quoted. */
  private static final String TRICKY = "it's x' fsync = 'on \\ end";

  private ZenithRepo z;

  @BeforeAll
  void init() throws IOException {
    z = new ZenithRepo(false);
    z.init();
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  @Test
  @Order(1)
  void ownedAndMalformedSettingsAreRefused() {
    for (String owned :
        new String[] {
          "fsync=on",
          "port=6000",
          "listen_addresses=*",
          "wal_level=logical",
          "max_wal_senders=20",
          "synchronous_standby_names=x",
          "synchronous_commit=off",
          "full_page_writes=off",
          "hot_standby=off",
          "primary_conninfo=host=x",
          "Synchronous_Commit=off"
        }) {
      String name = owned.substring(0, owned.indexOf('=')).toLowerCase(java.util.Locale.ROOT);
      assertThat(z.fails(1, "pg", "create", "x", "--config", owned))
          .isEqualTo(
              "zenith pg create: error: setting '"
                  + name
                  + "' is owned by the control plane and cannot be changed (see docs/cli.md,"
                  + " `zenith pg config`)");
    }
    assertThat(z.fails(2, "pg", "create", "x", "--config", "work_mem"))
        .isEqualTo("zenith pg create: error: invalid setting 'work_mem': expected NAME=VALUE");
    assertThat(z.fails(2, "pg", "create", "x", "--config", "work-mem=1MB"))
        .startsWith("zenith pg create: error: invalid setting name 'work-mem': expected");
    assertThat(z.fails(2, "pg", "create", "x", "--config", "a.b.c=1"))
        .startsWith("zenith pg create: error: invalid setting name 'a.b.c'");
    assertThat(z.fails(2, "pg", "create", "x", "--config", "work_mem=1MB\nfsync=off"))
        .isEqualTo(
            "zenith pg create: error: the value of setting 'work_mem' contains a control"
                + " character (a line break or tab); values are one line");
    assertThat(z.fails(1, "pg", "create", "x", "--config", "work_mme=1MB"))
        .isEqualTo(
            "zenith pg create: error: unknown setting 'work_mme' (see `postgres"
                + " --describe-config`)");
    assertThat(z.fails(1, "pg", "create", "x", "--config", "block_size=16384"))
        .isEqualTo(
            "zenith pg create: error: unknown setting 'block_size' (see `postgres"
                + " --describe-config`)");
    assertThat(z.ok("pg", "list").lines())
        .containsExactly("NODE  ADDRESS  BRANCH  LSN  STORAGE  STATUS");
  }

  @Test
  @Order(2)
  void settingsReachPostgresAndSurviveARestart() {
    ZenithRepo.Result created =
        z.ok(
            "pg",
            "create",
            "main",
            "--config",
            "max_prepared_transactions=10",
            "--config",
            "shared_preload_libraries=pg_stat_statements",
            "--config",
            "pg_stat_statements.track=all",
            "--config",
            "cluster_name=" + TRICKY);
    assertThat(created.out()).startsWith("created compute main on branch main (primary)");
    assertThat(z.show("main"))
        .containsEntry(
            "settings",
            "cluster_name='it''s x'' fsync = ''on \\\\ end' max_prepared_transactions=10"
                + " pg_stat_statements.track=all shared_preload_libraries=pg_stat_statements")
        .containsEntry("alter system", "-");
    List<String> table = z.ok("pg", "config", "main").lines();
    CliQuickStartTest.assertAligned(table);
    assertThat(cells(table))
        .containsExactly(
            List.of("SETTING", "VALUE", "SOURCE"),
            List.of("cluster_name", "'it''s x'' fsync = ''on \\\\ end'", "pg config"),
            List.of("max_prepared_transactions", "10", "pg config"),
            List.of("pg_stat_statements.track", "all", "pg config"),
            List.of("shared_preload_libraries", "pg_stat_statements", "pg config"));

    z.ok("start");
    int port = z.start("main");
    checkSettings(port);
    assertThat(twoPhaseCommit(port, 1)).isEqualTo("1|1");
    // a transaction prepared before the stop is still prepared after the start
    z.sql(port, "BEGIN; INSERT INTO tpc VALUES (100); PREPARE TRANSACTION 'across'");

    z.ok("pg", "stop", "main");
    port = z.start("main");
    checkSettings(port);
    assertThat(z.sql(port, "SELECT gid FROM pg_prepared_xacts")).isEqualTo("across");
    z.sql(port, "COMMIT PREPARED 'across'");
    assertThat(twoPhaseCommit(port, 2)).isEqualTo("3|103");
  }

  /** What {@code settingsReachPostgresAndSurviveARestart} set is in effect, extension included. */
  private void checkSettings(int port) {
    assertThat(z.sql(port, "SHOW max_prepared_transactions")).isEqualTo("10");
    assertThat(z.sql(port, "SHOW shared_preload_libraries")).isEqualTo("pg_stat_statements");
    // the quotes stayed inside the value, which added no line
    assertThat(z.sql(port, "SHOW cluster_name")).isEqualTo(TRICKY);
    assertThat(z.sql(port, "SHOW fsync")).isEqualTo("off");
    z.sql(port, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    z.sql(port, "SELECT 4242 AS marker");
    assertThat(
            z.sql(
                port, "SELECT count(*) > 0 FROM pg_stat_statements WHERE query LIKE '%AS marker%'"))
        .isEqualTo("t");
  }

  /**
   * PREPARE TRANSACTION then COMMIT PREPARED of row {@code id}, and a ROLLBACK PREPARED of another;
   * returns the number of rows and their sum.
   */
  private String twoPhaseCommit(int port, int id) {
    z.sql(port, "CREATE TABLE IF NOT EXISTS tpc(id int PRIMARY KEY)");
    z.sql(port, "BEGIN; INSERT INTO tpc VALUES (" + id + "); PREPARE TRANSACTION 'keep" + id + "'");
    z.sql(
        port, "BEGIN; INSERT INTO tpc VALUES (-" + id + "); PREPARE TRANSACTION 'drop" + id + "'");
    assertThat(z.sql(port, "SELECT gid FROM pg_prepared_xacts ORDER BY gid"))
        .isEqualTo("drop" + id + "\nkeep" + id);
    z.sql(port, "COMMIT PREPARED 'keep" + id + "'");
    z.sql(port, "ROLLBACK PREPARED 'drop" + id + "'");
    assertThat(z.sql(port, "SELECT count(*) FROM pg_prepared_xacts")).isEqualTo("0");
    return z.sql(port, "SELECT count(*), sum(id) FROM tpc");
  }

  @Test
  @Order(3)
  void alterSystemSurvivesAStopAndOwnedOnesAreDroppedWithAWarning() {
    int port = z.port("main");
    z.sql(port, "ALTER SYSTEM SET work_mem = '12MB'");
    z.sql(port, "ALTER SYSTEM SET max_prepared_transactions = 20");
    z.sql(port, "ALTER SYSTEM SET fsync = on");
    // a running compute's table shows its live ALTER SYSTEM settings
    assertThat(cells(z.ok("pg", "config", "main").lines()))
        .contains(
            List.of("fsync", "on", "ALTER SYSTEM"),
            List.of("max_prepared_transactions", "20", "ALTER SYSTEM"),
            List.of("work_mem", "12MB", "ALTER SYSTEM"));
    assertThat(z.fails(1, "pg", "config", "main", "--set", "work_mem=1MB"))
        .isEqualTo(
            "zenith pg config: error: compute 'main' is running: change its settings with ALTER"
                + " SYSTEM, or stop it first with `zenith pg stop main`");

    z.ok("pg", "stop", "main");
    assertThat(z.show("main"))
        .containsEntry("alter system", "fsync=on max_prepared_transactions=20 work_mem=12MB");
    ZenithRepo.Result started = z.ok("pg", "start", "main");
    assertThat(started.err())
        .isEqualTo(
            "warning: compute 'main': not restoring ALTER SYSTEM SET fsync: it is owned by the"
                + " control plane\n");
    port = ZenithRepo.portIn(started, "main");
    assertThat(z.sql(port, "SHOW work_mem")).isEqualTo("12MB");
    assertThat(z.sql(port, "SHOW max_prepared_transactions")).isEqualTo("20");
    assertThat(z.sql(port, "SHOW fsync")).isEqualTo("off");
    assertThat(z.show("main"))
        .containsEntry("alter system", "max_prepared_transactions=20 work_mem=12MB");
    // ALTER SYSTEM RESET falls back to the compute's own setting, as on any server
    z.sql(port, "ALTER SYSTEM RESET max_prepared_transactions");

    // a crash (no `zenith pg stop`): the next start keeps what the last run set
    z.sql(port, "ALTER SYSTEM SET work_mem = '13MB'");
    assertThat(ZenithRepo.sh("kill -9 $(head -1 " + pgdata() + "/postmaster.pid)")).isZero();
    port = awaitStart();
    assertThat(z.sql(port, "SHOW work_mem")).isEqualTo("13MB");
    assertThat(z.sql(port, "SHOW max_prepared_transactions")).isEqualTo("10");
  }

  /** {@code pg start} after a SIGKILL: bounded retries while the old postmaster's children exit. */
  private int awaitStart() {
    long deadline = System.nanoTime() + 60_000_000_000L;
    while (true) {
      ZenithRepo.Result r = z.run("pg", "start", "main");
      if (r.exit() == 0) {
        return ZenithRepo.portIn(r, "main");
      }
      assertThat(System.nanoTime()).as("pg start after a crash: %s", r).isLessThan(deadline);
      try {
        Thread.sleep(1000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError(e);
      }
    }
  }

  /** The cells of a table's rows (columns are two or more spaces apart). */
  private static List<List<String>> cells(List<String> table) {
    return table.stream().map(l -> List.of(l.split(" {2,}"))).toList();
  }

  private Path pgdata() {
    return Path.of(z.show("main").get("datadir"));
  }

  @Test
  @Order(4)
  void setAndUnsetOnAStoppedCompute() throws IOException {
    z.ok("pg", "stop", "main");
    assertThat(
            z.ok(
                    "pg",
                    "config",
                    "main",
                    "--set",
                    "work_mem=20MB",
                    "--unset",
                    "max_prepared_transactions",
                    "--unset",
                    "cluster_name")
                .lines())
        .containsExactly(
            "set work_mem = 20MB",
            "unset max_prepared_transactions",
            "unset cluster_name",
            "compute main uses its settings from its next `zenith pg start`");
    assertThat(z.fails(1, "pg", "config", "main", "--unset", "fsync"))
        .startsWith("zenith pg config: error: setting 'fsync' is owned by the control plane");
    assertThat(z.fails(1, "pg", "config", "main", "--unset", "temp_buffers"))
        .isEqualTo("zenith pg config: error: compute 'main' has no setting 'temp_buffers'");
    assertThat(z.fails(2, "pg", "config", "main", "--set", "x y=1"))
        .startsWith("zenith pg config: error: invalid setting name 'x y'");
    String toml = Files.readString(z.repo.resolve("computes/main/node.toml"));
    assertThat(toml).contains("[settings]").contains("\"work_mem\" = \"20MB\"");

    int port = z.start("main");
    assertThat(z.sql(port, "SHOW work_mem")).isEqualTo("20MB");
    assertThat(z.sql(port, "SHOW max_prepared_transactions")).isEqualTo("0");
    z.ok("pg", "stop", "main");

    // a value PostgreSQL refuses is found at start, with the way out in the message
    z.ok("pg", "config", "main", "--set", "shared_buffers=banana");
    assertThat(z.fails(1, "pg", "start", "main"))
        .startsWith("zenith pg start: error: compute 'main' did not start: ")
        .contains("invalid value for parameter \"shared_buffers\": \"banana\"")
        .endsWith("; its settings: `zenith pg config main`)");
    z.ok("pg", "config", "main", "--unset", "shared_buffers");
    assertThat(z.sql(z.start("main"), "SHOW shared_buffers")).isEqualTo("128MB");
    assertThat(z.show("main").get("settings"))
        .isEqualTo(
            "pg_stat_statements.track=all shared_preload_libraries=pg_stat_statements"
                + " work_mem=20MB");
  }
}
