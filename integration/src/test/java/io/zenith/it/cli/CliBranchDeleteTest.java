package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.safekeeper.SafekeeperClient;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
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
 * {@code zenith branch delete} through the real {@code ./zenith}, with three safekeepers: refused
 * for an unknown branch, a branch with children and a branch a compute runs on; otherwise the
 * timeline goes from the pageserver (its space returned: the pageserver's directory shrinks by what
 * the branch held) and from every safekeeper (a tombstone stays), and its name from the repository.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliBranchDeleteTest {
  private ZenithRepo z;
  private int mainPort;

  /** Compute c1's port, from its start in the first test. */
  private int c1Port;

  @BeforeAll
  void setUp() throws IOException {
    z = new ZenithRepo(true);
    z.init(3);
    z.ok("start");
    z.ok("pg", "create", "main");
    mainPort = z.start("main");
    z.sql(mainPort, "CREATE TABLE m(i int); INSERT INTO m SELECT generate_series(1, 1000)");
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  private static long bytesUnder(Path dir) {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile)
          .mapToLong(
              p -> {
                try {
                  return Files.size(p);
                } catch (IOException e) {
                  return 0; // deleted while walking (RocksDB's own files come and go)
                }
              })
          .sum();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static List<Path> named(Path root, String name) {
    try (Stream<Path> s = Files.walk(root)) {
      return s.filter(p -> p.getFileName().toString().equals(name)).toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Test
  @Order(1)
  void unknownBranchesBranchesWithChildrenAndRunningComputesAreRefused() {
    z.ok("branch", "b1");
    z.ok("pg", "create", "c1", "--branch", "b1");
    c1Port = z.start("c1");
    z.ok("branch", "b1x", "b1");

    assertThat(z.fails(1, "branch", "delete", "nosuch"))
        .isEqualTo(
            "zenith branch delete: error: unknown branch 'nosuch' (branches: b1, b1x, main)");
    assertThat(z.fails(1, "branch", "delete", "b1"))
        .isEqualTo(
            "zenith branch delete: error: cannot delete branch 'b1': branch b1x branches from"
                + " it; delete it first");
    assertThat(z.fails(2, "branch", "delete")).contains("Missing required parameter: '<name>'");

    // A branch no compute ever ran on is on no safekeeper: deleted on the pageserver only.
    ZenithRepo.Result child = z.ok("branch", "delete", "b1x");
    assertThat(child.out())
        .matches("deleted branch b1x \\(timeline [0-9a-f]{32}\\) on the pageserver\n");
    assertThat(child.err()).isEmpty();

    assertThat(z.fails(1, "branch", "delete", "b1"))
        .isEqualTo(
            "zenith branch delete: error: cannot delete branch 'b1': compute c1 runs on it; stop"
                + " it with `zenith pg stop c1`");
    assertThat(branchNames()).containsExactly("main", "b1");
  }

  private List<String> branchNames() {
    return z.ok("branch", "list").lines().stream()
        .skip(1)
        .map(l -> l.replaceAll("^[│├└─ ]+", "").split("\\s+")[0])
        .toList();
  }

  @Test
  @Order(2)
  void aDeletedBranchIsGoneEverywhereAndItsSpaceIsReturned() {
    int c1 = c1Port;
    // Data of the branch's own: several MiB of layers (or in-memory layers' files) of b1 alone.
    z.sql(
        c1,
        "CREATE TABLE big AS SELECT i, repeat(md5(i::text), 16) v FROM generate_series(1, 30000) i");
    Map<String, String> shown = z.show("c1");
    String tenant = shown.get("tenant");
    String timeline = shown.get("timeline");
    z.ok("pg", "stop", "c1");
    Path pageserver = z.repo.resolve("pageserver");
    Path timelineDir = pageserver.resolve("tenants/" + tenant + "/timelines/" + timeline);
    assertThat(timelineDir).isDirectory();
    long branchBytes = bytesUnder(timelineDir);
    assertThat(branchBytes).isGreaterThan(4L << 20);
    long before = bytesUnder(pageserver);
    assertThat(metrics()).contains("timeline=\"" + timeline + "\"");
    for (int id = 1; id <= 3; id++) {
      assertThat(named(z.repo.resolve("safekeepers/sk" + id), timeline))
          .as("safekeeper %d holds the branch's WAL", id)
          .isNotEmpty();
    }

    ZenithRepo.Result r = z.run("branch", "delete", "b1");
    assertThat(r.exit()).as(r.toString()).isZero();
    assertThat(r.out())
        .isEqualTo(
            "deleted branch b1 (timeline "
                + timeline
                + ") on the pageserver and safekeepers 1, 2, 3\n");
    assertThat(r.err())
        .isEqualTo("warning: compute 'c1' (stopped) was on branch 'b1' and cannot start again\n");

    assertThat(timelineDir).doesNotExist();
    assertThat(metrics()).as("its ingest series").doesNotContain(timeline);
    long after = bytesUnder(pageserver);
    assertThat(before - after)
        .as("bytes returned (before %d, after %d, branch %d)", before, after, branchBytes)
        .isGreaterThan(branchBytes - (1L << 20));
    for (int id = 1; id <= 3; id++) {
      Path sk = z.repo.resolve("safekeepers/sk" + id);
      assertThat(named(sk, timeline)).as("safekeeper %d's WAL of the branch", id).isEmpty();
      assertThat(named(sk, timeline + ".deleted")).as("safekeeper %d's tombstone", id).hasSize(1);
      SafekeeperClient c =
          new SafekeeperClient(
              id,
              new InetSocketAddress("127.0.0.1", z.safekeeperHttpPort(id)),
              Duration.ofSeconds(30),
              z::adminToken);
      JsonHttpClient.ApiError gone =
          catchThrowableOfType(
              JsonHttpClient.ApiError.class,
              () ->
                  c.timeline(
                      io.zenith.wal.TenantId.parse(tenant),
                      io.zenith.wal.TimelineId.parse(timeline)));
      assertThat(gone.status()).isEqualTo(410);
    }
    assertThat(branchNames()).containsExactly("main");
    assertThat(z.fails(1, "branch", "delete", "b1"))
        .isEqualTo("zenith branch delete: error: unknown branch 'b1' (branches: main)");
    // The rest goes on.
    z.sql(mainPort, "INSERT INTO m VALUES (0)");
    assertThat(z.sql(mainPort, "SELECT count(*) FROM m")).isEqualTo("1001");
    z.ok("branch", "b2");
    assertThat(branchNames()).containsExactly("main", "b2");
  }

  @Test
  @Order(3)
  void aSafekeeperThatDoesNotAnswerStopsTheDeletionBeforeAnythingIsDeleted() {
    z.ok("safekeeper", "stop", "2");
    try {
      assertThat(z.fails(1, "branch", "delete", "b2"))
          .startsWith("zenith branch delete: error: ")
          .contains("safekeeper 2")
          .contains("zenith safekeeper start 2");
      assertThat(branchNames()).as("nothing deleted").containsExactly("main", "b2");
    } finally {
      z.ok("safekeeper", "start", "2");
    }
    assertThat(z.ok("branch", "delete", "b2").out()).startsWith("deleted branch b2 (timeline ");
    assertThat(branchNames()).containsExactly("main");
  }

  /** The pageserver's Prometheus text. */
  private String metrics() {
    try (java.net.http.HttpClient c = java.net.http.HttpClient.newHttpClient()) {
      return c.send(
              java.net.http.HttpRequest.newBuilder(
                      java.net.URI.create("http://127.0.0.1:" + z.httpPort + "/metrics"))
                  .header("Authorization", "Bearer " + z.adminToken())
                  .timeout(Duration.ofSeconds(30))
                  .build(),
              java.net.http.HttpResponse.BodyHandlers.ofString())
          .body();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  @Test
  @Order(4)
  void helpSaysWhatIsRefused() {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int exit;
    try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
        PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
      exit = io.zenith.gateway.cli.Main.run(new String[] {"branch", "delete", "--help"}, o, e);
    }
    assertThat(exit).isZero();
    assertThat(out.toString(StandardCharsets.UTF_8))
        .startsWith("Usage: zenith branch delete")
        .contains("<name>")
        .contains("Refused while other branches branch from it or a compute runs on it");
  }
}
