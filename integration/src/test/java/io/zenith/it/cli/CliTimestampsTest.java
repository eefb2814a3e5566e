package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.zenith.it.pageserver.HttpJson;
import io.zenith.it.pageserver.OpenApiContract;
import io.zenith.wal.Lsn;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Timelines by timestamp through the real {@code ./zenith} and a real PostgreSQL compute: rows
 * committed one by one, a wall-clock time noted after each (with a pause before the next commit);
 * for each time, {@code lsn_by_timestamp} answers {@code present}, and a read-only compute created
 * with {@code --at} that time, and a branch at {@code main@time}, see exactly the rows committed by
 * then. Then the times the history cannot place, and malformed input, over HTTP (answers checked
 * against {@code docs/api/pageserver.yaml}) and the CLI (one line on stderr).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliTimestampsTest {
  private static final String TEMPLATE =
      "/v1/tenant/{tenant_id}/timeline/{timeline_id}/lsn_by_timestamp";
  private static final int ROWS = 3;

  private final OpenApiContract spec = OpenApiContract.repositorySpec("pageserver.yaml");
  private ZenithRepo z;
  private HttpJson http;
  private String path;

  /** times.get(i): a time after row i was committed and before row i + 1 was (0: no rows). */
  private final List<Instant> times = new ArrayList<>();

  @BeforeAll
  void setUp() throws Exception {
    z = new ZenithRepo(true);
    z.init();
    z.ok("start");
    z.ok("pg", "create", "main");
    int main = z.start("main");
    z.sql(main, "CREATE TABLE r(i int)");
    for (int i = 0; i <= ROWS; i++) {
      if (i > 0) {
        z.sql(main, "INSERT INTO r VALUES (" + i + ")");
      }
      Thread.sleep(150);
      times.add(Instant.now());
      Thread.sleep(150);
    }
    // a commit after the last time: a time after the last commit is "future", not "present"
    z.sql(main, "CREATE TABLE later(i int)");
    Lsn flushed = Lsn.parse(z.sql(main, "SELECT pg_current_wal_flush_lsn()"));
    new TimelinePositions(z, 0, "main").awaitPageserver(flushed, Duration.ofSeconds(60));
    Map<String, String> shown = z.show("main");
    path = "/v1/tenant/" + shown.get("tenant") + "/timeline/" + shown.get("timeline");
    http = new HttpJson(z.httpPort).withToken(z.adminToken());
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  private HttpJson.Response lookup(String query) {
    return spec.check(TEMPLATE, http.get(path + "/lsn_by_timestamp" + query));
  }

  @Test
  @Order(1)
  void eachTimeGivesTheLsnWhereExactlyItsRowsAreCommitted() throws IOException {
    Lsn previous = null;
    for (int i = 0; i <= ROWS; i++) {
      Instant t = times.get(i);
      HttpJson.Response r = lookup("?timestamp=" + t);
      assertThat(r.status()).as(r.toString()).isEqualTo(200);
      JsonNode j = r.json();
      assertThat(j.path("kind").asText()).isEqualTo("present");
      Instant committed = Instant.parse(j.path("commit_time").asText());
      assertThat(committed).isBefore(t).isAfter(t.minusSeconds(10));
      Lsn lsn = Lsn.parse(j.path("lsn").asText());
      if (previous != null) {
        assertThat(lsn).isGreaterThan(previous);
      }
      previous = lsn;

      String ro = "ro" + i;
      assertThat(z.ok("pg", "create", ro, "--at", t.toString()).out())
          .startsWith("created compute " + ro + " on branch main (read-only at " + lsn + "), ");
      assertThat(z.sql(z.start(ro), "SELECT count(*), coalesce(max(i), 0) FROM r"))
          .as("rows committed by %s", t)
          .isEqualTo(i + "|" + i);
      z.ok("pg", "stop", ro, "--destroy");

      String offset = t.atOffset(java.time.ZoneOffset.ofHours(2)).toString();
      assertThat(z.ok("branch", "at" + i, "main@" + offset).out())
          .matches(
              "created branch at" + i + " from main at " + lsn + " \\(timeline [0-9a-f]{32}\\)\n");
    }
    // a branch at a time sees the same rows once it has a compute of its own
    z.ok("pg", "create", "c2", "--branch", "at2");
    assertThat(z.sql(z.start("c2"), "SELECT count(*) FROM r")).isEqualTo("2");
    // and its own history answers for times before its branch point from main's commits
    String c2Timeline = z.show("c2").get("timeline");
    HttpJson.Response onBranch =
        spec.check(
            TEMPLATE,
            http.get(
                path.replaceAll("/timeline/.*", "/timeline/" + c2Timeline)
                    + "/lsn_by_timestamp?timestamp="
                    + times.get(1)));
    assertThat(onBranch.json().path("kind").asText()).isEqualTo("present");
    assertThat(onBranch.json().path("lsn").asText())
        .isEqualTo(lookup("?timestamp=" + times.get(1)).json().path("lsn").asText());
    z.ok("pg", "stop", "c2", "--destroy");
  }

  @Test
  @Order(2)
  void timesTheHistoryCannotPlace() {
    JsonNode past = lookup("?timestamp=2000-01-01T00:00:00Z").json();
    assertThat(past.path("kind").asText()).isEqualTo("past");
    JsonNode future = lookup("?timestamp=" + times.getLast().plusSeconds(3600)).json();
    assertThat(future.path("kind").asText()).isEqualTo("future");
    assertThat(future.path("commit_time").asText()).isNotEmpty();

    assertThat(z.fails(1, "branch", "early", "main@2000-01-01T00:00:00Z"))
        .startsWith(
            "zenith branch: error: cannot branch main at 2000-01-01T00:00:00Z: that is before its"
                + " first commit (");
    String later = times.getLast().plusSeconds(3600).toString();
    assertThat(z.fails(1, "branch", "late", "main@" + later))
        .matches(
            "zenith branch: error: cannot branch main at .*: that is after its last commit \\(.*,"
                + " at \\d+/[0-9A-F]+\\)");
    assertThat(z.fails(1, "pg", "create", "late", "--at", later))
        .startsWith(
            "zenith pg create: error: cannot create a compute on main at "
                + later
                + ": that is after its last commit (");
    assertThat(z.fails(1, "branch", "x", "nosuch@" + later))
        .isEqualTo(
            "zenith branch: error: unknown branch 'nosuch' (branches: at0, at1, at2, at3,"
                + " main)");
  }

  @Test
  @Order(3)
  void malformedTimesAreRefusedPrecisely() {
    expect400("", "query parameter 'timestamp' is required");
    expect400("?timestamp=", "invalid timestamp \"\": expected ISO-8601 with a zone");
    expect400("?timestamp=yesterday", "invalid timestamp \"yesterday\"");
    expect400("?timestamp=-1", "invalid timestamp \"-1\"");
    expect400("?timestamp=2026-12-06T10:00:00", "invalid timestamp \"2026-12-06T10:00:00\"");
    expect400(
        "?timestamp=1969-12-31T23:59:59Z",
        "invalid timestamp \"1969-12-31T23:59:59Z\": before 1970-01-01T00:00:00Z");
    expect400(
        "?timestamp=2026-12-06T10:00:00Z&timestamp=2026-12-06T11:00:00Z",
        "query parameter 'timestamp' is given 2 times");
    HttpJson.Response unknown =
        spec.check(
            TEMPLATE,
            http.get(
                path.replaceAll("/timeline/.*", "/timeline/" + TimelineId.generate())
                    + "/lsn_by_timestamp?timestamp=2026-12-06T10:00:00Z"));
    assertThat(unknown.status()).as(unknown.toString()).isEqualTo(404);
    assertThat(unknown.error()).contains("not found");

    assertThat(z.fails(2, "branch", "x", "main@2026-12-06"))
        .isEqualTo(
            "zenith branch: error: invalid timestamp \"2026-12-06\": expected ISO-8601 with a"
                + " zone, e.g. 2026-12-06T10:00:00Z or 2026-12-06T11:00:00+01:00");
    assertThat(z.fails(2, "branch", "x", "main@1969-12-31T23:59:59Z"))
        .isEqualTo(
            "zenith branch: error: invalid timestamp \"1969-12-31T23:59:59Z\": before"
                + " 1970-01-01T00:00:00Z");
    assertThat(z.fails(2, "pg", "create", "x", "--at", "noon"))
        .startsWith("zenith pg create: error: invalid timestamp \"noon\"");
    assertThat(z.fails(2, "pg", "create", "x", "--lsn", "0/0", "--at", times.get(1).toString()))
        .isEqualTo("zenith pg create: error: --lsn and --at cannot be used together");
  }

  private void expect400(String query, String message) {
    HttpJson.Response r = lookup(query);
    assertThat(r.status()).as(r.toString()).isEqualTo(400);
    assertThat(r.contentType()).isEqualTo("application/json");
    assertThat(r.error()).as(r.toString()).startsWith(message).doesNotContain("\n");
  }
}
