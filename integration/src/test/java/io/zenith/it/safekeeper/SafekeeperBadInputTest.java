package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.it.pageserver.HttpJson;
import io.zenith.it.pageserver.OpenApiContract;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad input to a running safekeeper's HTTP API: each bad request gets a 4xx answer whose one-line
 * JSON error says precisely what is wrong (checked against the spec's Error schema), the timeline
 * it was aimed at is unchanged, and the server goes on answering.
 */
@ExtendWith(NettyLeakCheck.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class SafekeeperBadInputTest {
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
    HttpJson.Response r =
        http.call(
            "POST",
            "/v1/tenant/" + tenant + "/timeline",
            SafekeeperApiConformanceTest.createBody(tl));
    assertThat(r.status()).as(r.toString()).isEqualTo(201);
  }

  @AfterAll
  void stop() {
    if (set != null) {
      set.close();
    }
  }

  private record Bad(String method, String path, String body, int status, String error) {}

  @Test
  void everyBadRequestIsRefusedWithAOneLineReasonAndTheServerGoesOn() {
    String base = "/v1/tenant/" + tenant + "/timeline";
    String tlp = base + "/" + tl;
    String create = SafekeeperApiConformanceTest.createBody(TimelineId.generate());
    List<Bad> cases =
        List.of(
            new Bad("POST", tlp + "/vote", "", 400, "a JSON body is required"),
            new Bad("POST", tlp + "/vote", "{", 400, null),
            new Bad("POST", tlp + "/vote", "[1]", 400, "the body must be a JSON object, not array"),
            new Bad(
                "POST",
                tlp + "/vote",
                "{\"term\": 1} {}",
                400,
                "invalid JSON: more content after the JSON object"),
            new Bad("POST", tlp + "/vote", "{\"term\": 1, \"x\": 2}", 400, "unknown field 'x'"),
            new Bad(
                "POST",
                tlp + "/vote",
                "{\"term\": 1, \"term\": 2}",
                400,
                "invalid JSON: Duplicate field 'term'"),
            new Bad(
                "POST",
                tlp + "/vote",
                "{\"term\": null}",
                400,
                "field 'term' must not be null (leave an optional field out)"),
            new Bad("POST", tlp + "/vote", "{}", 400, "field 'term' is required"),
            new Bad(
                "POST", tlp + "/vote", "{\"term\": \"1\"}", 400, "field 'term' must be an integer"),
            new Bad(
                "POST", tlp + "/vote", "{\"term\": 1.5}", 400, "field 'term' must be an integer"),
            new Bad(
                "POST", tlp + "/vote", "{\"term\": true}", 400, "field 'term' must be an integer"),
            new Bad(
                "POST",
                tlp + "/vote",
                "{\"term\": -4}",
                400,
                "field 'term' must be at least 1, got -4"),
            new Bad(
                "POST",
                base,
                create.replace("\"7301234567890123456\"", "7301234567890123456"),
                400,
                "field 'system_id' must be a string"),
            new Bad(
                "POST",
                base,
                create.replace("7301234567890123456", "-1"),
                400,
                "field 'system_id' must be the database system identifier in decimal, got \"-1\""),
            new Bad(
                "POST",
                base,
                create.replace("7301234567890123456", "99999999999999999999"),
                400,
                "field 'system_id' is out of range: 99999999999999999999"),
            new Bad(
                "POST",
                base,
                create.replace("\"pg_version\": 15,", ""),
                400,
                "field 'pg_version' is required"),
            new Bad(
                "POST",
                base,
                create.replace("\"pg_version\": 15", "\"pg_version\": 14"),
                400,
                "field 'pg_version': only PostgreSQL 15 is supported, got 14"),
            new Bad(
                "POST",
                base,
                create.replace("16777216", "1000"),
                400,
                "field 'wal_segment_size' must be a power of two from 1 MiB to 1 GiB, got 1000"),
            new Bad(
                "POST",
                base,
                create.replace(SafekeeperApiConformanceTest.START, "0/zz"),
                400,
                null),
            new Bad(
                "POST",
                base,
                create.replace(SafekeeperApiConformanceTest.START, "0/3000010"),
                400,
                "field 'start_lsn': 0/3000010 points into a WAL page header, not at a record start"),
            new Bad(
                "POST",
                base,
                create.replace(SafekeeperApiConformanceTest.START, "0/3000029"),
                400,
                "field 'start_lsn': 0/3000029 is not MAXALIGNed, so no record starts there"),
            new Bad(
                "POST",
                base,
                create.replace(SafekeeperApiConformanceTest.START, "0/0"),
                400,
                "field 'start_lsn' must not be 0/0"),
            new Bad(
                "POST",
                base,
                create.replaceFirst("\"[0-9a-f]{32}\"", "\"" + "A".repeat(32) + "\""),
                400,
                null),
            new Bad(
                "POST",
                base,
                create.replace("}", ", \"max_replication_flush_lag\": \"1GiB\"}"),
                400,
                "field 'max_replication_flush_lag' must be an integer"),
            new Bad(
                "POST",
                tlp + "/adopt",
                "{\"term\": 1, \"history\": [null], \"up_to\": \"0/3000028\", \"donor_id\": 1}",
                400,
                "field 'history[0]' must not be null (leave an optional field out)"),
            new Bad(
                "POST",
                tlp + "/adopt",
                "{\"term\": 1, \"history\": [{\"term\": 1}], \"up_to\": \"0/3000028\", \"donor_id\": 1}",
                400,
                "history[0] needs term and start_lsn"),
            new Bad(
                "POST",
                tlp + "/adopt",
                "{\"term\": 1, \"history\": [{\"term\": 1, \"start_lsn\": \"x\"}], \"up_to\": \"0/3000028\", \"donor_id\": 1}",
                400,
                null),
            new Bad(
                "POST",
                tlp + "/adopt",
                "{\"term\": 1, \"history\": {}, \"up_to\": \"0/3000028\", \"donor_id\": 1}",
                400,
                "field 'history' must be an array"),
            new Bad(
                "POST",
                tlp + "/adopt",
                "{\"term\": 1, \"history\": [], \"up_to\": \"0/3000028\", \"donor_id\": 1}",
                400,
                "a history to adopt must not be empty"),
            new Bad(
                "POST",
                tlp + "/adopt",
                "{\"term\": 1, \"history\": [{\"term\": 2, \"start_lsn\": \"0/3000028\"}], \"up_to\": \"0/3000028\", \"donor_id\": 1}",
                400,
                "the history's last term 2 is above term 1"),
            new Bad(
                "PUT",
                tlp + "/compute",
                "{\"term\": 1, \"host\": \"h\", \"port\": 70000, \"user\": \"u\"}",
                400,
                "field 'port' must be between 1 and 65535, got 70000"),
            new Bad(
                "PUT",
                tlp + "/compute",
                "{\"term\": 1, \"host\": \"h\", \"port\": 5432}",
                400,
                "field 'user' is required"),
            new Bad(
                "PUT",
                tlp + "/config",
                "{\"max_replication_write_lag\": 0, \"max_replication_flush_lag\": 0}",
                400,
                "field 'max_replication_apply_lag' is required"),
            new Bad("GET", "/v1/tenant/" + tenant + "/timeline/" + "F".repeat(32), null, 400, null),
            new Bad("GET", "/v1/tenant/short/timeline", null, 400, null),
            new Bad(
                "POST",
                tlp + "/vote",
                SafekeeperApiConformanceTest.oversized(),
                413,
                "request body larger than 65536 bytes"));
    String before = http.get(tlp).body();
    for (Bad b : cases) {
      HttpJson.Response r = http.call(b.method(), b.path(), b.body());
      assertThat(r.status()).as(r.toString()).isEqualTo(b.status());
      assertThat(r.contentType()).isEqualTo("application/json");
      spec.validateComponent("Error", r.json());
      assertThat(r.error()).as(r.toString()).isNotBlank().doesNotContain("\n");
      if (b.error() != null) {
        assertThat(r.error()).as(r.toString()).isEqualTo(b.error());
      }
      assertThat(http.get("/v1/status").status()).isEqualTo(200);
    }
    assertThat(http.get(tlp).body()).as("the timeline is unchanged").isEqualTo(before);
    assertThat(http.get(base).json()).hasSize(1);
  }
}
