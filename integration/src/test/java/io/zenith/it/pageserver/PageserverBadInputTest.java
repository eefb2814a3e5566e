package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.layer.Key;
import io.zenith.layer.LayerFile;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
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
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad input to a running pageserver, over its HTTP API and its libpq endpoint, while a compute
 * streams WAL to it: each bad request gets a 4xx JSON answer with a message that says precisely
 * what is wrong, and the server goes on answering good requests and ingesting WAL afterwards. Last,
 * a layer file of one timeline is damaged: reading it fails naming the file, and the other tenant's
 * timeline keeps serving basebackups and WAL.
 */
@ExtendWith(NettyLeakCheck.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PageserverBadInputTest {
  private static final Duration WAIT_LSN = Duration.ofSeconds(1);

  @TempDir static Path data;
  private final TenantId tenant = TenantId.generate();
  private final TimelineId main = TimelineId.generate();
  private final TenantId otherTenant = TenantId.generate();
  private final TimelineId other = TimelineId.generate();
  private final TimelineId broken = TimelineId.generate();
  private final OpenApiContract spec = OpenApiContract.repositorySpec("pageserver.yaml");
  private final PageserverConfig config = PageserverHarness.config("1MiB", "1s", 1);
  private Pageserver ps;
  private HttpJson http;
  private PgCluster compute;
  private int rows;

  @BeforeAll
  void start() {
    PageserverHarness.importTimeline(data, tenant, main);
    PageserverHarness.importTimeline(data, otherTenant, other);
    PageserverHarness.importTimeline(data, tenant, broken);
    ps = Pageserver.start(data, config);
    http = new HttpJson(ps.httpPort());
    compute = PageserverHarness.compute(ps, tenant, main, null, true);
    PageserverHarness.stream(ps, tenant, main, compute);
    // Some WAL (several pages and layers) so branch points have room on both sides.
    compute.sql("CREATE TABLE t(i int, v text)");
    insertRows(20_000);
  }

  @AfterAll
  void stop() {
    if (compute != null) {
      compute.close();
    }
    if (ps != null) {
      ps.close();
    }
  }

  private void insertRows(int n) {
    compute.sql(
        "INSERT INTO t SELECT g, repeat('x', 50) FROM generate_series(%d, %d) g"
            .formatted(rows + 1, rows + n));
    rows += n;
  }

  private String timelinePath() {
    return "/v1/tenant/" + tenant + "/timeline/" + main;
  }

  private JsonNode mainInfo() {
    HttpJson.Response r = http.get(timelinePath());
    assertThat(r.status()).as(r.toString()).isEqualTo(200);
    return r.json();
  }

  /** A bad request's answer: the status, a JSON error, and the message. */
  private void expect(String method, String path, Object body, int status, String message) {
    HttpJson.Response r =
        body instanceof byte[] b
            ? http.call(method, path, b)
            : http.call(method, path, (String) body);
    assertThat(r.status()).as(r.toString()).isEqualTo(status);
    assertThat(r.contentType()).as(r.toString()).isEqualTo("application/json");
    spec.validateComponent("Error", r.json());
    assertThat(r.error()).as(r.toString()).contains(message);
    assertThat(r.error()).as("one line").doesNotContain("\n").doesNotContain("java.");
    stillServes();
  }

  /** The server answers good requests. */
  private void stillServes() {
    assertThat(http.get("/v1/status").status()).isEqualTo(200);
    assertThat(mainInfo().path("state").asText()).isEqualTo("active");
  }

  @Test
  @Order(1)
  void malformedBodiesAre400WithAPreciseMessage() {
    String t = "/v1/tenant";
    expect("POST", t, "", 400, "a JSON body is required");
    expect("POST", t, null, 400, "a JSON body is required");
    expect("POST", t, "{", 400, "invalid JSON");
    expect("POST", t, "{\"new_tenant_id\": }", 400, "invalid JSON");
    expect("POST", t, "[]", 400, "the body must be a JSON object");
    expect("POST", t, "null", 400, "the body must be a JSON object");
    expect("POST", t, "\"x\"", 400, "the body must be a JSON object");
    expect("POST", t, "{} {}", 400, "invalid JSON: more content after the JSON object");
    expect("POST", t, "{\"tenant_id\": \"x\"}", 400, "unknown field 'tenant_id'");
    expect("POST", t, "{\"new_tenant_id\": 5}", 400, "field 'new_tenant_id' must be a string");
    expect("POST", t, "{\"new_tenant_id\": true}", 400, "field 'new_tenant_id' must be a string");
    expect(
        "POST", t, "{\"new_tenant_id\": [\"a\"]}", 400, "field 'new_tenant_id' must be a string");
    expect("POST", t, "{\"new_tenant_id\": null}", 400, "field 'new_tenant_id' must not be null");
    String id = TenantId.generate().toString();
    expect(
        "POST",
        t,
        "{\"new_tenant_id\": \"%s\", \"new_tenant_id\": \"%s\"}".formatted(id, id),
        400,
        "invalid JSON: Duplicate field 'new_tenant_id'");
    expect(
        "POST",
        t,
        "{\"new_tenant_id\": \"XYZ\"}",
        400,
        "invalid tenant id \"XYZ\": expected 32 lower-case hex characters");
    expect(
        "POST",
        t,
        "{\"new_tenant_id\": \"%s\"}".formatted(id.toUpperCase(java.util.Locale.ROOT)),
        400,
        "expected 32 lower-case hex characters");
    expect("POST", t, new byte[] {'{', '"', (byte) 0xC3, '"', '}'}, 400, "invalid JSON");
    char[] pad = new char[HTTP_MAX_BODY + 1];
    Arrays.fill(pad, ' ');
    expect("POST", t, "{" + new String(pad) + "}", 413, "request body larger than 65536 bytes");
    expect("POST", t, new byte[4 << 20], 413, "request body larger than 65536 bytes");

    String source = timelinePath() + "/wal_source";
    expect("PUT", source, "{\"host\": \"h\"}", 400, "wal_source needs a port between 1 and 65535");
    expect("PUT", source, "{\"port\": 5432}", 400, "wal_source needs a host");
    expect("PUT", source, "{\"host\": \"\", \"port\": 5432}", 400, "wal_source needs a host");
    expect(
        "PUT", source, "{\"host\": \"h\", \"port\": \"5432\"}", 400, "'port' must be an integer");
    expect("PUT", source, "{\"host\": \"h\", \"port\": 5432.5}", 400, "'port' must be an integer");
    expect("PUT", source, "{\"host\": \"h\", \"port\": 70000}", 400, "between 1 and 65535");
    expect("PUT", source, "{\"host\": \"h\", \"port\": -1}", 400, "between 1 and 65535");
    expect(
        "PUT",
        source,
        "{\"host\": \"h\", \"port\": 5432, \"slot\": \"Bad-Slot\"}",
        400,
        "invalid slot name \"Bad-Slot\"");
    expect(
        "PUT",
        source,
        "{\"host\": \"h\", \"port\": 5432, \"user\": \"\"}",
        400,
        "wal_source user must not be empty");
    expect("PUT", source, "{\"host\": \"h\", \"port\": 5432, \"x\": 1}", 400, "unknown field 'x'");
    // Safekeepers instead of a compute: a non-empty list of complete, distinct endpoints, alone.
    String sk = "{\"id\": 1, \"host\": \"h\", \"port\": 5454}";
    expect(
        "PUT",
        source,
        "{\"host\": \"h\", \"port\": 5432, \"safekeepers\": [" + sk + "]}",
        400,
        "wal_source has either host and port (a compute) or safekeepers, not both");
    expect(
        "PUT",
        source,
        "{\"slot\": \"s\", \"safekeepers\": [" + sk + "]}",
        400,
        "either host and port (a compute) or safekeepers, not both");
    expect("PUT", source, "{\"safekeepers\": []}", 400, "wal_source safekeepers must not be empty");
    expect("PUT", source, "{\"safekeepers\": null}", 400, "'safekeepers'");
    expect(
        "PUT",
        source,
        "{\"safekeepers\": [{\"id\": 1, \"host\": \"h\"}]}",
        400,
        "every wal_source safekeeper needs id, host and port");
    expect(
        "PUT",
        source,
        "{\"safekeepers\": [" + sk + ", " + sk + "]}",
        400,
        "wal_source safekeeper ids must be unique and not negative, got 1");
    expect(
        "PUT",
        source,
        "{\"safekeepers\": [{\"id\": 2, \"host\": \"h\", \"port\": 0}]}",
        400,
        "wal_source safekeeper 2 needs a port between 1 and 65535, got 0");
    expect(
        "PUT",
        source,
        "{\"safekeepers\": [{\"id\": 2, \"host\": \"h\", \"port\": 1, \"x\": 1}]}",
        400,
        "unknown field 'x'");
    // The receiver that was running is untouched by the refused requests.
    assertThat(mainInfo().path("wal_receiver").path("port").asInt()).isEqualTo(compute.port());
  }

  private static final int HTTP_MAX_BODY = 64 * 1024;

  @Test
  @Order(2)
  void malformedAndUnknownIdsAndPaths() {
    TenantId unknownTenant = TenantId.generate();
    TimelineId unknownTimeline = TimelineId.generate();
    expect(
        "GET",
        "/v1/tenant/xyz/timeline",
        null,
        400,
        "invalid tenant id \"xyz\": expected 32 lower-case hex characters");
    expect(
        "GET",
        "/v1/tenant/" + tenant + "/timeline/" + "0".repeat(33),
        null,
        400,
        "invalid timeline id \"" + "0".repeat(33) + "\"");
    expect(
        "GET",
        "/v1/tenant/" + unknownTenant + "/timeline",
        null,
        404,
        "tenant " + unknownTenant + " not found");
    expect(
        "GET",
        "/v1/tenant/" + tenant + "/timeline/" + unknownTimeline,
        null,
        404,
        "timeline " + unknownTimeline + " not found in tenant " + tenant);
    expect(
        "POST",
        "/v1/tenant/" + tenant + "/timeline/" + unknownTimeline + "/checkpoint",
        null,
        404,
        "timeline " + unknownTimeline + " not found");
    expect(
        "PUT",
        "/v1/tenant/" + unknownTenant + "/timeline/" + main + "/wal_source",
        "{\"host\": \"h\", \"port\": 1}",
        404,
        "tenant " + unknownTenant + " not found");
    expect("GET", "/v1/nothing", null, 404, "no such endpoint: GET /v1/nothing");
    expect("POST", "/v1/status", "{}", 404, "no such endpoint: POST /v1/status");
    expect("GET", "/v1/tenant/", null, 404, "no such endpoint: GET /v1/tenant/");
    String dup = TenantId.generate().toString();
    assertThat(http.call("POST", "/v1/tenant", "{\"new_tenant_id\": \"" + dup + "\"}").status())
        .isEqualTo(201);
    expect(
        "POST",
        "/v1/tenant",
        "{\"new_tenant_id\": \"" + dup + "\"}",
        409,
        "tenant " + dup + " already exists");
  }

  @Test
  @Order(3)
  void branchPointsAreChecked() {
    JsonNode info = mainInfo();
    Lsn start = Lsn.parse(info.path("initdb_lsn").asText());
    Lsn last = Lsn.parse(info.path("last_record_lsn").asText());
    assertThat(last.minus(start)).as("WAL to branch into").isGreaterThan(64 * 8192L);
    String path = "/v1/tenant/" + tenant + "/timeline";
    // A page boundary between start and last, not at a segment start.
    long page = (start.value() / 8192 + 2) * 8192;
    if (page % (16 << 20) == 0) {
      page += 8192;
    }
    Lsn inHeader = Lsn.of(page + 8);
    Lsn segmentStart = Lsn.of((last.value() / (16 << 20)) * (16 << 20));
    Lsn beyond = last.plus(8);

    expect(
        "POST",
        path,
        branch(TimelineId.generate(), main, null).replace("\"new_timeline_id\": \"", "\"x\": \""),
        400,
        "unknown field 'x'");
    expect(
        "POST",
        path,
        "{\"ancestor_timeline_id\": \"" + main + "\"}",
        400,
        "new_timeline_id and ancestor_timeline_id are required");
    expect("POST", path, branch(TimelineId.generate(), main, "0/zz"), 400, "invalid LSN \"0/zz\"");
    expect(
        "POST", path, branch(TimelineId.generate(), main, "1/2/3"), 400, "invalid LSN \"1/2/3\"");
    expect(
        "POST",
        path,
        branch(TimelineId.generate(), main, null).replace("}", ", \"ancestor_start_lsn\": 5}"),
        400,
        "field 'ancestor_start_lsn' must be a string");
    expect(
        "POST",
        path,
        branch(TimelineId.generate(), main, "0/8"),
        400,
        "cannot branch at 0/8: timeline " + main + " starts at " + start);
    expect(
        "POST",
        path,
        branch(TimelineId.generate(), main, beyond.toString()),
        400,
        "cannot branch at " + beyond + ": timeline " + main + " has WAL only up to " + last);
    expect(
        "POST",
        path,
        branch(TimelineId.generate(), main, inHeader.toString()),
        400,
        "cannot branch at " + inHeader + ": it points into a WAL page header");
    if (segmentStart.isAfter(start)) {
      Lsn inLongHeader = segmentStart.plus(32);
      expect(
          "POST",
          path,
          branch(TimelineId.generate(), main, inLongHeader.toString()),
          400,
          "it points into a WAL page header");
    }
    Lsn unaligned = Lsn.of(page + 1004);
    expect(
        "POST",
        path,
        branch(TimelineId.generate(), main, unaligned.toString()),
        400,
        "cannot branch at " + unaligned + ": not a record boundary");
    TimelineId unknown = TimelineId.generate();
    expect(
        "POST",
        path,
        branch(TimelineId.generate(), unknown, null),
        404,
        "timeline " + unknown + " not found in tenant " + tenant);
    expect(
        "POST",
        path,
        branch(main, main, null),
        409,
        "timeline " + main + " already exists in tenant " + tenant);

    // Good ones: at a page boundary, in lower case, and the taken id again.
    TimelineId b = TimelineId.generate();
    Lsn atPage = Lsn.of(page);
    HttpJson.Response ok =
        http.call(
            "POST", path, branch(b, main, atPage.toString().toLowerCase(java.util.Locale.ROOT)));
    assertThat(ok.status()).as(ok.toString()).isEqualTo(201);
    assertThat(ok.json().path("ancestor_lsn").asText()).isEqualTo(atPage.toString());
    expect("POST", path, branch(b, main, null), 409, "timeline " + b + " already exists");
  }

  private static String branch(TimelineId id, TimelineId ancestor, String lsn) {
    return "{\"new_timeline_id\": \"%s\", \"ancestor_timeline_id\": \"%s\"%s}"
        .formatted(id, ancestor, lsn == null ? "" : ", \"ancestor_start_lsn\": \"" + lsn + "\"");
  }

  @Test
  @Order(4)
  void aWalSourceThatCannotBeReachedIsReportedAndCanBeRemoved() throws Exception {
    TimelineId b = TimelineId.generate();
    String path = "/v1/tenant/" + tenant + "/timeline";
    assertThat(http.call("POST", path, branch(b, main, null)).status()).isEqualTo(201);
    int closedPort;
    try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
      closedPort = s.getLocalPort();
    }
    String source = path + "/" + b + "/wal_source";
    HttpJson.Response put =
        http.call("PUT", source, "{\"host\": \"127.0.0.1\", \"port\": " + closedPort + "}");
    assertThat(put.status()).as(put.toString()).isEqualTo(200);
    PgWal.await(
        Duration.ofSeconds(30),
        "the receiver reports the failed connection",
        () ->
            http.get(path + "/" + b)
                .json()
                .path("wal_receiver")
                .path("state")
                .asText()
                .equals("failed"));
    JsonNode receiver = http.get(path + "/" + b).json().path("wal_receiver");
    assertThat(receiver.path("last_error").asText()).contains("127.0.0.1:" + closedPort);
    HttpJson.Response deleted = http.call("DELETE", source, (String) null);
    assertThat(deleted.status()).isEqualTo(200);
    assertThat(deleted.json().path("wal_receiver").isNull()).isTrue();
    stillServes();
  }

  @Test
  @Order(5)
  void libpqBadInputAndAnLsnNotYetReceived() throws IOException {
    Lsn last = Lsn.parse(mainInfo().path("last_record_lsn").asText());
    Lsn future = Lsn.of((last.value() + (64 << 20)) & ~7L);
    Path tar = Files.createTempFile(data, "bb", ".tar");
    long t0 = System.nanoTime();
    PageserverHarness.Run r =
        PageserverHarness.basebackup(ps, tenant, main, future.toString(), tar);
    Duration took = Duration.ofNanos(System.nanoTime() - t0);
    assertThat(r.exit()).isNotZero();
    assertThat(r.output())
        .contains(
            "timed out after "
                + WAIT_LSN.toMillis()
                + " ms waiting for LSN "
                + future
                + " on timeline "
                + tenant
                + "/"
                + main);
    assertThat(took).isGreaterThanOrEqualTo(WAIT_LSN).isLessThan(WAIT_LSN.plusSeconds(10));

    Map<String, String> bad = new HashMap<>();
    bad.put("basebackup " + tenant + " " + main + " 0/zz", "invalid LSN \"0/zz\"");
    bad.put(
        "basebackup " + tenant + " " + main + " 0/8",
        "LSN 0/8 is before the start of timeline " + main);
    bad.put("basebackup " + tenant + " nothex", "invalid timeline id \"nothex\"");
    TimelineId unknown = TimelineId.generate();
    bad.put(
        "basebackup " + tenant + " " + unknown,
        "timeline " + unknown + " not found in tenant " + tenant);
    bad.put("basebackup", "usage: basebackup <tenant_id> <timeline_id> [<lsn>]");
    bad.put("DROP TABLE x", "unknown command: DROP TABLE x");
    for (Map.Entry<String, String> e : bad.entrySet()) {
      PageserverHarness.Run b = PageserverHarness.psql(ps, e.getKey(), tar);
      assertThat(b.exit()).as(e.getKey()).isNotZero();
      assertThat(b.output()).as(e.getKey()).contains("ERROR:").contains(e.getValue());
    }
    // ... and a good one still works, and the compute's commits still go through.
    PageserverHarness.Run good = PageserverHarness.basebackup(ps, tenant, main, null, tar);
    assertThat(good.exit()).as(good.output()).isZero();
    assertThat(Files.size(tar)).isGreaterThan(1 << 20);
    insertRows(100);
    assertThat(compute.sql("SELECT count(*) FROM t").trim()).isEqualTo(Integer.toString(rows));
  }

  @Test
  @Order(6)
  void aCorruptLayerFileIsNamedAndTheOtherTenantKeepsServing() throws IOException {
    compute.stop(); // waits until the pageserver has everything flushed
    assertThat(http.call("DELETE", timelinePath() + "/wal_source", (String) null).status())
        .isEqualTo(200);
    ps.close();
    ps = null;

    // Flip a byte in the middle of a relation page's blob that no other version hides.
    Path dir =
        data.resolve("tenants")
            .resolve(tenant.toString())
            .resolve("timelines")
            .resolve(main.toString());
    List<Path> layers;
    try (Stream<Path> s = Files.list(dir)) {
      layers = s.filter(p -> p.toString().endsWith(".layer")).sorted().toList();
    }
    Map<Key, Integer> versions = new HashMap<>();
    Map<Key, LayerFile.IndexEntry> where = new HashMap<>();
    Map<Key, Path> file = new HashMap<>();
    for (Path p : layers) {
      try (LayerFile.Reader r = LayerFile.Reader.open(p)) {
        for (LayerFile.IndexEntry e : r.readIndex()) {
          versions.merge(e.key(), 1, Integer::sum);
          where.put(e.key(), e);
          file.put(e.key(), p);
        }
      }
    }
    Key victim =
        versions.entrySet().stream()
            .filter(e -> e.getValue() == 1)
            .map(Map.Entry::getKey)
            .filter(k -> KeySpace.isRelKey(k) && !KeySpace.isRelSize(k) && k.field6() > 0)
            .filter(k -> where.get(k).length() > 1000)
            .sorted()
            .findFirst()
            .orElseThrow();
    LayerFile.IndexEntry e = where.get(victim);
    Path damaged = file.get(victim);
    long at = e.offset() + e.length() / 2;
    try (FileChannel ch =
        FileChannel.open(damaged, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ByteBuffer b = ByteBuffer.allocate(1);
      ch.read(b, at);
      b.put(0, (byte) (b.get(0) ^ 0x5A)).rewind();
      ch.write(b, at);
    }

    // And a damaged header in another timeline's layer file.
    Path brokenDir = dir.resolveSibling(broken.toString());
    Path brokenFile;
    try (Stream<Path> st = Files.list(brokenDir)) {
      brokenFile = st.filter(p -> p.toString().endsWith(".layer")).findFirst().orElseThrow();
    }
    flipByte(brokenFile, 50);

    ps = Pageserver.start(data, config);
    http = new HttpJson(ps.httpPort());
    brokenTimelineAnswers5xxNamingTheFile(brokenFile);
    // The damage is in a blob: the timeline loads, and the read that meets it fails naming it.
    assertThat(mainInfo().path("state").asText()).isEqualTo("active");
    Path tar = Files.createTempFile(data, "bb", ".tar");
    PageserverHarness.Run r = PageserverHarness.basebackup(ps, tenant, main, null, tar);
    assertThat(r.exit()).isNotZero();
    assertThat(r.output())
        .contains("ERROR:")
        .contains("corrupt layer file " + damaged)
        .contains("blob CRC mismatch at offset " + e.offset());

    // The other tenant's timeline serves basebackups and ingests WAL.
    try (PgCluster c = PageserverHarness.compute(ps, otherTenant, other, null, true)) {
      PageserverHarness.stream(ps, otherTenant, other, c);
      c.sql("CREATE TABLE o(i int); INSERT INTO o SELECT generate_series(1, 5000)");
      c.stop();
    }
    ps.stopWalReceiver(otherTenant, other);
    try (PgCluster again = PageserverHarness.compute(ps, otherTenant, other, null, false)) {
      assertThat(again.sql("SELECT count(*) FROM o").trim()).isEqualTo("5000");
    }
    // And the damaged timeline keeps failing the same way, not worse.
    PageserverHarness.Run r2 = PageserverHarness.basebackup(ps, tenant, main, null, tar);
    assertThat(r2.output()).contains("blob CRC mismatch at offset " + e.offset());
    stillServes();
  }

  private static void flipByte(Path file, long at) throws IOException {
    try (FileChannel ch =
        FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ByteBuffer b = ByteBuffer.allocate(1);
      ch.read(b, at);
      b.put(0, (byte) (b.get(0) ^ 0x5A)).rewind();
      ch.write(b, at);
    }
  }

  /**
   * A timeline whose layer file fails its header check is loaded as broken: listed with the reason,
   * refused with a server error naming the file wherever it would be used; the pageserver runs.
   */
  private void brokenTimelineAnswers5xxNamingTheFile(Path file) throws IOException {
    String path = "/v1/tenant/" + tenant + "/timeline/" + broken;
    String why = "corrupt layer file " + file + ": header CRC mismatch";
    HttpJson.Response info =
        spec.check("/v1/tenant/{tenant_id}/timeline/{timeline_id}", http.get(path));
    assertThat(info.status()).isEqualTo(200);
    assertThat(info.json().path("state").asText()).isEqualTo("broken");
    assertThat(info.json().path("broken_reason").asText()).contains(why);
    HttpJson.Response cp =
        spec.check(
            "/v1/tenant/{tenant_id}/timeline/{timeline_id}/checkpoint",
            http.call("POST", path + "/checkpoint", (String) null));
    assertThat(cp.status()).isEqualTo(500);
    assertThat(cp.error()).contains("is unusable").contains(why);
    HttpJson.Response ws =
        spec.check(
            "/v1/tenant/{tenant_id}/timeline/{timeline_id}/wal_source",
            http.call("PUT", path + "/wal_source", "{\"host\": \"127.0.0.1\", \"port\": 1}"));
    assertThat(ws.status()).isEqualTo(500);
    assertThat(ws.error()).contains("is broken").contains(why);
    HttpJson.Response br =
        spec.check(
            "/v1/tenant/{tenant_id}/timeline",
            http.call(
                "POST",
                "/v1/tenant/" + tenant + "/timeline",
                branch(TimelineId.generate(), broken, null)));
    assertThat(br.status()).isEqualTo(500);
    assertThat(br.error()).contains("cannot branch from " + broken).contains(why);
    Path tar = Files.createTempFile(data, "bb", ".tar");
    PageserverHarness.Run r = PageserverHarness.basebackup(ps, tenant, broken, null, tar);
    assertThat(r.exit()).isNotZero();
    assertThat(r.output()).contains("ERROR:").contains(why);
  }
}
