package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.zenith.it.pageserver.HttpJson;
import io.zenith.it.pageserver.OpenApiContract;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The safekeeper's HTTP API against its contract, {@code docs/api/safekeeper.yaml}: one running
 * safekeeper (alone: a quorum of one), every endpoint called over real HTTP in its success and its
 * listed error answers, every answer's status, content type and body checked against the document.
 * The last test checks that every answer the document lists was seen.
 */
@ExtendWith(NettyLeakCheck.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class SafekeeperApiConformanceTest {
  static final String STATUS = "/v1/status";
  static final String ALL = "/v1/timeline";
  static final String TIMELINES = "/v1/tenant/{tenant_id}/timeline";
  static final String TIMELINE = "/v1/tenant/{tenant_id}/timeline/{timeline_id}";
  static final String VOTE = TIMELINE + "/vote";
  static final String ADOPT = TIMELINE + "/adopt";
  static final String COMPUTE = TIMELINE + "/compute";
  static final String CONFIG = TIMELINE + "/config";
  static final String METRICS = "/metrics";
  static final String START = "0/3000028";

  @TempDir static Path data;
  private final TenantId tenant = TenantId.generate();
  private final TimelineId tl = TimelineId.generate();
  private final OpenApiContract spec = OpenApiContract.repositorySpec("safekeeper.yaml");
  private SafekeeperSet set;
  private HttpJson http;

  @BeforeAll
  void start() {
    set = new SafekeeperSet(data, 1).startAll();
    http = new HttpJson(set.settings(1).httpAddress().getPort());
  }

  @AfterAll
  void stop() {
    if (set != null) {
      set.close();
    }
  }

  private HttpJson.Response call(String template, String method, String path, String body) {
    return spec.check(template, http.call(method, path, body));
  }

  private String tlPath() {
    return "/v1/tenant/" + tenant + "/timeline/" + tl;
  }

  static String createBody(TimelineId id) {
    return """
        {"timeline_id": "%s", "system_id": "7301234567890123456", "pg_version": 15,
         "wal_segment_size": 16777216, "start_lsn": "%s"}"""
        .formatted(id, START);
  }

  /** A well-formed body over the 64 KiB the API accepts. */
  static String oversized() {
    char[] pad = new char[70 * 1024];
    Arrays.fill(pad, 'a');
    return "{\"term\": 1, \"pad\": \"" + new String(pad) + "\"}";
  }

  @Test
  @Order(1)
  void statusAndCreation() {
    JsonNode status = call(STATUS, "GET", STATUS, null).json();
    assertThat(status.path("id").asInt()).isEqualTo(1);
    assertThat(status.path("members").asInt()).isEqualTo(1);
    assertThat(status.path("quorum").asInt()).isEqualTo(1);
    assertThat(call(ALL, "GET", ALL, null).json()).isEmpty();

    String base = "/v1/tenant/" + tenant + "/timeline";
    assertThat(call(TIMELINES, "GET", base, null).json()).isEmpty();
    HttpJson.Response created = call(TIMELINES, "POST", base, createBody(tl));
    assertThat(created.status()).as(created.toString()).isEqualTo(201);
    JsonNode c = created.json();
    assertThat(c.path("start_lsn").asText()).isEqualTo(START);
    assertThat(c.path("system_id").asText()).isEqualTo("7301234567890123456");
    assertThat(c.path("term").asLong()).isZero();
    assertThat(c.path("history")).isEmpty();
    assertThat(c.path("flush_lsn").asText()).isEqualTo(START);
    assertThat(c.path("compute").isNull()).isTrue();
    assertThat(c.path("intake").asText()).isEqualTo("idle");
    assertThat(c.path("lag_limits").path("max_replication_write_lag").asLong()).isZero();

    HttpJson.Response again = call(TIMELINES, "POST", base, createBody(tl));
    assertThat(again.status()).isEqualTo(409);
    assertThat(again.error()).contains(tl.toString()).contains("exists");
    assertThat(call(TIMELINES, "POST", base, "{\"timeline_id\": \"x\"}").status()).isEqualTo(400);
    assertThat(call(TIMELINES, "POST", base, oversized()).status()).isEqualTo(413);
    assertThat(call(TIMELINES, "GET", "/v1/tenant/NOTHEX/timeline", null).status()).isEqualTo(400);

    // Lag limits of its own.
    TimelineId limited = TimelineId.generate();
    String body = createBody(limited).replace("}", ", \"max_replication_write_lag\": 1048576}");
    JsonNode l = call(TIMELINES, "POST", base, body).json();
    assertThat(l.path("lag_limits").path("max_replication_write_lag").asLong()).isEqualTo(1048576);
    List<String> ids = call(TIMELINES, "GET", base, null).json().findValuesAsText("timeline_id");
    assertThat(ids).hasSize(2).isSorted();
    assertThat(call(ALL, "GET", ALL, null).json()).hasSize(2);
  }

  @Test
  @Order(2)
  void timelineVoteAndAdopt() {
    assertThat(call(TIMELINE, "GET", tlPath(), null).json().path("timeline_id").asText())
        .isEqualTo(tl.toString());
    assertThat(
            call(
                    TIMELINE,
                    "GET",
                    "/v1/tenant/" + tenant + "/timeline/" + TimelineId.generate(),
                    null)
                .status())
        .isEqualTo(404);
    assertThat(call(TIMELINE, "GET", "/v1/tenant/" + tenant + "/timeline/0", null).status())
        .isEqualTo(400);

    JsonNode v = call(VOTE, "POST", tlPath() + "/vote", "{\"term\": 1}").json();
    assertThat(v.path("granted").asBoolean()).isTrue();
    assertThat(v.path("term").asLong()).isEqualTo(1);
    assertThat(v.path("flush_lsn").asText()).isEqualTo(START);
    JsonNode refused = call(VOTE, "POST", tlPath() + "/vote", "{\"term\": 1}").json();
    assertThat(refused.path("granted").asBoolean()).isFalse();
    assertThat(call(VOTE, "POST", tlPath() + "/vote", "{\"term\": 0}").status()).isEqualTo(400);
    assertThat(
            call(
                    VOTE,
                    "POST",
                    "/v1/tenant/" + tenant + "/timeline/" + TimelineId.generate() + "/vote",
                    "{\"term\": 3}")
                .status())
        .isEqualTo(404);
    assertThat(call(VOTE, "POST", tlPath() + "/vote", oversized()).status()).isEqualTo(413);

    String adopt =
        "{\"term\": 1, \"history\": [{\"term\": 1, \"start_lsn\": \"%s\"}], \"up_to\": \"%s\", \"donor_id\": 1}"
            .formatted(START, START);
    HttpJson.Response a = call(ADOPT, "POST", tlPath() + "/adopt", adopt);
    assertThat(a.status()).as(a.toString()).isEqualTo(200);
    assertThat(a.json().path("history").get(0).path("term").asLong()).isEqualTo(1);
    assertThat(a.json().path("history").get(0).path("start_lsn").asText()).isEqualTo(START);
    // A term below the promised one.
    call(VOTE, "POST", tlPath() + "/vote", "{\"term\": 2}");
    HttpJson.Response stale = call(ADOPT, "POST", tlPath() + "/adopt", adopt);
    assertThat(stale.status()).isEqualTo(409);
    assertThat(stale.error()).isEqualTo("term 1 is below term 2 promised here");
    assertThat(
            call(
                    ADOPT,
                    "POST",
                    "/v1/tenant/" + tenant + "/timeline/" + TimelineId.generate() + "/adopt",
                    adopt)
                .status())
        .isEqualTo(404);
    assertThat(call(ADOPT, "POST", tlPath() + "/adopt", adopt.replace("\"up_to\"", "\"upto\"")))
        .extracting(HttpJson.Response::status)
        .isEqualTo(400);
    assertThat(call(ADOPT, "POST", tlPath() + "/adopt", oversized()).status()).isEqualTo(413);
    // The term's own entry: the election of term 2 ends here.
    String adopt2 =
        "{\"term\": 2, \"history\": [{\"term\": 1, \"start_lsn\": \"%s\"}, {\"term\": 2, \"start_lsn\": \"%s\"}], \"up_to\": \"%s\", \"donor_id\": 1}"
            .formatted(START, START, START);
    assertThat(call(ADOPT, "POST", tlPath() + "/adopt", adopt2).status()).isEqualTo(200);
  }

  @Test
  @Order(3)
  void computeConfigAndMetrics() {
    int nobody = SafekeeperSet.freePort();
    String compute =
        "{\"term\": 2, \"host\": \"127.0.0.1\", \"port\": %d, \"user\": \"postgres\"}"
            .formatted(nobody);
    HttpJson.Response set = call(COMPUTE, "PUT", tlPath() + "/compute", compute);
    assertThat(set.status()).as(set.toString()).isEqualTo(200);
    assertThat(set.json().path("compute").path("port").asInt()).isEqualTo(nobody);
    assertThat(set.json().path("intake").asText()).isIn("connecting", "failed");
    HttpJson.Response old =
        call(COMPUTE, "PUT", tlPath() + "/compute", compute.replace("\"term\": 2", "\"term\": 1"));
    assertThat(old.status()).isEqualTo(409);
    assertThat(old.error())
        .isEqualTo("the compute belongs to term 1, but this safekeeper's term is 2");
    assertThat(call(COMPUTE, "PUT", tlPath() + "/compute", compute.replace("127.0.0.1", "")))
        .extracting(HttpJson.Response::status)
        .isEqualTo(400);
    assertThat(
            call(
                    COMPUTE,
                    "PUT",
                    "/v1/tenant/" + tenant + "/timeline/" + TimelineId.generate() + "/compute",
                    compute)
                .status())
        .isEqualTo(404);
    assertThat(call(COMPUTE, "PUT", tlPath() + "/compute", oversized()).status()).isEqualTo(413);

    // The compute of term 2 stopped. A stop of another term's compute leaves it alone.
    HttpJson.Response other = call(COMPUTE, "DELETE", tlPath() + "/compute", "{\"term\": 1}");
    assertThat(other.status()).isEqualTo(409);
    assertThat(other.error())
        .isEqualTo("the compute here belongs to term 2, not to term 1; it was left alone");
    for (String[] bad :
        List.of(
            new String[] {"{}", "field 'term' is required"},
            new String[] {"{\"term\": 0}", "field 'term' must be at least 1, got 0"},
            new String[] {"{\"term\": \"2\"}", "term"},
            new String[] {"{\"term\": null}", "term"},
            new String[] {"{\"term\": 2, \"host\": \"127.0.0.1\"}", "host"},
            new String[] {"{\"term\": 2} {}", ""},
            new String[] {"", ""})) {
      HttpJson.Response r = call(COMPUTE, "DELETE", tlPath() + "/compute", bad[0]);
      assertThat(r.status()).as(r.toString()).isEqualTo(400);
      assertThat(r.error()).contains(bad[1]);
    }
    assertThat(
            call(
                    COMPUTE,
                    "DELETE",
                    "/v1/tenant/" + tenant + "/timeline/" + TimelineId.generate() + "/compute",
                    "{\"term\": 2}")
                .status())
        .isEqualTo(404);
    assertThat(call(COMPUTE, "DELETE", tlPath() + "/compute", oversized()).status()).isEqualTo(413);
    assertThat(call(TIMELINE, "GET", tlPath(), null).json().path("compute").path("term").asLong())
        .as("untouched by refused stops")
        .isEqualTo(2);
    HttpJson.Response stopped = call(COMPUTE, "DELETE", tlPath() + "/compute", "{\"term\": 2}");
    assertThat(stopped.status()).as(stopped.toString()).isEqualTo(200);
    assertThat(stopped.json().path("compute").isNull()).isTrue();
    assertThat(stopped.json().path("intake").asText()).isEqualTo("idle");
    assertThat(stopped.json().path("intake_error").isNull()).isTrue();
    assertThat(stopped.json().path("stopped_compute_term").asLong()).isEqualTo(2);
    // Stopping again is harmless; taking the stopped compute up again is not allowed.
    HttpJson.Response twice = call(COMPUTE, "DELETE", tlPath() + "/compute", "{\"term\": 2}");
    assertThat(twice.status()).isEqualTo(200);
    assertThat(twice.json().path("compute").isNull()).isTrue();
    HttpJson.Response revived = call(COMPUTE, "PUT", tlPath() + "/compute", compute);
    assertThat(revived.status()).isEqualTo(409);
    assertThat(revived.error())
        .isEqualTo(
            "the compute of term 2 has stopped; a new compute needs a new term (an election)");

    String limits =
        "{\"max_replication_write_lag\": 1048576, \"max_replication_flush_lag\": 0, \"max_replication_apply_lag\": 0}";
    HttpJson.Response cfg = call(CONFIG, "PUT", tlPath() + "/config", limits);
    assertThat(cfg.status()).isEqualTo(200);
    assertThat(cfg.json().path("lag_limits").path("max_replication_write_lag").asLong())
        .isEqualTo(1048576);
    assertThat(call(CONFIG, "PUT", tlPath() + "/config", limits.replace("1048576", "-1")))
        .extracting(HttpJson.Response::error)
        .isEqualTo(
            "field 'max_replication_write_lag' must be a number of bytes, 0 for no limit; got -1");
    assertThat(
            call(
                    CONFIG,
                    "PUT",
                    "/v1/tenant/" + tenant + "/timeline/" + TimelineId.generate() + "/config",
                    limits)
                .status())
        .isEqualTo(404);
    assertThat(call(CONFIG, "PUT", tlPath() + "/config", oversized()).status()).isEqualTo(413);

    HttpJson.Response m = call(METRICS, "GET", METRICS, null);
    assertThat(m.body())
        .contains("safekeeper_term{")
        .contains("safekeeper_flush_lsn{")
        .contains("timeline_id=\"" + tl + "\"");
  }

  @Test
  @Order(4)
  void serverErrors() {
    // An adoption that must copy WAL from a safekeeper this one does not know: a 5xx naming it.
    String adopt =
        "{\"term\": 3, \"history\": [{\"term\": 3, \"start_lsn\": \"%s\"}], \"up_to\": \"0/3001000\", \"donor_id\": 7}"
            .formatted(START);
    HttpJson.Response r = call(ADOPT, "POST", tlPath() + "/adopt", adopt);
    assertThat(r.status()).as(r.toString()).isEqualTo(500);
    assertThat(r.error()).contains("safekeeper 7 is not a configured peer");
    // ... and the server goes on answering.
    assertThat(call(TIMELINE, "GET", tlPath(), null).json().path("term").asLong()).isEqualTo(3);
  }

  @Test
  @Order(5)
  void unknownEndpointsAnswerJsonNotFound() {
    for (String[] req :
        List.of(
            new String[] {"GET", "/v2/status"},
            new String[] {"GET", "/"},
            new String[] {"DELETE", STATUS},
            new String[] {"POST", "/v1/timeline"},
            new String[] {"GET", tlPath() + "/vote"})) {
      HttpJson.Response r = http.call(req[0], req[1], (String) null);
      assertThat(r.status()).as(r.toString()).isEqualTo(404);
      assertThat(r.contentType()).isEqualTo("application/json");
      spec.validateComponent("Error", r.json());
      assertThat(r.error()).isEqualTo("no such endpoint: " + req[0] + " " + req[1]);
    }
  }

  @Test
  @Order(6)
  void aDeletedTimelineIsGoneForGood() {
    TimelineId gone = TimelineId.generate();
    String base = "/v1/tenant/" + tenant + "/timeline";
    assertThat(call(TIMELINES, "POST", base, createBody(gone)).status()).isEqualTo(201);
    String path = base + "/" + gone;
    HttpJson.Response d = call(TIMELINE, "DELETE", path, null);
    assertThat(d.status()).as(d.toString()).isEqualTo(200);
    assertThat(d.json().path("timeline_id").asText()).isEqualTo(gone.toString());
    assertThat(d.json().path("deleted_now").asBoolean()).isTrue();
    HttpJson.Response again = call(TIMELINE, "DELETE", path, null);
    assertThat(again.status()).isEqualTo(200);
    assertThat(again.json().path("deleted_now").asBoolean()).as("idempotent").isFalse();
    assertThat(call(TIMELINE, "DELETE", base + "/" + TimelineId.generate(), null).status())
        .isEqualTo(404);
    assertThat(call(TIMELINE, "DELETE", "/v1/tenant/x/timeline/y", null).status()).isEqualTo(400);

    HttpJson.Response get = call(TIMELINE, "GET", path, null);
    assertThat(get.status()).isEqualTo(410);
    assertThat(get.error())
        .isEqualTo(
            "timeline "
                + tenant
                + "/"
                + gone
                + " was deleted on safekeeper 1 (a deleted timeline's id is never used again)");
    assertThat(call(TIMELINES, "POST", base, createBody(gone)).status()).isEqualTo(410);
    for (String[] req :
        List.of(
            new String[] {VOTE, "POST", "/vote"},
            new String[] {ADOPT, "POST", "/adopt"},
            new String[] {COMPUTE, "PUT", "/compute"},
            new String[] {COMPUTE, "DELETE", "/compute"},
            new String[] {CONFIG, "PUT", "/config"})) {
      HttpJson.Response r = call(req[0], req[1], path + req[2], "{}");
      assertThat(r.status()).as(r.toString()).isEqualTo(410);
    }
    assertThat(call(ALL, "GET", ALL, null).json().findValuesAsText("timeline_id"))
        .doesNotContain(gone.toString());
  }

  @Test
  @Order(99)
  void everyAnswerTheSpecListsWasSeen() {
    Set<String> expected =
        spec.listedResponses().stream()
            .filter(s -> !s.endsWith(" default"))
            // 401 and 403: this server checks no tokens; CliAuthTest sees them against this spec
            .filter(s -> !s.endsWith(" 401") && !s.endsWith(" 403"))
            .filter(s -> !s.endsWith(" 5XX") || s.startsWith("POST " + ADOPT))
            .collect(Collectors.toCollection(TreeSet::new));
    assertThat(spec.seenResponses()).containsAll(expected);
  }
}
