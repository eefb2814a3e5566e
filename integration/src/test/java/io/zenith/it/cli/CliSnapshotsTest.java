package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.wal.Lsn;
import io.zenith.wal.testing.S3Proxy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Snapshots to share (ADR 0028) between two repositories through the real {@code ./zenith}: a
 * snapshot of repository A's main at an LSN, pushed through s3proxy (a real S3 server on loopback)
 * and pulled into repository B, where a compute on the new branch sees the same rows (per-table
 * checksums); a directory snapshot and {@code snapshot list}; a corrupt, an incomplete and a
 * missing snapshot each fail with one line and leave nothing behind; names in use are refused.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliSnapshotsTest {
  private static final String CHECKSUMS =
      "SELECT (SELECT count(*) || ':' || sum(hashtext(a::text)) FROM accounts a)"
          + " || '/' || (SELECT count(*) || ':' || sum(hashtext(h::text)) FROM history h)";

  private S3Proxy s3;
  private Map<String, String> creds;
  private ZenithRepo a;
  private ZenithRepo b;
  private Path snaps;
  private String lsn;
  private String checksums;

  @BeforeAll
  void setUp() throws IOException {
    // s3proxy (a JVM) starts while repository A is set up
    CompletableFuture<S3Proxy> proxy = CompletableFuture.supplyAsync(S3Proxy::start);
    // the AWS SDK's default chain, for the CLI and the pageserver it starts
    creds =
        Map.of(
            "AWS_ACCESS_KEY_ID", S3Proxy.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY", S3Proxy.SECRET_KEY);
    a = new ZenithRepo(true);
    a.init(0); // the source's WAL path does not matter here: one process less
    ok(a, "start");
    a.ok("pg", "create", "main");
    int port = a.start("main");
    a.sql(
        port,
        "CREATE TABLE accounts AS SELECT i AS id, (i * 7919) % 100000 AS balance,"
            + " md5(i::text) AS owner FROM generate_series(1, 30000) i;"
            + " ALTER TABLE accounts ADD PRIMARY KEY (id);"
            + " CREATE TABLE history(id serial, account int, delta int, at timestamptz);"
            + " INSERT INTO history(account, delta, at) SELECT i % 30000, i % 13 - 6,"
            + " '2026-12-07'::timestamptz + i * interval '1 s' FROM generate_series(1, 20000) i;"
            + " UPDATE accounts SET balance = balance + 1 WHERE id % 3 = 0;"
            + " DELETE FROM history WHERE id % 10 = 0");
    checksums = a.sql(port, CHECKSUMS);
    lsn = a.sql(port, "SELECT pg_current_wal_flush_lsn()");
    new TimelinePositions(a, 0, "main").awaitPageserver(Lsn.parse(lsn), Duration.ofSeconds(60));
    // later writes are not in a snapshot at `lsn`
    a.sql(port, "INSERT INTO history(account, delta) VALUES (1, 1000)");
    s3 = proxy.join();
    b = new ZenithRepo(true);
    b.init(1); // a safekeeper: the pulled branch's first compute creates its timeline there
    ok(b, "start");
    snaps = a.root.resolve("snapshots");
  }

  @AfterAll
  void cleanUp() {
    for (AutoCloseable c : new AutoCloseable[] {a, b, s3}) {
      try {
        if (c != null) {
          c.close();
        }
      } catch (Exception e) {
        // the others still close
      }
    }
  }

  private ZenithRepo.Result ok(ZenithRepo z, String... args) {
    ZenithRepo.Result r = z.runWith(creds, args);
    assertThat(r.exit()).as("zenith %s\n%s", String.join(" ", args), r).isZero();
    return r;
  }

  private String s3Url(String name) {
    return "s3://" + S3Proxy.BUCKET + "/shared/" + name;
  }

  @Test
  @Order(1)
  void aSnapshotPushedThroughS3AndPulledIntoAnotherRepositoryHasTheSameRows() {
    String endpoint = s3.endpoint().toString();
    assertThat(ok(a, "snapshot", "push", "main@" + lsn, s3Url("one"), "--endpoint", endpoint).out())
        .matches(
            "pushed a snapshot of branch main at "
                + lsn
                + " to "
                + s3Url("one")
                + ": \\d+ layer files?, \\d+ (kB|MB)\n");
    assertThat(ok(b, "snapshot", "pull", s3Url("one"), "copy", "--endpoint", endpoint).out())
        .matches(
            "pulled the snapshot at "
                + s3Url("one")
                + " as branch copy at "
                + lsn
                + " \\(timeline [0-9a-f]{32}\\)\n");
    assertThat(b.ok("branch", "list").out()).containsPattern("(?m)^copy +" + lsn + " ");
    assertThat(
            ok(b, "snapshot", "list", "s3://" + S3Proxy.BUCKET + "/shared", "--endpoint", endpoint)
                .lines())
        .hasSize(2)
        .last()
        .asString()
        .matches("one +" + lsn + " +main +\\d+ (kB|MB) +.* +15 +[0-9a-f]{32}");
    b.ok("pg", "create", "c", "--branch", "copy");
    int port = b.start("c");
    assertThat(b.sql(port, CHECKSUMS)).isEqualTo(checksums);
    // the branch is writable, with its own history from the snapshot's LSN on
    b.sql(port, "INSERT INTO history(account, delta) VALUES (2, 2)");
    assertThat(b.sql(port, "SELECT count(*) FROM history WHERE account = 2 AND delta = 2"))
        .isNotEqualTo("0");
    b.ok("pg", "stop", "c");
  }

  @Test
  @Order(2)
  void aDirectorySnapshotIsListedAndPulled() {
    a.ok("snapshot", "push", "main", snaps.resolve("d1").toString());
    a.ok("snapshot", "push", "main@" + lsn, snaps.resolve("nested/d2").toString());
    List<String> table = a.ok("snapshot", "list", snaps.toString()).lines();
    assertThat(table).hasSize(3);
    assertThat(table.get(0)).matches("SNAPSHOT +LSN +SOURCE +SIZE +CREATED +PG +TIMELINE");
    String created = " +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ +15 +[0-9a-f]{32}";
    assertThat(table.get(1)).matches("d1 +\\d+/[0-9A-F]+ +main +\\d+ (kB|MB)" + created);
    assertThat(table.get(2)).matches("nested/d2 +" + lsn + " +main +\\d+ (kB|MB)" + created);
    CliQuickStartTest.assertAligned(table);
    assertThat(a.ok("snapshot", "list", snaps.toString(), "--json").lines())
        .hasSize(2)
        .allMatch(l -> l.contains("\"source_branch\":\"main\"") && l.contains("\"pg_version\":15"));
    assertThat(b.ok("snapshot", "pull", "file://" + snaps.resolve("nested/d2"), "copy2").out())
        .startsWith("pulled the snapshot at file://" + snaps.resolve("nested/d2"))
        .contains(" as branch copy2 at " + lsn + " ");
    // a name in use is refused before anything is downloaded
    assertThat(b.fails(1, "snapshot", "pull", snaps.resolve("d1").toString(), "copy2"))
        .isEqualTo(
            "zenith snapshot pull: error: branch 'copy2' already exists (see `zenith branch"
                + " list`)");
    Lsn odd = Lsn.parse(lsn).plus(-3);
    assertThat(a.fails(1, "snapshot", "push", "main@" + odd, snaps.resolve("d3").toString()))
        .endsWith(
            "cannot take a snapshot at "
                + odd
                + ": not a record boundary (WAL records start 8-byte"
                + " aligned)");
    assertThat(snaps.resolve("d3")).doesNotExist();
    // and a push never mixes two snapshots
    assertThat(a.fails(1, "snapshot", "push", "main", snaps.resolve("d1").toString()))
        .startsWith("zenith snapshot push: error: cannot push a snapshot of main to ")
        .endsWith("it is not empty (use a new location)");
  }

  @Test
  @Order(3)
  void badSnapshotsFailWithOneLineAndLeaveNothingBehind() throws IOException {
    List<String> branches = b.ok("branch", "list").lines();
    // a flipped byte in a layer file
    Path bad = copy(snaps.resolve("d1"), snaps.resolve("corrupt"));
    Path layer;
    try (Stream<Path> s = Files.list(bad.resolve("layers"))) {
      layer = s.sorted().toList().getLast();
    }
    byte[] bytes = Files.readAllBytes(layer);
    bytes[bytes.length / 2] ^= 0x01;
    Files.write(layer, bytes);
    assertThat(b.fails(1, "snapshot", "pull", bad.toString(), "bad1"))
        .matches(
            "zenith snapshot pull: error: cannot pull the snapshot at .*: snapshot file"
                + " layers/"
                + layer.getFileName()
                + " at local directory .* is corrupt: CRC32C [0-9a-f]{8}, the manifest says"
                + " [0-9a-f]{8}");
    // a missing file
    Path incomplete = copy(snaps.resolve("d1"), snaps.resolve("incomplete"));
    Files.delete(incomplete.resolve("layers").resolve(layer.getFileName()));
    assertThat(b.fails(1, "snapshot", "pull", incomplete.toString(), "bad2"))
        .endsWith(
            "snapshot file layers/"
                + layer.getFileName()
                + " is missing at local directory "
                + incomplete
                + " (an incomplete snapshot)");
    // no manifest: a push that did not finish
    Files.delete(incomplete.resolve("manifest"));
    assertThat(b.fails(1, "snapshot", "pull", incomplete.toString(), "bad3"))
        .endsWith(
            "no snapshot at local directory "
                + incomplete
                + ": it has no manifest (an incomplete snapshot, or not a snapshot)");
    // a damaged manifest
    Path manifest = bad.resolve("manifest");
    byte[] m = Files.readAllBytes(manifest);
    m[10] ^= 0x01;
    Files.write(manifest, m);
    assertThat(b.fails(1, "snapshot", "pull", bad.toString(), "bad4"))
        .endsWith("corrupt snapshot manifest of local directory " + bad + ": CRC mismatch");
    assertThat(b.fails(1, "snapshot", "pull", snaps.resolve("nosuch").toString(), "bad5"))
        .endsWith("no snapshot at " + snaps.resolve("nosuch") + ": no such directory");
    assertThat(Files.exists(snaps.resolve("nosuch"))).isFalse();
    // nothing left: no branch, no timeline (an unnamed one would be listed), no staging files
    assertThat(b.ok("branch", "list").lines()).isEqualTo(branches);
    Path staging = b.repo.resolve("pageserver").resolve("snapshot-staging");
    if (Files.exists(staging)) {
      try (Stream<Path> s = Files.walk(staging)) {
        assertThat(s.filter(Files::isRegularFile).toList()).isEmpty();
      }
    }
  }

  private static Path copy(Path from, Path to) throws IOException {
    try (Stream<Path> s = Files.walk(from)) {
      for (Path p : s.toList()) {
        Path t = to.resolve(from.relativize(p).toString());
        if (Files.isDirectory(p)) {
          Files.createDirectories(t);
        } else {
          Files.copy(p, t);
        }
      }
    }
    return to;
  }
}
