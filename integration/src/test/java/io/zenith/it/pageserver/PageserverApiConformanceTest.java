package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
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
 * The pageserver's HTTP API against its contract, {@code docs/api/pageserver.yaml}: every endpoint
 * is called over real HTTP, in its success and its listed error answers, and every answer's status,
 * content type and body are checked against what the document lists for that path and method. The
 * last test checks that every answer the document lists was seen (server errors aside, which {@link
 * PageserverBadInputTest} provokes).
 */
@ExtendWith(NettyLeakCheck.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PageserverApiConformanceTest {
  private static final String STATUS = "/v1/status";
  private static final String TENANTS = "/v1/tenant";
  private static final String TENANT = "/v1/tenant/{tenant_id}";
  private static final String ATTACH = TENANT + "/attach";
  private static final String TIMELINES = "/v1/tenant/{tenant_id}/timeline";
  private static final String TIMELINE = "/v1/tenant/{tenant_id}/timeline/{timeline_id}";
  private static final String CHECKPOINT = TIMELINE + "/checkpoint";
  private static final String WAL_SOURCE = TIMELINE + "/wal_source";
  private static final String COMPACT = TIMELINE + "/compact";
  private static final String DO_GC = TIMELINE + "/do_gc";
  private static final String LAYER = TIMELINE + "/layer";
  private static final String LSN_BY_TIMESTAMP = TIMELINE + "/lsn_by_timestamp";
  private static final String METRICS = "/metrics";
  private static final String SNAPSHOT = TIMELINE + "/snapshot";
  private static final String SNAPSHOT_IMPORT = TENANT + "/snapshot";
  private static final String DETACH = TENANT + "/detach";
  private static final String RESTORE_WAL = TIMELINE + "/restore_offloaded_wal";

  @TempDir static Path data;
  private final TenantId tenant = TenantId.generate();
  private final TimelineId main = TimelineId.generate();
  private final OpenApiContract spec = OpenApiContract.repositorySpec("pageserver.yaml");
  private Pageserver ps;
  private HttpJson http;

  @BeforeAll
  void start() {
    PageserverHarness.importTimeline(data, tenant, main);
    // with the local remote storage `zenith init` sets up: uploads and remote_consistent_lsn
    ps =
        Pageserver.start(
            data,
            PageserverHarness.config("8MiB", "5s", 1)
                .withRemoteStorage(RemoteStorageConfig.local(data.resolve("remote"))));
    http = new HttpJson(ps.httpPort());
  }

  @AfterAll
  void stop() {
    if (ps != null) {
      ps.close();
    }
  }

  private HttpJson.Response call(String template, String method, String path, String body) {
    return spec.check(template, http.call(method, path, body));
  }

  private static String tl(TenantId t, TimelineId tl) {
    return "/v1/tenant/" + t + "/timeline/" + tl;
  }

  @Test
  @Order(1)
  void statusAndTenants() {
    JsonNode status = call(STATUS, "GET", STATUS, null).json();
    assertThat(status.path("pg_version").asInt()).isEqualTo(15);
    assertThat(status.path("id").asText()).isEqualTo("test");
    assertThat(status.path("remote_deletion").path("pending_lists").isIntegralNumber())
        .as(status.toString())
        .isTrue();

    HttpJson.Response list = call(TENANTS, "GET", TENANTS, null);
    assertThat(list.status()).isEqualTo(200);
    assertThat(list.json().findValuesAsText("id")).contains(tenant.toString());

    HttpJson.Response generated = call(TENANTS, "POST", TENANTS, "{}");
    assertThat(generated.status()).isEqualTo(201);
    assertThat(generated.json().path("timelines").asInt()).isZero();

    TenantId chosen = TenantId.generate();
    String body = "{\"new_tenant_id\": \"" + chosen + "\"}";
    HttpJson.Response created = call(TENANTS, "POST", TENANTS, body);
    assertThat(created.status()).isEqualTo(201);
    assertThat(created.json().path("id").asText()).isEqualTo(chosen.toString());
    assertThat(call(TENANTS, "POST", TENANTS, body).status()).isEqualTo(409);
    assertThat(call(TENANTS, "POST", TENANTS, "{\"new_tenant_id\": \"zz\"}").status())
        .isEqualTo(400);
    assertThat(call(TENANTS, "POST", TENANTS, oversized()).status()).isEqualTo(413);

    // Generations (ADR 0026): 1 when the control plane gave none; an attach raises it, never
    // lowers it.
    assertThat(created.json().path("generation").asInt()).isEqualTo(1);
    String attach = "/v1/tenant/" + chosen + "/attach";
    HttpJson.Response raised = call(ATTACH, "POST", attach, "{\"generation\": 3}");
    assertThat(raised.status()).isEqualTo(200);
    assertThat(raised.json().path("generation").asInt()).isEqualTo(3);
    assertThat(call(ATTACH, "POST", attach, "{\"generation\": 3}").status()).isEqualTo(200);
    HttpJson.Response older = call(ATTACH, "POST", attach, "{\"generation\": 2}");
    assertThat(older.status()).isEqualTo(409);
    assertThat(older.json().path("error").asText()).contains("older than its generation 3");
    assertThat(call(ATTACH, "POST", attach, "{\"generation\": 0}").status()).isEqualTo(400);
    assertThat(call(ATTACH, "POST", attach, "{}").status()).isEqualTo(400);
    assertThat(call(ATTACH, "POST", attach, oversized()).status()).isEqualTo(413);
    String unknown = "/v1/tenant/" + TenantId.generate() + "/attach";
    assertThat(call(ATTACH, "POST", unknown, "{\"generation\": 1}").status()).isEqualTo(404);

    JsonNode tenants = call(TENANTS, "GET", TENANTS, null).json();
    assertThat(tenants.findValuesAsText("id"))
        .contains(chosen.toString(), generated.json().path("id").asText());
    List<String> ids = tenants.findValuesAsText("id");
    assertThat(ids).as("tenants in id order").isSorted();

    HttpJson.Response none = call(TIMELINES, "GET", "/v1/tenant/" + chosen + "/timeline", null);
    assertThat(none.status()).isEqualTo(200);
    assertThat(none.json()).isEmpty();
  }

  /** A body larger than the API accepts (64 KiB), well-formed otherwise. */
  private static String oversized() {
    char[] pad = new char[70 * 1024];
    Arrays.fill(pad, 'a');
    return "{\"new_tenant_id\": \"" + new String(pad) + "\"}";
  }

  @Test
  @Order(2)
  void timelinesAndBranches() {
    String base = "/v1/tenant/" + tenant + "/timeline";
    HttpJson.Response list = call(TIMELINES, "GET", base, null);
    assertThat(list.json()).hasSize(1);
    JsonNode mainInfo = list.json().get(0);
    assertThat(mainInfo.path("timeline_id").asText()).isEqualTo(main.toString());
    assertThat(mainInfo.has("logical_size")).as("only single-timeline answers have it").isFalse();
    assertThat(mainInfo.path("ancestor_timeline_id").isNull()).isTrue();
    assertThat(call(TIMELINES, "GET", "/v1/tenant/nothex/timeline", null).status()).isEqualTo(400);
    assertThat(call(TIMELINES, "GET", "/v1/tenant/" + TenantId.generate() + "/timeline", null))
        .extracting(HttpJson.Response::status)
        .isEqualTo(404);

    JsonNode one = call(TIMELINE, "GET", tl(tenant, main), null).json();
    assertThat(one.has("logical_size")).as("only when asked").isFalse();
    JsonNode sized = call(TIMELINE, "GET", tl(tenant, main) + "?include-size=true", null).json();
    assertThat(sized.path("logical_size").asLong()).isPositive();
    assertThat(
            call(TIMELINE, "GET", tl(tenant, main) + "?include-size=false", null)
                .json()
                .has("logical_size"))
        .isFalse();
    HttpJson.Response bad = call(TIMELINE, "GET", tl(tenant, main) + "?include-size=yes", null);
    assertThat(bad.status()).isEqualTo(400);
    assertThat(bad.error()).contains("include-size");
    assertThat(one.path("state").asText()).isEqualTo("active");
    assertThat(one.path("flush_error").isNull()).as("flushes work").isTrue();
    assertThat(call(TIMELINE, "GET", "/v1/tenant/" + tenant + "/timeline/xyz", null).status())
        .isEqualTo(400);
    assertThat(call(TIMELINE, "GET", tl(tenant, TimelineId.generate()), null).status())
        .isEqualTo(404);

    TimelineId branch = TimelineId.generate();
    String last = one.path("last_record_lsn").asText();
    String req =
        "{\"new_timeline_id\": \"%s\", \"ancestor_timeline_id\": \"%s\", \"ancestor_start_lsn\": \"%s\"}"
            .formatted(branch, main, last);
    HttpJson.Response created = call(TIMELINES, "POST", base, req);
    assertThat(created.status()).as(created.toString()).isEqualTo(201);
    assertThat(created.json().path("ancestor_timeline_id").asText()).isEqualTo(main.toString());
    assertThat(created.json().path("ancestor_lsn").asText()).isEqualTo(last);
    assertThat(created.json().path("last_record_lsn").asText()).isEqualTo(last);
    assertThat(call(TIMELINES, "POST", base, req).status()).isEqualTo(409);
    String unknownAncestor =
        "{\"new_timeline_id\": \"%s\", \"ancestor_timeline_id\": \"%s\"}"
            .formatted(TimelineId.generate(), TimelineId.generate());
    assertThat(call(TIMELINES, "POST", base, unknownAncestor).status()).isEqualTo(404);
    assertThat(
            call(
                    TIMELINES,
                    "POST",
                    "/v1/tenant/" + TenantId.generate() + "/timeline",
                    "{\"new_timeline_id\": \"%s\", \"ancestor_timeline_id\": \"%s\"}"
                        .formatted(TimelineId.generate(), main))
                .status())
        .isEqualTo(404);
    String badLsn =
        "{\"new_timeline_id\": \"%s\", \"ancestor_timeline_id\": \"%s\", \"ancestor_start_lsn\": \"0/zz\"}"
            .formatted(TimelineId.generate(), main);
    assertThat(call(TIMELINES, "POST", base, badLsn).status()).isEqualTo(400);
    assertThat(call(TIMELINES, "POST", base, oversized()).status()).isEqualTo(413);

    // Without a branch point the branch starts at the ancestor's last record.
    TimelineId latest = TimelineId.generate();
    JsonNode l =
        call(
                TIMELINES,
                "POST",
                base,
                "{\"new_timeline_id\": \"%s\", \"ancestor_timeline_id\": \"%s\"}"
                    .formatted(latest, branch))
            .json();
    assertThat(l.path("ancestor_lsn").asText()).isEqualTo(last);
    List<String> ids = call(TIMELINES, "GET", base, null).json().findValuesAsText("timeline_id");
    assertThat(ids).hasSize(3).isSorted();
  }

  @Test
  @Order(3)
  void walSourceCheckpointAndMetrics() throws Exception {
    String path = tl(tenant, main);
    try (PgCluster compute = PageserverHarness.compute(ps, tenant, main, null, true)) {
      String source =
          "{\"host\": \"127.0.0.1\", \"port\": %d, \"user\": \"postgres\", \"slot\": \"pageserver\", \"application_name\": \"pageserver\"}"
              .formatted(compute.port());
      HttpJson.Response put = call(WAL_SOURCE, "PUT", path + "/wal_source", source);
      assertThat(put.status()).as(put.toString()).isEqualTo(200);
      assertThat(put.json().path("wal_receiver").path("port").asInt()).isEqualTo(compute.port());
      PgWal.await(
          Duration.ofSeconds(30),
          "the WAL receiver streams",
          () ->
              call(TIMELINE, "GET", path, null)
                  .json()
                  .path("wal_receiver")
                  .path("state")
                  .asText()
                  .equals("streaming"));
      compute.sql("CREATE TABLE t(i int); INSERT INTO t SELECT generate_series(1, 10000)");
      Lsn committed = Lsn.parse(compute.sql("SELECT pg_current_wal_insert_lsn()").trim());

      JsonNode cp = call(CHECKPOINT, "POST", path + "/checkpoint", null).json();
      assertThat(Lsn.parse(cp.path("disk_consistent_lsn").asText()))
          .as("a checkpoint makes everything ingested durable")
          .isEqualTo(Lsn.parse(cp.path("last_record_lsn").asText()))
          .isGreaterThanOrEqualTo(committed.plus(-64));
      // The layers and then the index are uploaded: remote_consistent_lsn follows (ADR 0023).
      Lsn disk = Lsn.parse(cp.path("disk_consistent_lsn").asText());
      PgWal.await(
          Duration.ofSeconds(30),
          "remote_consistent_lsn reaches " + disk,
          () -> {
            JsonNode t = call(TIMELINE, "GET", path, null).json();
            return !Lsn.parse(t.path("remote_consistent_lsn").asText()).isBefore(disk)
                && t.path("remote_upload").path("queue_length").asInt() == 0;
          });
      assertThat(
              data.resolve("remote/tenants/" + tenant + "/timelines/" + main)
                  .resolve("index_part-00000001"))
          .isRegularFile();
      assertThat(call(CHECKPOINT, "POST", "/v1/tenant/" + tenant + "/timeline/x/checkpoint", null))
          .extracting(HttpJson.Response::status)
          .isEqualTo(400);
      assertThat(
              call(CHECKPOINT, "POST", tl(tenant, TimelineId.generate()) + "/checkpoint", null)
                  .status())
          .isEqualTo(404);

      // Compaction and GC on request: their answers, and the timeline's layers after them.
      JsonNode compacted = call(COMPACT, "POST", path + "/compact", null).json();
      assertThat(compacted.path("timeline").path("layers").path("l0").asInt())
          .as("below compaction_threshold nothing merges: %s", compacted)
          .isPositive();
      JsonNode gc = call(DO_GC, "POST", path + "/do_gc", null).json();
      assertThat(gc.path("versions_removed").asLong()).isNotNegative();
      assertThat(call(TIMELINE, "GET", path, null).json().path("layers").path("bytes").asLong())
          .isPositive();
      for (String op : List.of("/compact", "/do_gc")) {
        String template = op.equals("/compact") ? COMPACT : DO_GC;
        assertThat(call(template, "POST", "/v1/tenant/" + tenant + "/timeline/x" + op, null))
            .extracting(HttpJson.Response::status)
            .isEqualTo(400);
        assertThat(call(template, "POST", tl(tenant, TimelineId.generate()) + op, null).status())
            .isEqualTo(404);
      }

      // The layer files: as many as the timeline's counts say, each in its directory.
      JsonNode layers = call(LAYER, "GET", path + "/layer", null).json();
      JsonNode counts = call(TIMELINE, "GET", path, null).json().path("layers");
      assertThat(layers.path("layers").size())
          .as("%s against %s", layers, counts)
          .isEqualTo(
              counts.path("l0").asInt() + counts.path("l1").asInt() + counts.path("image").asInt())
          .isPositive();
      for (JsonNode f : layers.path("layers")) {
        assertThat(
                data.resolve(
                    "tenants/"
                        + tenant
                        + "/timelines/"
                        + main
                        + "/"
                        + f.path("file_name").asText()))
            .isRegularFile();
        assertThat(f.path("kind").asText()).isIn("delta", "image");
        assertThat(f.path("size").asLong()).isPositive();
      }
      assertThat(call(LAYER, "GET", "/v1/tenant/" + tenant + "/timeline/x/layer", null).status())
          .isEqualTo(400);
      assertThat(call(LAYER, "GET", tl(tenant, TimelineId.generate()) + "/layer", null).status())
          .isEqualTo(404);

      // A basebackup after the inserts rebuilds pages through WAL redo.
      Path tar = Files.createTempFile(data, "bb", ".tar");
      assertThat(PageserverHarness.basebackup(ps, tenant, main, null, tar).exit()).isZero();

      HttpJson.Response metrics = call(METRICS, "GET", METRICS, null);
      assertThat(metrics.contentType()).startsWith("text/plain");
      checkPrometheusText(metrics.body());
      assertThat(sample(metrics.body(), "zenith_ingest_records_total", main.toString()))
          .isPositive();
      assertThat(sample(metrics.body(), "zenith_ingest_bytes_total", main.toString())).isPositive();
      assertThat(sample(metrics.body(), "zenith_timeline_last_record_lsn", main.toString()))
          .isGreaterThanOrEqualTo((double) committed.plus(-64).value());
      assertThat(sample(metrics.body(), "zenith_ingest_frozen_layers", main.toString()))
          .isNotNegative();
      assertThat(sample(metrics.body(), "zenith_walredo_requests_total", "outcome=\"ok\""))
          .isPositive();
      assertThat(sample(metrics.body(), "zenith_walredo_process_starts_total", "")).isPositive();
      assertThat(metrics.body()).contains("zenith_walredo_processes", "zenith_flush_duration");
      assertThat(sample(metrics.body(), "zenith_remote_uploads_total", "")).isPositive();
      assertThat(sample(metrics.body(), "zenith_remote_upload_bytes_total", "")).isPositive();
      assertThat(metrics.body())
          .contains(
              "zenith_remote_upload_duration_seconds_total",
              "zenith_remote_upload_queue",
              "zenith_remote_deletion_queue",
              "zenith_remote_deletions_total",
              "zenith_layer_downloads_total",
              "zenith_layer_download_failures_total",
              "zenith_layer_evictions_total",
              "zenith_layer_evicted_bytes_total");

      compute.stop();
    }
    HttpJson.Response deleted = call(WAL_SOURCE, "DELETE", path + "/wal_source", null);
    assertThat(deleted.status()).isEqualTo(200);
    assertThat(deleted.json().path("wal_receiver").isNull()).isTrue();
    assertThat(call(WAL_SOURCE, "DELETE", path + "/wal_source", null).status())
        .as("deleting again: was not streaming")
        .isEqualTo(200);
    String other = tl(tenant, TimelineId.generate()) + "/wal_source";
    assertThat(call(WAL_SOURCE, "DELETE", other, null).status()).isEqualTo(404);
    assertThat(call(WAL_SOURCE, "DELETE", "/v1/tenant/x/timeline/y/wal_source", null).status())
        .isEqualTo(400);
    String good = "{\"host\": \"127.0.0.1\", \"port\": 1}";
    assertThat(call(WAL_SOURCE, "PUT", other, good).status()).isEqualTo(404);
    assertThat(call(WAL_SOURCE, "PUT", path + "/wal_source", "{\"host\": \"h\", \"port\": 0}"))
        .extracting(HttpJson.Response::status)
        .isEqualTo(400);
    assertThat(call(WAL_SOURCE, "PUT", path + "/wal_source", oversized()).status()).isEqualTo(413);

    // Safekeepers as the source (none listens there): the receiver names the one it tries.
    HttpJson.Response sks =
        call(
            WAL_SOURCE,
            "PUT",
            path + "/wal_source",
            "{\"safekeepers\": [{\"id\": 7, \"host\": \"127.0.0.1\", \"port\": 1}]}");
    assertThat(sks.status()).as(sks.toString()).isEqualTo(200);
    assertThat(sks.json().path("wal_receiver").path("safekeeper_id").asInt()).isEqualTo(7);
    assertThat(sks.json().path("wal_receiver").path("port").asInt()).isEqualTo(1);
    assertThat(call(WAL_SOURCE, "DELETE", path + "/wal_source", null).status()).isEqualTo(200);
  }

  private static final Pattern SAMPLE =
      Pattern.compile(
          "[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*\\})?"
              + " ([-+]?[0-9.]+([eE][-+]?[0-9]+)?|NaN|[-+]Inf)");
  private static final Pattern TYPE =
      Pattern.compile("# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|summary|histogram|untyped)");

  /** Every line of a Prometheus text exposition (format 0.0.4) is a comment or a sample. */
  private static void checkPrometheusText(String body) {
    assertThat(body).endsWith("\n");
    for (String line : body.split("\n")) {
      if (line.startsWith("# HELP ")) {
        continue;
      }
      if (line.startsWith("# TYPE ")) {
        assertThat(line).matches(TYPE);
        continue;
      }
      assertThat(line).as("a sample line").matches(SAMPLE);
    }
  }

  /** The value of the first sample of {@code name} whose labels contain {@code label}. */
  static double sample(String body, String name, String label) {
    for (String line : body.split("\n")) {
      if ((line.startsWith(name + "{") || line.startsWith(name + " ")) && line.contains(label)) {
        return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
      }
    }
    throw new AssertionError("no sample " + name + " with " + label + " in\n" + body);
  }

  @Test
  @Order(4)
  void unknownEndpointsAnswerJsonNotFound() {
    for (String[] req :
        List.of(
            new String[] {"GET", "/v2/status"},
            new String[] {"GET", "/"},
            new String[] {"DELETE", STATUS},
            new String[] {"PATCH", "/v1/tenant"},
            new String[] {"GET", "/v1/tenant/" + tenant + "/timeline/" + main + "/nothing"})) {
      HttpJson.Response r = http.call(req[0], req[1], (String) null);
      assertThat(r.status()).as(r.toString()).isEqualTo(404);
      assertThat(r.contentType()).isEqualTo("application/json");
      spec.validateComponent("Error", r.json());
      assertThat(r.error()).isEqualTo("no such endpoint: " + req[0] + " " + req[1]);
    }
  }

  /** The names of the objects in a timeline's prefix of the local remote storage. */
  private Set<String> remoteFiles(String timeline) {
    Path dir = data.resolve("remote/tenants/" + tenant + "/timelines/" + timeline);
    if (!Files.isDirectory(dir)) {
      return Set.of();
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(Files::isRegularFile)
          .map(p -> p.getFileName().toString())
          .filter(n -> !n.startsWith("."))
          .collect(Collectors.toSet());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The branches of {@link #timelinesAndBranches}: main ← branch ← latest. */
  @Test
  @Order(5)
  void deletion() {
    String base = "/v1/tenant/" + tenant + "/timeline";
    JsonNode all = call(TIMELINES, "GET", base, null).json();
    String branch = null;
    String latest = null;
    for (JsonNode t : all) {
      if (main.toString().equals(t.path("ancestor_timeline_id").asText())) {
        branch = t.path("timeline_id").asText();
      }
    }
    for (JsonNode t : all) {
      if (t.path("ancestor_timeline_id").asText().equals(branch)) {
        latest = t.path("timeline_id").asText();
      }
    }
    assertThat(branch).isNotNull();
    assertThat(latest).isNotNull();

    HttpJson.Response refused = call(TIMELINE, "DELETE", base + "/" + branch, null);
    assertThat(refused.status()).isEqualTo(409);
    assertThat(refused.error())
        .isEqualTo(
            "timeline "
                + branch
                + " of tenant "
                + tenant
                + " has child timelines "
                + latest
                + ": delete them first");
    assertThat(call(TIMELINE, "DELETE", base + "/xyz", null).status()).isEqualTo(400);
    assertThat(call(TIMELINE, "DELETE", tl(tenant, TimelineId.generate()), null).status())
        .isEqualTo(404);

    // Their indexes are uploaded (an empty branch's too); a deletion empties the prefix (ADR 0024).
    for (String id : List.of(branch, latest)) {
      PgWal.await(
          Duration.ofSeconds(30),
          "the index of " + id + " uploaded",
          () -> remoteFiles(id).contains("index_part-00000001"));
    }
    HttpJson.Response deleted = call(TIMELINE, "DELETE", base + "/" + latest, null);
    assertThat(deleted.status()).as(deleted.toString()).isEqualTo(200);
    assertThat(deleted.json().path("timeline_id").asText()).isEqualTo(latest);
    assertThat(deleted.json().path("tenant_id").asText()).isEqualTo(tenant.toString());
    assertThat(call(TIMELINE, "GET", base + "/" + latest, null).status()).isEqualTo(404);
    assertThat(call(TIMELINE, "DELETE", base + "/" + latest, null).status()).isEqualTo(404);
    assertThat(call(TIMELINE, "DELETE", base + "/" + branch, null).status()).isEqualTo(200);
    assertThat(call(TIMELINES, "GET", base, null).json().findValuesAsText("timeline_id"))
        .containsExactly(main.toString());
    assertThat(data.resolve("tenants/" + tenant + "/timelines/" + branch)).doesNotExist();
    for (String id : List.of(branch, latest)) {
      PgWal.await(
          Duration.ofSeconds(30),
          "the remote prefix of " + id + " empty",
          () -> remoteFiles(id).isEmpty());
    }
    assertThat(remoteFiles(main.toString())).contains("index_part-00000001");
    JsonNode queue = call(STATUS, "GET", STATUS, null).json().path("remote_deletion");
    assertThat(queue.path("deletions").asLong()).as(queue.toString()).isPositive();
    assertThat(queue.path("set_aside").asLong()).isZero();
    // main is untouched
    assertThat(call(TIMELINE, "GET", tl(tenant, main), null).json().path("state").asText())
        .isEqualTo("active");
  }

  @Test
  @Order(5)
  void lsnByTimestamp() {
    String path = tl(tenant, main) + "/lsn_by_timestamp?timestamp=";
    // main has commits from the compute of walSourceCheckpointAndMetrics
    JsonNode future = call(LSN_BY_TIMESTAMP, "GET", path + "2999-01-01T00:00:00Z", null).json();
    assertThat(future.path("kind").asText()).isEqualTo("future");
    String lastCommit = future.path("commit_time").asText();
    JsonNode present = call(LSN_BY_TIMESTAMP, "GET", path + lastCommit, null).json();
    assertThat(present.path("kind").asText()).isEqualTo("present");
    assertThat(present.path("lsn").asText()).isEqualTo(future.path("lsn").asText());
    JsonNode past = call(LSN_BY_TIMESTAMP, "GET", path + "2000-01-01T00:00:00Z", null).json();
    assertThat(past.path("kind").asText()).isEqualTo("past");
    assertThat(past.path("lsn").asText())
        .isEqualTo(
            call(TIMELINE, "GET", tl(tenant, main), null).json().path("initdb_lsn").asText());
    assertThat(call(LSN_BY_TIMESTAMP, "GET", path + "never", null).status()).isEqualTo(400);
    assertThat(
            call(
                    LSN_BY_TIMESTAMP,
                    "GET",
                    tl(tenant, TimelineId.generate()) + "/lsn_by_timestamp?timestamp=" + lastCommit,
                    null)
                .status())
        .isEqualTo(404);
  }

  /**
   * A tenant created with a root timeline (the pageserver's own initdb) holds it; neither tenant's
   * ids reach the other's timelines; deleting it removes it and leaves the first tenant whole.
   */
  @Test
  @Order(6)
  void tenantWithARootTimelineIsIsolatedAndDeleted() {
    TenantId other = TenantId.generate();
    TimelineId root = TimelineId.generate();
    HttpJson.Response created =
        call(
            TENANTS,
            "POST",
            TENANTS,
            "{\"new_tenant_id\": \"" + other + "\", \"root_timeline_id\": \"" + root + "\"}");
    assertThat(created.status()).as(created.toString()).isEqualTo(201);
    assertThat(created.json().path("id").asText()).isEqualTo(other.toString());
    assertThat(created.json().path("timelines").asInt()).isEqualTo(1);
    JsonNode rootInfo = call(TIMELINE, "GET", tl(other, root), null).json();
    assertThat(
            rootInfo.path("ancestor_timeline_id").isMissingNode()
                || rootInfo.path("ancestor_timeline_id").isNull())
        .as(rootInfo.toString())
        .isTrue();
    assertThat(rootInfo.path("initdb_lsn").asText())
        .isEqualTo(rootInfo.path("last_record_lsn").asText());
    assertThat(call(TENANTS, "POST", TENANTS, "{\"root_timeline_id\": \"xyz\"}").status())
        .isEqualTo(400);

    // One tenant's id with the other's timeline id: not found, whichever way round.
    HttpJson.Response crossed = call(TIMELINE, "GET", tl(tenant, root), null);
    assertThat(crossed.status()).isEqualTo(404);
    assertThat(crossed.error()).isEqualTo("timeline " + root + " not found in tenant " + tenant);
    assertThat(call(TIMELINE, "GET", tl(other, main), null).status()).isEqualTo(404);
    HttpJson.Response branchAcross =
        call(
            TIMELINES,
            "POST",
            "/v1/tenant/" + tenant + "/timeline",
            "{\"new_timeline_id\": \""
                + TimelineId.generate()
                + "\", \"ancestor_timeline_id\": \""
                + root
                + "\"}");
    assertThat(branchAcross.status()).isEqualTo(404);
    assertThat(branchAcross.error())
        .isEqualTo("timeline " + root + " not found in tenant " + tenant);

    assertThat(call(TENANT, "DELETE", "/v1/tenant/xyz", null).status()).isEqualTo(400);
    HttpJson.Response deleted = call(TENANT, "DELETE", "/v1/tenant/" + other, null);
    assertThat(deleted.status()).as(deleted.toString()).isEqualTo(200);
    assertThat(deleted.json().path("tenant_id").asText()).isEqualTo(other.toString());
    assertThat(data.resolve("tenants/" + other)).doesNotExist();
    assertThat(call(TIMELINES, "GET", "/v1/tenant/" + other + "/timeline", null).status())
        .isEqualTo(404);
    HttpJson.Response again = call(TENANT, "DELETE", "/v1/tenant/" + other, null);
    assertThat(again.status()).isEqualTo(404);
    assertThat(again.error()).isEqualTo("tenant " + other + " not found");
    assertThat(call(TENANTS, "GET", TENANTS, null).json().findValuesAsText("id"))
        .contains(tenant.toString())
        .doesNotContain(other.toString());
    assertThat(call(TIMELINE, "GET", tl(tenant, main), null).json().path("state").asText())
        .isEqualTo("active");
  }

  /** Snapshots to share (ADR 0028): a push of main into a directory, and its import. */
  @Test
  @Order(7)
  void snapshots() throws IOException {
    String dir = data.resolve("snapshot1").toString();
    String push = "{\"branch\": \"main\", \"destination\": {\"local_path\": \"" + dir + "\"}}";
    HttpJson.Response pushed = call(SNAPSHOT, "POST", tl(tenant, main) + "/snapshot", push);
    assertThat(pushed.status()).as(pushed.toString()).isEqualTo(200);
    String lsn = pushed.json().path("lsn").asText();
    assertThat(lsn)
        .isEqualTo(
            call(TIMELINE, "GET", tl(tenant, main), null).json().path("last_record_lsn").asText());
    assertThat(Path.of(dir).resolve("manifest")).isRegularFile();
    assertThat(call(SNAPSHOT, "POST", tl(tenant, main) + "/snapshot", push).status())
        .isEqualTo(409);
    assertThat(
            call(
                    SNAPSHOT,
                    "POST",
                    tl(tenant, main) + "/snapshot",
                    "{\"lsn\": \"zz\", \"destination\": {\"local_path\": \"/tmp\"}}")
                .status())
        .isEqualTo(400);
    assertThat(
            call(SNAPSHOT, "POST", tl(tenant, TimelineId.generate()) + "/snapshot", push).status())
        .isEqualTo(404);
    assertThat(call(SNAPSHOT, "POST", tl(tenant, main) + "/snapshot", oversized()).status())
        .isEqualTo(413);

    String base = "/v1/tenant/" + tenant + "/snapshot";
    TimelineId copy = TimelineId.generate();
    String pull =
        "{\"new_timeline_id\": \"" + copy + "\", \"source\": {\"local_path\": \"" + dir + "\"}}";
    HttpJson.Response pulled = call(SNAPSHOT_IMPORT, "POST", base, pull);
    assertThat(pulled.status()).as(pulled.toString()).isEqualTo(201);
    assertThat(pulled.json().path("timeline_id").asText()).isEqualTo(copy.toString());
    assertThat(pulled.json().path("last_record_lsn").asText()).isEqualTo(lsn);
    assertThat(pulled.json().path("disk_consistent_lsn").asText()).isEqualTo(lsn);
    assertThat(
            pulled.json().path("ancestor_timeline_id").isMissingNode()
                || pulled.json().path("ancestor_timeline_id").isNull())
        .isTrue();
    assertThat(call(SNAPSHOT_IMPORT, "POST", base, pull).status()).isEqualTo(409);
    Path empty = Files.createDirectories(data.resolve("snapshot-empty"));
    HttpJson.Response none =
        call(
            SNAPSHOT_IMPORT,
            "POST",
            base,
            "{\"new_timeline_id\": \""
                + TimelineId.generate()
                + "\", \"source\": {\"local_path\": \""
                + empty
                + "\"}}");
    assertThat(none.status()).isEqualTo(400);
    assertThat(none.error())
        .endsWith("it has no manifest (an incomplete snapshot, or not a snapshot)");
    assertThat(
            call(SNAPSHOT_IMPORT, "POST", "/v1/tenant/" + TenantId.generate() + "/snapshot", pull)
                .status())
        .isEqualTo(404);
    assertThat(call(SNAPSHOT_IMPORT, "POST", base, oversized()).status()).isEqualTo(413);
    // a basebackup of the imported timeline, at its only LSN
    Path tar = Files.createTempFile(data, "bb", ".tar");
    assertThat(PageserverHarness.basebackup(ps, tenant, copy, null, tar).exit()).isZero();
  }

  /** Detach keeps the remote objects; an attach from them brings back every timeline (ADR 0027). */
  @Test
  @Order(8)
  void detachAndAttach() {
    String t = "/v1/tenant/" + tenant;
    JsonNode detail = call(TENANT, "GET", t, null).json();
    assertThat(detail.path("state").asText()).isEqualTo("attached");
    assertThat(call(TENANT, "GET", "/v1/tenant/xyz", null).status()).isEqualTo(400);
    TenantId unknown = TenantId.generate();
    assertThat(call(TENANT, "GET", "/v1/tenant/" + unknown, null).status()).isEqualTo(404);

    JsonNode before = call(TIMELINES, "GET", t + "/timeline", null).json();
    HttpJson.Response detached = call(DETACH, "POST", t + "/detach", null);
    assertThat(detached.status()).as(detached.toString()).isEqualTo(200);
    assertThat(detached.json().path("timelines").size()).isEqualTo(before.size());
    assertThat(data.resolve("tenants/" + tenant)).doesNotExist();
    assertThat(call(TENANT, "GET", t, null).status()).isEqualTo(404);
    assertThat(call(DETACH, "POST", t + "/detach", null).status()).isEqualTo(404);
    assertThat(call(DETACH, "POST", "/v1/tenant/xyz/detach", null).status()).isEqualTo(400);

    assertThat(call(ATTACH, "POST", t + "/attach", "{}").status()).isEqualTo(400);
    assertThat(call(ATTACH, "POST", t + "/attach", oversized()).status()).isEqualTo(413);
    // From remote storage in a newer generation (ADR 0026): it continues from the indexes of 1.
    String gen2 = "{\"generation\": 2}";
    assertThat(call(ATTACH, "POST", "/v1/tenant/" + unknown + "/attach", gen2).status())
        .isEqualTo(404);
    HttpJson.Response attached = call(ATTACH, "POST", t + "/attach", gen2);
    assertThat(attached.status()).as(attached.toString()).isEqualTo(200);
    assertThat(attached.json().path("generation").asInt()).isEqualTo(2);
    assertThat(attached.json().path("timelines").asInt()).isEqualTo(before.size());
    JsonNode shown = call(TENANT, "GET", t, null).json();
    assertThat(shown.path("state").asText()).isEqualTo("attached");
    assertThat(shown.path("generation").asInt()).isEqualTo(2);
    assertThat(shown.path("attach").path("timelines").size()).isEqualTo(before.size());
    assertThat(call(ATTACH, "POST", t + "/attach", gen2).status()).isEqualTo(200); // here now
    JsonNode after = call(TIMELINES, "GET", t + "/timeline", null).json();
    assertThat(after.findValuesAsText("timeline_id"))
        .containsExactlyInAnyOrderElementsOf(before.findValuesAsText("timeline_id"));
    for (JsonNode b : before) {
      JsonNode a =
          call(TIMELINE, "GET", t + "/timeline/" + b.path("timeline_id").asText(), null).json();
      assertThat(a.path("disk_consistent_lsn").asText())
          .as(a.toString())
          .isEqualTo(b.path("disk_consistent_lsn").asText());
      assertThat(a.path("state").asText()).isEqualTo("active");
    }
  }

  /**
   * The restore of a timeline's offloaded WAL (ADR 0029): this pageserver has remote storage but no
   * safekeeper ever offloaded WAL, so the timeline stays where it is; refused while the timeline
   * has a WAL source.
   */
  @Test
  @Order(9)
  void restoreOffloadedWal() {
    String path = tl(tenant, main);
    String before = call(TIMELINE, "GET", path, null).json().path("last_record_lsn").asText();
    HttpJson.Response r = call(RESTORE_WAL, "POST", path + "/restore_offloaded_wal", null);
    assertThat(r.status()).as(r.toString()).isEqualTo(200);
    assertThat(r.json().path("last_record_lsn").asText()).isEqualTo(before);
    String other = tl(tenant, TimelineId.generate()) + "/restore_offloaded_wal";
    assertThat(call(RESTORE_WAL, "POST", other, null).status()).isEqualTo(404);
    assertThat(
            call(RESTORE_WAL, "POST", "/v1/tenant/x/timeline/y/restore_offloaded_wal", null)
                .status())
        .isEqualTo(400);
    String source =
        "{\"host\": \"127.0.0.1\", \"port\": 1, \"user\": \"postgres\", \"slot\": \"pageserver\", \"application_name\": \"pageserver\"}";
    assertThat(call(WAL_SOURCE, "PUT", path + "/wal_source", source).status()).isEqualTo(200);
    HttpJson.Response refused = call(RESTORE_WAL, "POST", path + "/restore_offloaded_wal", null);
    assertThat(refused.status()).as(refused.toString()).isEqualTo(409);
    assertThat(refused.json().path("error").asText()).contains("has a WAL source");
    assertThat(call(WAL_SOURCE, "DELETE", path + "/wal_source", null).status()).isEqualTo(200);
  }

  @Test
  @Order(99)
  void everyAnswerTheSpecListsWasSeen() {
    Set<String> expected =
        spec.listedResponses().stream()
            .filter(s -> !s.endsWith(" 5XX") && !s.endsWith(" default"))
            // 401 and 403: this server checks no tokens; CliAuthTest sees them against this spec
            .filter(s -> !s.endsWith(" 401") && !s.endsWith(" 403"))
            .collect(Collectors.toCollection(TreeSet::new));
    assertThat(spec.seenResponses()).containsAll(expected);
  }
}
