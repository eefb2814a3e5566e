package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.zenith.gateway.http.Json;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Tenants through the real {@code ./zenith}, pageserver and safekeeper processes: a second tenant
 * made by {@code tenant create} holds its own data (its own initdb), computes of both tenants run
 * side by side, a compute never sees the other tenant's rows, one tenant's id paired with the other
 * tenant's timeline id is refused by the pageserver (HTTP and libpq basebackup) and the safekeeper
 * (HTTP and libpq), and {@code tenant delete} removes the tenant everywhere while the other one
 * works on.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliTenantsTest {
  private ZenithRepo z;
  private String first;
  private String beta;
  private String firstMain;
  private String betaMain;
  private int aPort;
  private int bPort;

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

  @Test
  @Order(1)
  void aCreatedTenantHasItsOwnMainBranchAndNamesAreChecked() {
    ZenithRepo.Result created = z.ok("tenant", "create", "--name", "beta");
    assertThat(created.out())
        .matches(
            "created tenant beta \\(([0-9a-f]{32})\\) with branch main \\(timeline [0-9a-f]{32}\\);"
                + " use it with --tenant beta\n");
    beta = created.out().replaceAll("(?s).*\\(([0-9a-f]{32})\\).*", "$1");
    betaMain = created.out().replaceAll("(?s).*timeline ([0-9a-f]{32}).*", "$1");
    // the control plane issued its first generation in the local remote storage (ADR 0026)
    assertThat(z.repo.resolve("remote/tenants/" + beta + "/generations/00000001")).isRegularFile();

    assertThat(z.fails(1, "tenant", "create", "--name", "beta"))
        .isEqualTo(
            "zenith tenant create: error: tenant 'beta' already exists (see `zenith tenant list`)");
    assertThat(z.fails(1, "tenant", "create", "--name", "Beta!"))
        .startsWith("zenith tenant create: error: invalid tenant name 'Beta!'");
    assertThat(z.fails(1, "branch", "list", "--tenant", "nosuch"))
        .isEqualTo(
            "zenith branch list: error: unknown tenant 'nosuch' (tenants: beta, default; see"
                + " `zenith tenant list`)");

    List<String> table = z.ok("tenant", "list").lines();
    assertThat(table.get(0)).matches("NAME {5}TENANT {28}BRANCHES {2}COMPUTES {2}DEFAULT");
    assertThat(table.get(1)).matches("default  ([0-9a-f]{32})  1 {9}0/0 {7}\\*");
    assertThat(table.get(2)).isEqualTo("beta     " + beta + "  1         0/0");
    first = table.get(1).split("\\s+")[1];

    // The branch trees are separate: a branch of beta is not one of the first tenant.
    z.ok("branch", "dev", "--tenant", "beta");
    assertThat(branchNames(null)).containsExactly("main");
    assertThat(branchNames("beta")).containsExactly("main", "dev");
    assertThat(branchNames(beta)).as("by id").containsExactly("main", "dev");
    firstMain = z.ok("branch", "list").lines().get(1).replaceAll(".*\\s([0-9a-f]{32})$", "$1");
  }

  private List<String> branchNames(String tenant) {
    ZenithRepo.Result r =
        tenant == null ? z.ok("branch", "list") : z.ok("branch", "list", "--tenant", tenant);
    return r.lines().stream()
        .skip(1)
        .map(l -> l.replaceAll("^[│├└─ ]+", "").split("\\s+")[0])
        .toList();
  }

  @Test
  @Order(2)
  void computesOfTwoTenantsRunSideBySideAndSeeOnlyTheirOwnRows() {
    z.ok("pg", "create", "a1");
    z.ok("pg", "create", "b1", "--tenant", "beta");
    aPort = z.start("a1");
    bPort = ZenithRepo.portIn(z.ok("pg", "start", "b1", "--tenant", "beta"), "b1");
    assertThat(bPort).isNotEqualTo(aPort);
    assertThat(z.show("b1").get("tenant")).isEqualTo(beta);
    assertThat(z.show("a1").get("tenant")).isEqualTo(first);

    z.sql(
        aPort,
        "CREATE TABLE t(v text); INSERT INTO t VALUES ('alpha'); CREATE TABLE only_a(i int)");
    z.sql(bPort, "CREATE TABLE t(v text); INSERT INTO t VALUES ('beta')");
    assertThat(z.sql(aPort, "SELECT string_agg(v, ',') FROM t")).isEqualTo("alpha");
    assertThat(z.sql(bPort, "SELECT string_agg(v, ',') FROM t")).isEqualTo("beta");
    ZenithRepo.PsqlResult other = z.psql(bPort, "SELECT * FROM only_a");
    assertThat(other.exit()).isNotZero();
    assertThat(other.output()).contains("relation \"only_a\" does not exist");

    List<String> aList = z.ok("pg", "list").lines();
    assertThat(aList).hasSize(2);
    assertThat(aList.get(1)).startsWith("a1 ");
    List<String> bList = z.ok("pg", "list", "--tenant", "beta").lines();
    assertThat(bList).hasSize(2);
    assertThat(bList.get(1)).startsWith("b1 ");
    assertThat(z.ok("timeline", "gc", "dev", "--tenant", "beta").out()).startsWith("GC of dev: ");
    assertThat(z.fails(1, "timeline", "gc", "dev"))
        .isEqualTo("zenith timeline gc: error: unknown branch 'dev' (branches: main)");
    assertThat(z.fails(1, "export", "main", z.root.resolve("x").toString(), "--tenant", "nosuch"))
        .startsWith("zenith export: error: unknown tenant 'nosuch'");
    assertThat(z.fails(1, "pg", "stop", "a1", "--tenant", "beta"))
        .isEqualTo("zenith pg stop: error: compute 'a1' belongs to tenant default, not to beta");

    List<JsonNode> json =
        z.ok("tenant", "list", "--json").lines().stream().map(CliTenantsTest::parse).toList();
    assertThat(json).hasSize(2);
    assertThat(json.get(0).toString())
        .isEqualTo(
            "{\"name\":\"default\",\"tenant_id\":\""
                + first
                + "\",\"default\":true,\"branches\":[\"main\"],\"computes\":[\"a1\"],"
                + "\"running_computes\":1}");
    assertThat(json.get(1).toString())
        .isEqualTo(
            "{\"name\":\"beta\",\"tenant_id\":\""
                + beta
                + "\",\"default\":false,\"branches\":[\"dev\",\"main\"],\"computes\":[\"b1\"],"
                + "\"running_computes\":1}");
  }

  @Test
  @Order(3)
  void oneTenantsIdNeverReachesTheOtherTenantsTimelines() {
    // Pageserver, HTTP: beta's timeline under the first tenant's id, and the other way round.
    HttpResponse<String> crossed = get(z.httpPort, "/v1/tenant/" + first + "/timeline/" + betaMain);
    assertThat(crossed.statusCode()).isEqualTo(404);
    assertThat(parse(crossed.body()).path("error").asText())
        .isEqualTo("timeline " + betaMain + " not found in tenant " + first);
    assertThat(get(z.httpPort, "/v1/tenant/" + beta + "/timeline/" + firstMain).statusCode())
        .isEqualTo(404);
    // Pageserver, libpq: a basebackup of beta's timeline asked for under the first tenant.
    String bb = psql(z.pgPort, "", "basebackup " + first + " " + betaMain);
    assertThat(bb).contains("ERROR:  timeline " + betaMain + " not found in tenant " + first);
    assertThat(psql(z.pgPort, "", "basebackup " + beta + " " + firstMain))
        .contains("ERROR:  timeline " + firstMain + " not found in tenant " + beta);
    // Safekeeper, HTTP and libpq (each timeline has had a primary, so each is there).
    int skHttp = z.safekeeperHttpPort(1);
    assertThat(get(skHttp, "/v1/tenant/" + beta + "/timeline/" + betaMain).statusCode())
        .isEqualTo(200);
    assertThat(get(skHttp, "/v1/tenant/" + first + "/timeline/" + betaMain).statusCode())
        .isEqualTo(404);
    String replication =
        " replication=true options='-c zenith.tenant_id="
            + first
            + " -c zenith.timeline_id="
            + betaMain
            + "'";
    assertThat(psql(skHttp + 1, replication, "IDENTIFY_SYSTEM"))
        .contains("FATAL:  timeline " + first + "/" + betaMain + " does not exist on safekeeper 1");
  }

  @Test
  @Order(4)
  void deletingATenantRemovesItEverywhereAndTheOtherWorksOn() throws IOException {
    assertThat(z.fails(1, "tenant", "delete", "beta"))
        .isEqualTo(
            "zenith tenant delete: error: cannot delete tenant 'beta': compute b1 runs on it;"
                + " stop it first, or add --stop-computes");
    assertThat(z.fails(1, "tenant", "delete", "default"))
        .isEqualTo(
            "zenith tenant delete: error: cannot delete tenant 'default': it is the repository's"
                + " first tenant, which commands use without --tenant");
    assertThat(z.fails(1, "tenant", "delete", "nosuch")).contains("unknown tenant 'nosuch'");

    ZenithRepo.Result deleted = z.ok("tenant", "delete", "beta", "--stop-computes");
    assertThat(deleted.out())
        .isEqualTo(
            "stopped compute b1\ndestroyed compute b1\ndeleted tenant beta ("
                + beta
                + ") on the pageserver and safekeepers 1\n");
    assertThat(z.repo.resolve("pageserver/tenants/" + beta)).doesNotExist();
    assertThat(z.repo.resolve("computes/b1")).doesNotExist();
    assertThat(z.repo.resolve("tenants/" + beta)).doesNotExist();
    assertThat(Files.readString(z.repo.resolve("tenants.toml"))).doesNotContain(beta);
    assertThat(get(z.httpPort, "/v1/tenant/" + beta + "/timeline").statusCode()).isEqualTo(404);
    assertThat(
            get(z.safekeeperHttpPort(1), "/v1/tenant/" + beta + "/timeline/" + betaMain)
                .statusCode())
        .isNotEqualTo(200);
    assertThat(z.fails(1, "pg", "list", "--tenant", "beta")).contains("unknown tenant 'beta'");

    // The first tenant's compute works on, and a new compute of it sees its data.
    z.sql(aPort, "INSERT INTO t VALUES ('after')");
    assertThat(z.sql(aPort, "SELECT string_agg(v, ',' ORDER BY v) FROM t"))
        .isEqualTo("after,alpha");
    z.ok("pg", "stop", "a1");
    aPort = z.start("a1");
    assertThat(z.sql(aPort, "SELECT string_agg(v, ',' ORDER BY v) FROM t"))
        .isEqualTo("after,alpha");
    List<String> table = z.ok("tenant", "list").lines();
    assertThat(table).hasSize(2);
    assertThat(table.get(1)).startsWith("default  " + first);

    // A new tenant may take the old name.
    z.ok("tenant", "create", "--name", "beta");
  }

  private static JsonNode parse(String json) {
    try {
      return Json.MAPPER.readTree(json);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** A GET with an admin token: the id checks behind authentication are what is tested here. */
  private HttpResponse<String> get(int port, String path) {
    try (HttpClient c = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build()) {
      return c.send(
          HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
              .header("Authorization", "Bearer " + z.adminToken())
              .timeout(Duration.ofSeconds(30))
              .build(),
          HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /** psql's output (stdout and stderr) of {@code command} on a libpq endpoint of ours. */
  private String psql(int port, String extraConninfo, String command) {
    List<String> cmd = new ArrayList<>();
    cmd.add(z.pg.bin("psql").toString());
    cmd.addAll(
        List.of(
            "-X",
            "host=127.0.0.1 port=" + port + " user=postgres dbname=postgres" + extraConninfo,
            "-c",
            command));
    try {
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
      pb.environment().putAll(Map.of("PGCONNECT_TIMEOUT", "10", "PGPASSWORD", z.adminToken()));
      Process p = pb.start();
      p.getOutputStream().close();
      byte[] out = p.getInputStream().readNBytes(64 * 1024);
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new AssertionError("psql timed out: " + command);
      }
      return new String(out, java.nio.charset.StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
