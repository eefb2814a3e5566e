package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.control.PageserverClient;
import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.DirectoryLock;
import io.zenith.wal.Lsn;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * One process per data directory, with the real {@code ./zenith} launcher: a second {@code zenith
 * pageserver run -D} or {@code zenith safekeeper run -D} on the directory of a running one, and a
 * command on a repository whose lock another process holds, exit 1 with one line naming the
 * directory and the holder's pid, and every file of the first instance is what it was (size and
 * SHA-256, all but the lock file and the log the first instance appends to). The first instances
 * serve on: a compute started afterwards reads what was written before.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CliDirectoryLockTest {
  private static final long SELF = ProcessHandle.current().pid();

  private ZenithRepo z;

  @BeforeAll
  void init() throws IOException {
    z = new ZenithRepo(false);
    z.init(1);
    // No flush or compaction on a timer while a test waits for the files to settle and then
    // compares them (a compaction 20 s after the last flush changed them under a passing check).
    z.setPageserverOption("checkpoint_timeout", "\"1h\"");
    z.setPageserverOption("compaction_period", "\"1h\"");
    z.ok("start");
    z.ok("pg", "create", "main");
    int port = z.start("main");
    z.sql(port, "CREATE TABLE t(id int PRIMARY KEY, v text)");
    z.sql(port, "INSERT INTO t SELECT g, 'before' FROM generate_series(1, 1000) g");
    // the safekeeper and the pageserver go idle: their files stop changing
    z.ok("pg", "stop", "main");
    // Files that stay the same for a second are not enough on a loaded machine: a pageserver that
    // lags behind has yet to ingest, idle-flush (1 s) and upload the last WAL.
    TimelinePositions positions = new TimelinePositions(z, 1, "main");
    Lsn commit = positions.commitLsn().orElseThrow();
    positions.awaitPageserver(commit, Duration.ofSeconds(60));
    TimelinePositions.await(
        Duration.ofSeconds(60),
        "the pageserver to flush and upload everything it ingested",
        () -> positions.pageserverQuiet());
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  /** Size and SHA-256 of every file under {@code dir} but {@code except} (file names). */
  private static Map<String, String> digests(Path dir, Set<String> except) {
    Map<String, String> out = new TreeMap<>();
    try (Stream<Path> walk = Files.walk(dir)) {
      for (Path f : walk.filter(Files::isRegularFile).sorted().toList()) {
        if (except.contains(f.getFileName().toString())) {
          continue;
        }
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        long size = 0;
        try (InputStream in = Files.newInputStream(f)) {
          byte[] buf = new byte[1 << 16];
          for (int n; (n = in.read(buf)) > 0; ) {
            md.update(buf, 0, n);
            size += n;
          }
        }
        out.put(dir.relativize(f).toString(), size + " " + HexFormat.of().formatHex(md.digest()));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    return out;
  }

  /** The digests once two taken a second apart agree (a server finishing its last writes). */
  private static Map<String, String> settledDigests(Path dir, Set<String> except) {
    AtomicReference<Map<String, String>> last = new AtomicReference<>(digests(dir, except));
    PgWal.await(
        Duration.ofSeconds(60),
        "the files of " + dir + " to stop changing",
        () -> {
          try {
            Thread.sleep(1000);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
          }
          Map<String, String> now = digests(dir, except);
          return now.equals(last.getAndSet(now));
        });
    return last.get();
  }

  @Test
  @Order(1)
  void aSecondPageserverIsRefusedAndChangesNothing() throws IOException {
    Path dir = z.repo.resolve("pageserver");
    long holder = z.pageserverPid().orElseThrow();
    Set<String> except = Set.of("pageserver.lock", "pageserver.log");
    Map<String, String> before = settledDigests(dir, except);
    assertThat(before).containsKey("pageserver.toml").containsKey("index/CURRENT");

    ZenithRepo.Result r = z.run("pageserver", "run", "-D", dir.toString());

    assertThat(r.exit()).as("%s", r).isEqualTo(1);
    assertThat(r.out()).isEmpty();
    assertThat(r.err().lines().toList())
        .containsExactly(
            "zenith pageserver run: error: data directory "
                + dir
                + " is in use by another process (pid "
                + holder
                + ")");
    assertThat(digests(dir, except)).isEqualTo(before);
    assertThat(Files.readString(dir.resolve("pageserver.lock"))).isEqualTo(holder + "\n");
    PageserverClient ps =
        new PageserverClient(new InetSocketAddress("127.0.0.1", z.httpPort), z::adminToken);
    assertThat(ps.tenants()).hasSize(1);
    assertThat(z.pageserverPid()).hasValue(holder);
  }

  @Test
  @Order(2)
  void aSecondSafekeeperIsRefusedAndChangesNothing() throws IOException {
    Path dir = z.repo.resolve("safekeepers/sk1");
    long holder = z.safekeeperPid(1).orElseThrow();
    Set<String> except = Set.of("safekeeper.lock", "safekeeper.log");
    Map<String, String> before = settledDigests(dir, except);
    // the timeline's WAL is there: a second safekeeper's scan would have zeroed past its end
    assertThat(before.keySet()).anyMatch(f -> f.matches("[0-9a-f]{32}/[0-9a-f]{32}/.+\\.partial"));

    ZenithRepo.Result r = z.run("safekeeper", "run", "-D", dir.toString());

    assertThat(r.exit()).as("%s", r).isEqualTo(1);
    assertThat(r.out()).isEmpty();
    assertThat(r.err().lines().toList())
        .containsExactly(
            "zenith safekeeper run: error: data directory "
                + dir
                + " is in use by another process (pid "
                + holder
                + ")");
    assertThat(digests(dir, except)).isEqualTo(before);
    assertThat(Files.readString(dir.resolve("safekeeper.lock"))).isEqualTo(holder + "\n");
    SafekeeperClient sk =
        new SafekeeperClient(
            1,
            new InetSocketAddress("127.0.0.1", z.safekeeperHttpPort(1)),
            Duration.ofSeconds(10),
            z::adminToken);
    assertThat(sk.status().id()).isEqualTo(1);
    assertThat(sk.allTimelines()).hasSize(1);
  }

  @Test
  @Order(3)
  void aCommandIsRefusedWhileAnotherProcessHoldsTheRepository() throws IOException {
    Set<String> except =
        Set.of(".lock", "pageserver.lock", "pageserver.log", "safekeeper.lock", "safekeeper.log");
    Map<String, String> before = settledDigests(z.repo, except);
    // This JVM holds the lock as a command would. It must not read the lock file meanwhile:
    // closing any descriptor of it in the holding process releases a POSIX lock.
    try (DirectoryLock held = DirectoryLock.acquire(z.repo, ".lock")) {
      assertThat(z.fails(1, "pg", "create", "other"))
          .isEqualTo(
              "zenith pg create: error: repository "
                  + held.directory()
                  + " is in use by another zenith command (pid "
                  + SELF
                  + "); try again when it ends");
      assertThat(z.fails(1, "stop"))
          .isEqualTo(
              "zenith stop: error: repository "
                  + held.directory()
                  + " is in use by another zenith command (pid "
                  + SELF
                  + "); try again when it ends");
      assertThat(digests(z.repo, except)).isEqualTo(before);
    }
    assertThat(z.repo.resolve("computes/other")).doesNotExist();
    assertThat(z.pageserverPid()).isPresent();
    assertThat(z.safekeeperPid(1)).isPresent();
  }

  @Test
  @Order(4)
  void initIsRefusedWhileAnotherProcessHoldsItsDirectoryAndRunsOnceItIsFree() throws IOException {
    Path fresh = z.root.resolve("fresh");
    Files.createDirectory(fresh);
    String[] init = {
      "init",
      "--safekeepers",
      "0",
      "--pageserver-http",
      "127.0.0.1:" + ZenithRepo.freePort(),
      "--pageserver-pg",
      "127.0.0.1:" + ZenithRepo.freePort()
    };
    try (DirectoryLock held = DirectoryLock.acquire(fresh, ".lock")) {
      ZenithRepo.Result r = z.runIn(fresh, init);
      assertThat(r.exit()).as("%s", r).isEqualTo(1);
      assertThat(r.err().lines().toList())
          .containsExactly(
              "zenith init: error: repository "
                  + held.directory()
                  + " is in use by another zenith command (pid "
                  + SELF
                  + "); try again when it ends");
      try (Stream<Path> s = Files.list(fresh)) {
        assertThat(s.map(p -> p.getFileName().toString()).toList()).containsExactly(".lock");
      }
    }
    // a lock file left behind is no repository: init goes ahead once nobody holds it
    ZenithRepo.Result r = z.runIn(fresh, init);
    assertThat(r.exit()).as("%s", r).isZero();
    assertThat(r.out()).contains("repository ready: tenant ");
    assertThat(fresh.resolve("config.toml")).exists();
    assertThat(Files.readString(fresh.resolve(".lock"))).matches("[0-9]+\n");
    Matcher computes =
        Pattern.compile("(?m)^compute_data_dir = \"([^\"]+)\"")
            .matcher(Files.readString(fresh.resolve("config.toml")));
    if (computes.find()) {
      ZenithRepo.deleteTree(Path.of(computes.group(1)));
    }
  }

  @Test
  @Order(5)
  void theFirstInstancesServeOn() {
    assertThat(z.sql(z.start("main"), "SELECT count(*), min(v), max(v) FROM t"))
        .isEqualTo("1000|before|before");
    z.ok("pg", "stop", "main");
  }
}
