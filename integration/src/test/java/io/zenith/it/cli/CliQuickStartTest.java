package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The README quick start through the real {@code ./zenith} launcher, one process per command: init,
 * start, a compute, rows that survive destroying and recreating it; the output formats of {@code pg
 * list}/{@code pg show}/{@code status}; {@code export} run by plain {@code pg_ctl}; {@code layer
 * dump}; and the errors a user meets first. The repository lives in a 0700 temp directory, so
 * computes go to the /tmp fallback.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliQuickStartTest {
  private ZenithRepo z;

  @BeforeAll
  void init() throws IOException {
    z = new ZenithRepo(false);
    ZenithRepo.Result r = z.init();
    assertThat(r.out())
        .contains("initializing repository " + z.repo)
        .containsPattern("running initdb .* done")
        .containsPattern("importing it into the pageserver as branch main \\.\\.\\. \\d+ relations")
        .contains("repository ready");
    // the repository's own remote storage, named relative to each data directory (ADR 0022)
    assertThat(z.repo.resolve("remote")).isDirectory();
    assertThat(Files.readString(z.repo.resolve("pageserver/pageserver.toml")))
        .contains("remote_storage.local_path = '../remote'");
    assertThat(Files.readString(z.repo.resolve("safekeepers/sk1/safekeeper.toml")))
        .contains("remote_storage.local_path = '../../remote'");
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  @Test
  @Order(1)
  void errorsBeforeAnythingRuns() throws IOException {
    assertThat(z.fails(1, "init")).startsWith("zenith init: error: a repository already exists at");
    assertThat(z.runIn(z.root.resolve("nowhere"), "pg", "list").err())
        .startsWith("zenith pg list: error: no Zenith repository at " + z.root.resolve("nowhere"))
        .contains("zenith init");
    z.ok("pg", "create", "main");
    assertThat(z.fails(1, "pg", "start", "main"))
        .isEqualTo(
            "zenith pg start: error: the pageserver is not running (nothing answers at"
                + " http://127.0.0.1:"
                + z.httpPort
                + "); start it with `zenith start`");
    assertThat(z.fails(1, "pg", "create", "main"))
        .isEqualTo("zenith pg create: error: compute 'main' already exists (see `zenith pg list`)");
    assertThat(z.fails(1, "pg", "create", "x", "--branch", "nosuch"))
        .isEqualTo("zenith pg create: error: unknown branch 'nosuch' (branches: main)");
    assertThat(z.fails(1, "pg", "start", "nosuch"))
        .isEqualTo("zenith pg start: error: unknown compute 'nosuch' (computes: main)");
    assertThat(z.fails(1, "pg", "create", "Bad Name")).contains("invalid compute name 'Bad Name'");
    assertThat(z.fails(2, "pg", "create", "x", "--lsn", "12")).contains("invalid LSN '12'");
    assertThat(z.fails(2, "pg", "frobnicate")).contains("Unmatched argument");
    try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      assertThat(z.fails(1, "pg", "create", "x", "--port", Integer.toString(taken.getLocalPort())))
          .isEqualTo(
              "zenith pg create: error: port "
                  + taken.getLocalPort()
                  + " is in use by another program; choose another with --port");
    }
    assertThat(z.fails(1, "pageserver", "stop"))
        .isEqualTo("zenith pageserver stop: error: the pageserver is not running");
  }

  @Test
  @Order(2)
  void everyCommandHasHelp() {
    // in this JVM: help does not depend on the launcher, which the other tests exercise
    for (List<String> cmd :
        List.<List<String>>of(
            List.of(),
            List.of("init"),
            List.of("start"),
            List.of("stop"),
            List.of("status"),
            List.of("pageserver"),
            List.of("pageserver", "start"),
            List.of("pageserver", "stop"),
            List.of("pageserver", "restart"),
            List.of("pageserver", "run"),
            List.of("safekeeper"),
            List.of("safekeeper", "start"),
            List.of("safekeeper", "stop"),
            List.of("safekeeper", "restart"),
            List.of("safekeeper", "run"),
            List.of("pg"),
            List.of("pg", "create"),
            List.of("pg", "start"),
            List.of("pg", "stop"),
            List.of("pg", "list"),
            List.of("pg", "show"),
            List.of("pg", "config"),
            List.of("compute"),
            List.of("compute", "agent"),
            List.of("branch"),
            List.of("branch", "list"),
            List.of("branch", "delete"),
            List.of("export"),
            List.of("tenant", "list"),
            List.of("tenant", "create"),
            List.of("tenant", "delete"),
            List.of("layer", "dump"))) {
      String[] args = Stream.concat(cmd.stream(), Stream.of("--help")).toArray(String[]::new);
      java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
      java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
      int exit;
      try (java.io.PrintStream o =
              new java.io.PrintStream(out, true, java.nio.charset.StandardCharsets.UTF_8);
          java.io.PrintStream e =
              new java.io.PrintStream(err, true, java.nio.charset.StandardCharsets.UTF_8)) {
        exit = io.zenith.gateway.cli.Main.run(args, o, e);
      }
      assertThat(exit).as("exit of %s --help: %s", cmd, err).isZero();
      assertThat(out.toString(java.nio.charset.StandardCharsets.UTF_8))
          .as("help of %s", cmd)
          .startsWith("Usage: zenith" + (cmd.isEmpty() ? "" : " " + String.join(" ", cmd)));
    }
  }

  @Test
  @Order(3)
  void quickStartRowsSurviveDestroyingAndRecreatingTheCompute() throws IOException {
    ZenithRepo.Result started = z.ok("start");
    assertThat(started.out())
        .containsPattern("starting the pageserver \\.\\.\\. running \\(pid \\d+\\)")
        .contains("http 127.0.0.1:" + z.httpPort);
    String remote = "remote storage is local directory " + z.repo.resolve("remote");
    assertThat(z.pageserverLog()).contains("pageserver: " + remote);
    assertThat(Files.readString(z.repo.resolve("safekeepers/sk1/safekeeper.log")))
        .contains("safekeeper 1: " + remote);
    assertThat(z.ok("start").out()).startsWith("pageserver is already running (pid ");
    ZenithRepo.Result s = z.ok("pg", "start", "main");
    assertThat(s.out())
        .containsPattern("fetching basebackup of main at \\d+/[0-9A-F]+ \\.\\.\\. .*\\d+ MB")
        .containsPattern(
            "electing a term of branch main on safekeeper 1 \\.\\.\\. term 1, WAL up to \\S+"
                + " \\(donor safekeeper 1, voters 1\\)")
        .contains("compute main is running as the primary of branch main (from ")
        .contains("psql postgresql://postgres@127.0.0.1:" + z.computePortBase + "/postgres");
    int port = z.port("main");
    assertThat(port).isEqualTo(z.computePortBase);
    assertThat(z.fails(1, "pg", "start", "main"))
        .startsWith("zenith pg start: error: compute 'main' is already running (pid ");

    z.sql(port, "CREATE TABLE t(id int PRIMARY KEY, v text)");
    z.sql(port, "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g");

    assertThat(z.ok("pg", "stop", "main", "--destroy").out())
        .isEqualTo("stopped compute main\ndestroyed compute main\n");
    assertThat(z.ok("pg", "list").lines())
        .containsExactly("NODE  ADDRESS  BRANCH  LSN  STORAGE  STATUS");
    z.ok("pg", "create", "main");
    assertThat(z.sql(z.start("main"), "SELECT count(*), sum(id) FROM t")).isEqualTo("1000|500500");
  }

  @Test
  @Order(4)
  void listShowAndStatusFormats() throws IOException {
    z.ok("pg", "create", "spare", "--port", Integer.toString(z.computePortBase + 5));
    List<String> list = z.ok("pg", "list").lines();
    assertThat(list).hasSize(3);
    assertThat(list.get(0)).matches("NODE {3}ADDRESS {10}BRANCH {2}LSN +STORAGE +STATUS");
    assertThat(list.get(1))
        .matches(
            "main {3}127\\.0\\.0\\.1:"
                + z.computePortBase
                + " {2}main {4}\\d+/[0-9A-F]+ +full +running");
    assertThat(list.get(2))
        .matches(
            "spare {2}127\\.0\\.0\\.1:"
                + (z.computePortBase + 5)
                + " {2}main {4}latest +full +stopped");
    assertAligned(list);

    Map<String, String> show = z.show("main");
    assertThat(show.keySet())
        .containsExactly(
            "node",
            "tenant",
            "timeline",
            "branch",
            "lsn",
            "mode",
            "term",
            "address",
            "storage",
            "status",
            "datadir",
            "log",
            "settings",
            "alter system");
    assertThat(show)
        .containsEntry("node", "main")
        .containsEntry("branch", "main")
        .containsEntry("mode", "primary")
        .containsEntry("term", "2") // the second start of a primary on main
        .containsEntry("address", "127.0.0.1:" + z.computePortBase)
        .containsEntry("status", "running")
        .containsEntry("settings", "-")
        .containsEntry("alter system", "-");
    assertThat(show.get("tenant")).matches("[0-9a-f]{32}");
    assertThat(show.get("timeline")).matches("[0-9a-f]{32}");
    assertThat(show.get("lsn")).matches("\\d+/[0-9A-F]+");
    // the repository is in a 0700 directory: data directories go where postgres can reach them
    assertThat(Path.of(show.get("datadir"))).startsWith(z.computeDataDir()).exists();
    assertThat(z.computeDataDir()).startsWith(Path.of(System.getProperty("java.io.tmpdir")));
    assertThat(Path.of(show.get("log"))).exists();

    List<String> status = z.ok("status").lines();
    assertThat(status.get(0)).isEqualTo("repository:  " + z.repo);
    assertThat(status.get(1)).isEqualTo("tenant:      " + show.get("tenant"));
    assertThat(status.get(2))
        .matches(
            "pageserver:  running \\(pid \\d+\\), http 127\\.0\\.0\\.1:"
                + z.httpPort
                + ", libpq 127\\.0\\.0\\.1:"
                + z.pgPort);
    assertThat(status.get(3)).isEqualTo("computes:    1 running, 1 stopped");

    jsonFormats(show);

    List<String> tenants = z.ok("tenant", "list").lines();
    assertThat(tenants.get(0)).matches("NAME {5}TENANT {28}BRANCHES {2}COMPUTES {2}DEFAULT");
    assertThat(tenants.get(1)).matches("default  " + show.get("tenant") + "  1 {9}1/2 {7}\\*");
    assertThat(tenants).hasSize(2);
    z.ok("pg", "stop", "spare", "--destroy");
  }

  /** {@code --json} of pg list, status and branch list: the fields docs/cli.md names. */
  private void jsonFormats(Map<String, String> show) {
    List<JsonNode> list = jsonLines(z.ok("pg", "list", "--json"));
    assertThat(list).hasSize(2);
    JsonNode main = list.get(0);
    assertThat(fieldNames(main))
        .containsExactly(
            "name",
            "tenant_id",
            "timeline_id",
            "branch",
            "mode",
            "lsn",
            "address",
            "port",
            "storage",
            "status",
            "pid",
            "term",
            "settings");
    assertThat(main.get("name").asText()).isEqualTo("main");
    assertThat(main.get("tenant_id").asText()).isEqualTo(show.get("tenant"));
    assertThat(main.get("timeline_id").asText()).isEqualTo(show.get("timeline"));
    assertThat(main.get("mode").asText()).isEqualTo("primary");
    assertThat(main.get("lsn").asText()).matches("\\d+/[0-9A-F]+");
    assertThat(main.get("port").asInt()).isEqualTo(z.computePortBase);
    assertThat(main.get("status").asText()).isEqualTo("running");
    assertThat(main.get("pid").isIntegralNumber()).isTrue();
    assertThat(main.get("term").asLong()).isEqualTo(2);
    assertThat(main.get("settings").isObject()).isTrue();
    JsonNode spare = list.get(1);
    assertThat(spare.get("status").asText()).isEqualTo("stopped");
    assertThat(spare.get("lsn").isNull()).isTrue();
    assertThat(spare.get("pid").isNull()).isTrue();
    assertThat(spare.get("term").isNull()).isTrue();

    ZenithRepo.Result statusJson = z.run("status", "--json");
    assertThat(statusJson.exit()).as("%s", statusJson).isZero();
    List<JsonNode> statusLines = jsonLines(statusJson);
    assertThat(statusLines).hasSize(1);
    JsonNode status = statusLines.get(0);
    assertThat(fieldNames(status))
        .containsExactly(
            "repository",
            "tenant_id",
            "all_running",
            "pageserver",
            "quorum",
            "safekeepers",
            "computes");
    assertThat(status.get("repository").asText()).isEqualTo(z.repo.toString());
    assertThat(status.get("all_running").asBoolean()).isTrue();
    assertThat(status.get("pageserver").get("status").asText()).isEqualTo("running");
    assertThat(status.get("pageserver").get("listen_http").asText())
        .isEqualTo("127.0.0.1:" + z.httpPort);
    assertThat(status.get("quorum").asInt()).isEqualTo(1);
    JsonNode sk = status.get("safekeepers").get(0);
    assertThat(fieldNames(sk))
        .containsExactly("id", "listen_http", "listen_pg", "status", "pid", "timelines");
    assertThat(sk.get("status").asText()).isEqualTo("running");
    assertThat(fieldNames(sk.get("timelines").get(0)))
        .containsExactly("branch", "timeline_id", "term", "flush_lsn", "commit_lsn");
    assertThat(sk.get("timelines").get(0).get("branch").asText()).isEqualTo("main");
    assertThat(status.get("computes")).hasSize(2);

    List<JsonNode> branches = jsonLines(z.ok("branch", "list", "--json"));
    assertThat(branches).hasSize(1);
    assertThat(fieldNames(branches.get(0)))
        .containsExactly(
            "name",
            "timeline_id",
            "ancestor",
            "ancestor_timeline_id",
            "ancestor_lsn",
            "last_record_lsn",
            "gc_cutoff",
            "pitr_start",
            "state",
            "layers",
            "disk_consistent_lsn",
            "remote_consistent_lsn",
            "remote_upload");
    assertThat(branches.get(0).get("name").asText()).isEqualTo("main");
    // `zenith init` sets up a local remote storage: the branch's upload state (ADR 0023)
    assertThat(branches.get(0).get("remote_upload").get("queue_length").isIntegralNumber())
        .isTrue();
    List<String> remote = z.ok("branch", "list", "--remote").lines();
    assertThat(remote.get(0))
        .matches(
            "BRANCH +DISK CONSISTENT +REMOTE CONSISTENT +LOCAL +REMOTE +QUEUE +UPLOADS +TIMELINE");
    assertThat(remote.get(1)).startsWith("main ").endsWith(show.get("timeline"));
    assertThat(branches.get(0).get("timeline_id").asText()).isEqualTo(show.get("timeline"));
    assertThat(branches.get(0).get("ancestor").isNull()).isTrue();
    assertThat(branches.get(0).get("layers").get("bytes").asLong()).isPositive();
  }

  private static final com.fasterxml.jackson.databind.ObjectMapper JSON =
      new com.fasterxml.jackson.databind.ObjectMapper();

  /** Each line of the output as a JSON object. */
  private static List<JsonNode> jsonLines(ZenithRepo.Result r) {
    List<JsonNode> out = new java.util.ArrayList<>();
    for (String line : r.lines()) {
      try {
        JsonNode n = JSON.readTree(line);
        assertThat(n.isObject()).as("a JSON object per line: %s", line).isTrue();
        out.add(n);
      } catch (IOException e) {
        throw new AssertionError("not JSON: " + line + "\n" + r, e);
      }
    }
    return out;
  }

  private static List<String> fieldNames(JsonNode n) {
    List<String> names = new java.util.ArrayList<>();
    n.fieldNames().forEachRemaining(names::add);
    return names;
  }

  @Test
  @Order(5)
  void exportIsAPlainDataDirectoryThatVanillaPgCtlRuns() throws IOException {
    // plain PostgreSQL runs it as its own user, who must reach it
    Path parent = Files.createTempDirectory("zenith-export-");
    Files.setPosixFilePermissions(
        parent, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    try {
      exportTo(parent);
    } finally {
      ZenithRepo.deleteTree(parent);
    }
  }

  private void exportTo(Path parent) throws IOException {
    Path out = parent.resolve("pgdata");
    ZenithRepo.Result r = z.ok("export", "main", out.toString());
    assertThat(r.out()).contains("exported branch main at ").contains("pg_ctl -D " + out);
    assertThat(out.resolve("standby.signal")).doesNotExist();
    assertThat(Files.readString(out.resolve("postgresql.conf")))
        .doesNotContain("synchronous_standby_names");
    assertThat(z.fails(1, "export", "main", out.toString()))
        .isEqualTo("zenith export: error: " + out + " exists and is not an empty directory");

    int port = ZenithRepo.freePort();
    List<String> start =
        List.of(
            "-D",
            out.toString(),
            "-l",
            parent.resolve("log").toString(),
            "-o",
            "-p " + port + " -k /tmp",
            "-w",
            "start");
    z.pg.giveToPgUser(parent);
    assertThat(run(z.pg.command("pg_ctl", start))).as("pg_ctl start").isZero();
    try {
      assertThat(z.sql(port, "SELECT count(*) FROM t")).isEqualTo("1000");
      z.sql(port, "INSERT INTO t VALUES (1001, 'outside zenith')");
      assertThat(z.sql(port, "SELECT count(*) FROM t")).isEqualTo("1001");
    } finally {
      run(z.pg.command("pg_ctl", List.of("-D", out.toString(), "-m", "fast", "-w", "stop")));
    }
    // the compute is unaffected
    assertThat(z.sql(z.port("main"), "SELECT count(*) FROM t")).isEqualTo("1000");
  }

  @Test
  @Order(6)
  void layerDumpPrintsHeaderAndEntries() throws IOException {
    Path layer;
    try (Stream<Path> s = Files.walk(z.repo.resolve("pageserver/tenants"))) {
      layer = s.filter(p -> p.toString().endsWith(".layer")).sorted().findFirst().orElseThrow();
    }
    List<String> lines = z.ok("layer", "dump", layer.toString()).lines();
    assertThat(lines.get(0)).isEqualTo("file:      " + layer);
    assertThat(lines.get(1)).matches("kind: {6}(image|delta)");
    assertThat(lines).anyMatch(l -> l.matches("lsn: {7}\\d+/[0-9A-F]+ \\.\\. \\d+/[0-9A-F]+ .*"));
    long entries =
        Long.parseLong(
            lines.stream()
                .filter(l -> l.startsWith("entries:"))
                .findFirst()
                .orElseThrow()
                .substring(9)
                .strip());
    int header = lines.indexOf("") + 1;
    assertThat(lines.get(header)).matches("KEY +LSN +FLAGS +VALUE +WHAT");
    assertThat(lines.size() - header - 1).isEqualTo(entries);
    assertThat(lines.subList(header + 1, lines.size()))
        .anyMatch(l -> l.matches("[0-9a-f]{36} +\\d+/[0-9A-F]+ .*rel 1663/\\d+/\\d+ main blk \\d+"))
        .anyMatch(l -> l.contains("pg_control"));
    Path bogus = z.root.resolve("bogus.layer");
    Files.write(bogus, new byte[300]);
    assertThat(z.fails(1, "layer", "dump", bogus.toString()))
        .isEqualTo(
            "zenith layer dump: error: corrupt layer file " + bogus + ": bad magic 00000000");
  }

  @Test
  @Order(7)
  void stopStopsComputesThenThePageserver() {
    ZenithRepo.Result r = z.ok("stop");
    assertThat(r.lines())
        .containsExactly("stopped compute main", "stopped the pageserver", "stopped safekeeper 1");
    assertThat(z.show("main")).containsEntry("status", "stopped").containsEntry("lsn", "latest");
    assertThat(z.pageserverPid()).isEmpty();
    // as pg_ctl status: 3 when a configured server is not running
    assertThat(z.status(3).out()).contains("pageserver:  stopped");
    ZenithRepo.Result json = z.run("status", "--json");
    assertThat(json.exit()).as("%s", json).isEqualTo(3);
    assertThat(json.out()).contains("\"all_running\":false").hasLineCount(1);
  }

  @Test
  @Order(8)
  void versionNamesTheBuildsCommit() {
    assertThat(z.ok("--version").out())
        .matches("zenith \\d+\\.\\d+\\.\\d+\\S* \\(git ([0-9a-f]{12}|unknown), PostgreSQL 15\\)\n");
  }

  /** Every non-empty cell starts exactly where its column's header starts. */
  static void assertAligned(List<String> table) {
    String header = table.get(0);
    List<Integer> starts = new java.util.ArrayList<>();
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("(?<=^|  )\\S").matcher(header);
    while (m.find()) {
      starts.add(m.start());
    }
    for (String row : table.subList(1, table.size())) {
      for (int i = 0; i < starts.size(); i++) {
        int col = starts.get(i);
        int next = i + 1 < starts.size() ? starts.get(i + 1) : row.length();
        String cell = row.length() > col ? row.substring(col, Math.min(next, row.length())) : "";
        if (cell.isBlank()) {
          continue;
        }
        assertThat(row.charAt(col)).as("row '%s' at column %d", row, col).isNotEqualTo(' ');
        if (col > 0) {
          assertThat(row.charAt(col - 1)).as("row '%s' before column %d", row, col).isEqualTo(' ');
        }
      }
    }
  }

  private static int run(List<String> cmd) {
    try {
      Process p =
          new ProcessBuilder(cmd)
              .directory(new java.io.File("/"))
              .redirectErrorStream(true)
              .start();
      String out = new String(p.getInputStream().readAllBytes());
      int exit = p.waitFor();
      if (exit != 0) {
        System.err.println(String.join(" ", cmd) + "\n" + out);
      }
      return exit;
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
