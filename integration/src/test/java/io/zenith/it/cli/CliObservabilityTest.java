package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.zenith.gateway.control.PageserverClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
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
 * Logs and metrics of the real processes {@code zenith start} runs, configured with {@code
 * log_format = "json"}: every line of their log files is one JSON object, the lines of a timeline's
 * ingest, flushes and compaction carry its tenant and timeline ids, and every metric that {@code
 * docs/metrics.md} lists and that the Grafana dashboard's queries name is exposed on {@code
 * /metrics} after a little load.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliObservabilityTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Path ROOT =
      Path.of(System.getProperty("zenith.project.root", ".")).toAbsolutePath();

  private ZenithRepo z;
  private TenantId tenant;
  private TimelineId timeline;

  @BeforeAll
  void startWithJsonLogsAndLoad() throws IOException, InterruptedException {
    z = new ZenithRepo(false);
    z.init(1);
    z.setPageserverOption("log_format", "\"json\"");
    // compaction after a couple of flushes, so that its log lines appear
    z.setPageserverOption("compaction_threshold", "2");
    Path sk = z.repo.resolve("safekeepers/sk1/safekeeper.toml");
    Files.writeString(
        sk, Files.readString(sk).replaceAll("(?m)^log_format = .*$", "log_format = \"json\""));
    z.ok("start");
    z.ok("pg", "create", "main");
    int port = z.start("main");
    PageserverClient ps =
        new PageserverClient(new InetSocketAddress("127.0.0.1", z.httpPort), z::adminToken);
    tenant = TenantId.parse(ps.tenants().getFirst().id());
    ApiModel.TimelineInfo main = ps.timelines(tenant).getFirst();
    timeline = TimelineId.parse(main.timelineId());
    z.sql(port, "CREATE TABLE t (id int, filler text)");
    for (int i = 0; i < 3; i++) {
      z.sql(
          port,
          "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;"
              + " SELECT pg_current_wal_flush_lsn()");
      waitForIngest(ps, port);
      ps.checkpoint(tenant, timeline);
    }
    ps.compact(tenant, timeline);
    ps.gc(tenant, timeline);
    z.sql(port, "SELECT count(*) FROM t");
  }

  /** Until the pageserver has the compute's WAL (bounded). */
  private void waitForIngest(PageserverClient ps, int port) throws InterruptedException {
    String lsn = z.sql(port, "SELECT pg_current_wal_flush_lsn()").strip();
    long target = io.zenith.wal.Lsn.parse(lsn).value();
    long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
    while (io.zenith.wal.Lsn.parse(ps.timeline(tenant, timeline).lastRecordLsn()).value()
        < target) {
      assertThat(System.nanoTime()).as("pageserver reached %s", lsn).isLessThan(deadline);
      Thread.sleep(200);
    }
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  @Test
  @Order(1)
  void logLinesAreJsonAndATimelinesWorkCarriesItsIds() throws IOException {
    List<JsonNode> lines = jsonLines(z.repo.resolve("pageserver/pageserver.log"));
    assertThat(lines).isNotEmpty();
    for (String what : List.of("streaming WAL of ", "flushed layer ", "compacted ")) {
      List<JsonNode> mine =
          lines.stream().filter(l -> l.path("formattedMessage").asText().startsWith(what)).toList();
      assertThat(mine).as("lines starting '%s'", what).isNotEmpty();
      assertThat(mine)
          .allSatisfy(
              l -> {
                assertThat(l.path("timestamp").asLong()).isPositive();
                assertThat(l.path("level").asText()).isEqualTo("INFO");
                assertThat(l.path("loggerName").asText()).startsWith("io.zenith.");
                assertThat(l.path("mdc").path("tenant").asText()).isEqualTo(tenant.toString());
                assertThat(l.path("mdc").path("timeline").asText()).isEqualTo(timeline.toString());
              });
    }
    List<JsonNode> sk = jsonLines(z.repo.resolve("safekeepers/sk1/safekeeper.log"));
    assertThat(sk)
        .anySatisfy(
            l ->
                assertThat(l.path("mdc").path("timeline").asText()).isEqualTo(timeline.toString()));
    // what the processes printed themselves (their banners) went to the .out files
    assertThat(Files.readString(z.repo.resolve("pageserver/pageserver.out")))
        .contains("HTTP on port " + z.httpPort);
  }

  private static List<JsonNode> jsonLines(Path file) throws IOException {
    List<JsonNode> out = new ArrayList<>();
    for (String line : Files.readAllLines(file)) {
      JsonNode n = JSON.readTree(line);
      assertThat(n.isObject()).as("a JSON object: %s", line).isTrue();
      out.add(n);
    }
    return out;
  }

  @Test
  @Order(2)
  void everyMetricTheDocsAndTheDashboardNameIsExposed() throws Exception {
    scrape(z.httpPort); // HTTP server metrics appear once a request has been answered
    scrape(z.safekeeperHttpPort(1));
    // jvm_gc_pause_seconds appears after a process's first GC, which a short run may not have
    // caused yet (seen in the safekeeper): ask each for one
    for (Optional<Long> pid : List.of(z.pageserverPid(), z.safekeeperPid(1))) {
      pid.ifPresent(
          p ->
              ZenithRepo.sh(
                  Path.of(System.getProperty("java.home"), "bin", "jcmd") + " " + p + " GC.run"));
    }
    String pageserverScrape = scrape(z.httpPort);
    String safekeeperScrape = scrape(z.safekeeperHttpPort(1));
    // kept for whoever reads a failure (and updates docs/metrics.md)
    Path kept = ROOT.resolve("integration/target/observability");
    Files.createDirectories(kept);
    Files.writeString(kept.resolve("pageserver.prom"), pageserverScrape);
    Files.writeString(kept.resolve("safekeeper.prom"), safekeeperScrape);
    Set<String> pageserver = names(pageserverScrape);
    Set<String> safekeeper = names(safekeeperScrape);

    Set<String> dashboard = dashboardMetrics();
    assertThat(dashboard).hasSizeGreaterThan(10);
    Set<String> both = new TreeSet<>(pageserver);
    both.addAll(safekeeper);
    assertThat(both).as("exposed by the pageserver or a safekeeper").containsAll(dashboard);

    // docs/metrics.md: | `name` | type | tags | process | meaning |
    Matcher row =
        Pattern.compile("(?m)^\\| `([a-z_:]+)` \\| [^|]+\\| [^|]*\\| ([a-z, ]+) \\|")
            .matcher(Files.readString(ROOT.resolve("docs/metrics.md")));
    int rows = 0;
    while (row.find()) {
      rows++;
      String name = row.group(1);
      for (String process : row.group(2).split(",\\s*")) {
        Set<String> exposed =
            switch (process.strip()) {
              case "pageserver" -> pageserver;
              case "safekeeper" -> safekeeper;
              default -> throw new AssertionError("unknown process in docs/metrics.md: " + process);
            };
        assertThat(exposed.stream().anyMatch(n -> n.equals(name) || n.startsWith(name + "_")))
            .as("%s on the %s (docs/metrics.md)", name, process)
            .isTrue();
      }
    }
    assertThat(rows).isGreaterThan(30);
  }

  @Test
  @Order(3)
  void aBadLogFormatIsRefusedWithOneLine() throws IOException {
    Path dir = Files.createDirectories(z.root.resolve("bad-log-format"));
    ZenithRepo.Result usage =
        z.run("pageserver", "run", "-D", dir.toString(), "--log-format", "xml");
    assertThat(usage.exit()).as("%s", usage).isEqualTo(2);
    assertThat(usage.err()).contains("log format 'xml' is not one of: text, json");

    Files.writeString(dir.resolve("pageserver.toml"), "log_format = \"xml\"\n");
    ZenithRepo.Result bad = z.run("pageserver", "run", "-D", dir.toString());
    assertThat(bad.exit()).as("%s", bad).isEqualTo(1);
    assertThat(bad.err().lines().toList())
        .singleElement()
        .asString()
        .startsWith("zenith pageserver run: error: ")
        .contains("log format 'xml' is not one of: text, json");
  }

  /** The metric names in the dashboard's PromQL expressions. */
  private static Set<String> dashboardMetrics() throws IOException {
    JsonNode d = JSON.readTree(ROOT.resolve("docs/grafana/zenith.json").toFile());
    Set<String> names = new TreeSet<>();
    Pattern metric =
        Pattern.compile("\\b((?:zenith|safekeeper|jvm|process|system|reactor_netty)_[a-z0-9_]+)");
    for (JsonNode expr : d.findValues("expr")) {
      Matcher m = metric.matcher(expr.asText());
      while (m.find()) {
        names.add(m.group(1));
      }
    }
    return names;
  }

  private String scrape(int port) throws IOException, InterruptedException {
    try (HttpClient http = HttpClient.newHttpClient()) {
      HttpResponse<String> r =
          http.send(
              HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
                  .header("Authorization", "Bearer " + z.adminToken())
                  .timeout(Duration.ofSeconds(30))
                  .build(),
              HttpResponse.BodyHandlers.ofString());
      assertThat(r.statusCode()).isEqualTo(200);
      return r.body();
    }
  }

  /** The sample names of a Prometheus text scrape. */
  private static Set<String> names(String scrape) {
    Set<String> names = new TreeSet<>();
    for (String line : scrape.lines().toList()) {
      if (!line.isEmpty() && !line.startsWith("#")) {
        names.add(line.split("[{ ]", 2)[0]);
      }
    }
    return names;
  }
}
