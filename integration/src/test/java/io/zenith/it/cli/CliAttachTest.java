package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Detach and attach through the real {@code ./zenith} and its processes (ADR 0027): pgbench writes
 * into the default tenant, {@code tenant detach} removes it from the pageserver, the pageserver's
 * data directory is emptied (a fresh pageserver on the repository's remote storage, with a disk
 * budget of 64 KiB for layer files), {@code tenant attach} brings the tenant back without
 * downloading a layer file, a compute started on it downloads what it reads and sees pgbench's
 * rows, and once eviction took files away the same queries fetch them again (the meters say so).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class CliAttachTest {
  private ZenithRepo z;

  @BeforeAll
  void setUp() throws IOException {
    z = new ZenithRepo(true);
    z.init();
    z.ok("start");
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  private static final String ROWS =
      "SELECT count(*), sum(abalance), sum(hashtext(filler)) FROM pgbench_accounts";
  private static final String HISTORY = "SELECT count(*), sum(delta) FROM pgbench_history";

  @Test
  void aDetachedTenantAttachedOnAnEmptyPageserverServesItsRowsAndSurvivesEviction()
      throws Exception {
    ObjectMapper json = new ObjectMapper();
    z.ok("pg", "create", "c");
    int port = z.start("c");
    pgbench(port, "-i", "-s", "1", "-q");
    pgbench(port, "-c", "2", "-T", "3", "-n");
    String rows = z.sql(port, ROWS);
    String history = z.sql(port, HISTORY);
    z.ok("pg", "stop", "c");

    JsonNode detached = json.readTree(z.ok("tenant", "detach", "default", "--json").out());
    String tenant = detached.path("tenant_id").asText();
    assertThat(detached.path("timelines").size()).isPositive();
    Path data = z.repo.resolve("pageserver");
    assertThat(data.resolve("tenants/" + tenant)).doesNotExist();

    // A fresh pageserver: nothing of the old data directory but its settings.
    z.ok("pageserver", "stop");
    for (String d : List.of("index", "tenants", "deletion")) {
      ZenithRepo.deleteTree(data.resolve(d));
    }
    Files.writeString(
        data.resolve("pageserver.toml"),
        "max_local_layer_bytes = \"64KiB\"\n" + Files.readString(data.resolve("pageserver.toml")));
    z.ok("pageserver", "start");

    long t0 = System.nanoTime();
    JsonNode attached = json.readTree(z.ok("tenant", "attach", "default", "--json").out());
    long attachMs = (System.nanoTime() - t0) / 1_000_000;
    assertThat(attached.path("tenant_id").asText()).isEqualTo(tenant);
    assertThat(attached.path("timelines").size()).isEqualTo(detached.path("timelines").size());
    Path tls = data.resolve("tenants/" + tenant + "/timelines");
    assertThat(files(tls, ".layer")).as("an attach downloads no layer file").isEmpty();
    assertThat(files(tls, ".layer.remote")).isNotEmpty();

    t0 = System.nanoTime();
    port = z.start("c");
    assertThat(z.sql(port, ROWS)).isEqualTo(rows);
    long firstQueryMs = (System.nanoTime() - t0) / 1_000_000;
    assertThat(z.sql(port, HISTORY)).isEqualTo(history);
    double downloads = sample(scrape(), "zenith_layer_downloads_total");
    assertThat(downloads).as("layer files downloaded by the compute's reads").isPositive();
    System.out.printf(
        "attach %d ms (CLI included), compute start + first query %d ms, %.0f layers fetched%n",
        attachMs, firstQueryMs, downloads);

    // Eviction under 64 KiB (every 10 s): what was fetched goes again (it is uploaded), and the
    // same rows come back by downloads.
    z.ok("pg", "stop", "c");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (sample(scrape(), "zenith_layer_evictions_total") < 1 && System.nanoTime() < deadline) {
      Thread.sleep(500);
    }
    assertThat(sample(scrape(), "zenith_layer_evictions_total")).isPositive();
    assertThat(files(tls, ".layer.remote")).isNotEmpty();
    port = z.start("c");
    assertThat(z.sql(port, ROWS)).isEqualTo(rows);
    assertThat(z.sql(port, HISTORY)).isEqualTo(history);
    z.ok("pg", "stop", "c");
    assertThat(sample(scrape(), "zenith_layer_downloads_total")).isGreaterThan(downloads);
    assertThat(sample(scrape(), "zenith_layer_download_failures_total")).isZero();
    assertThat(z.pageserverLog()).contains("evicted");
  }

  private String scrape() throws IOException, InterruptedException {
    try (HttpClient http = HttpClient.newHttpClient()) {
      HttpResponse<String> r =
          http.send(
              HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + z.httpPort + "/metrics"))
                  .header("Authorization", "Bearer " + z.adminToken())
                  .timeout(Duration.ofSeconds(30))
                  .build(),
              HttpResponse.BodyHandlers.ofString());
      assertThat(r.statusCode()).isEqualTo(200);
      return r.body();
    }
  }

  /** The value of an unlabelled sample of a Prometheus scrape. */
  private static double sample(String scrape, String name) {
    Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + " (\\S+)$").matcher(scrape);
    assertThat(m.find()).as("%s in the scrape", name).isTrue();
    return Double.parseDouble(m.group(1));
  }

  private static List<Path> files(Path timelines, String suffix) throws IOException {
    List<Path> out = new ArrayList<>();
    try (Stream<Path> s = Files.walk(timelines)) {
      s.filter(p -> p.getFileName().toString().endsWith(suffix)).forEach(out::add);
    }
    return out;
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
}
