package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.it.support.BankWorkload;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.testing.S3Proxy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Issue 12's disaster recovery through the real {@code ./zenith} launcher (ADR 0029): a repository
 * with one safekeeper and its remote storage on s3proxy (a real S3 server on loopback; {@code init
 * --remote s3://…}, so the pageserver's layers and the safekeeper's offloaded WAL both go through
 * S3); a branch {@code b2} with rows of its own; bank transfers on {@code main} while the
 * pageserver is SIGKILLed halfway (so its uploaded layers end well before the last acknowledged
 * transfer: the rest must come from the offloaded WAL); each compute switches to a new WAL segment
 * and commits once more, so that the segment holding every acknowledged transfer is completed and
 * offloaded, and the test waits until {@code backup_lsn} is past it. Then everything stops and the
 * whole repository is deleted; {@code zenith init --from-remote s3://…} restores from the bucket
 * alone, and new computes see every acknowledged transfer, the invariant total, the branch's rows,
 * and commit again. Also its errors: an empty prefix, and a copy of the objects (made through the
 * S3 API) whose indexes are damaged (the repository removed).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@ExtendWith(NettyLeakCheck.Sampled.class)
class CliRestoreTest {
  private static final Duration T = Duration.ofSeconds(90);

  private static final String REMOTE = "s3://" + S3Proxy.BUCKET + "/restore";

  private S3Proxy s3;
  private ZenithRepo z;

  @BeforeAll
  void setUp() throws IOException {
    // s3proxy (a JVM) starts while the repository's directories are made
    CompletableFuture<S3Proxy> proxy = CompletableFuture.supplyAsync(S3Proxy::start);
    z = new ZenithRepo(true);
    // the AWS SDK's default chain, for the CLI and the pageserver and safekeeper it starts
    z.environment(
        Map.of(
            "AWS_ACCESS_KEY_ID", S3Proxy.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY", S3Proxy.SECRET_KEY));
    s3 = proxy.join();
  }

  @AfterAll
  void cleanUp() {
    for (AutoCloseable c : new AutoCloseable[] {z, s3}) {
      try {
        if (c != null) {
          c.close();
        }
      } catch (Exception e) {
        // the other still closes
      }
    }
  }

  private List<String> initArgs(String remoteOption, String url) {
    List<String> args = z.initArgs();
    args.addAll(
        List.of(
            "--safekeepers",
            "1",
            remoteOption,
            url,
            "--remote-endpoint",
            s3.endpoint().toString()));
    return args;
  }

  @Test
  void aRepositoryRestoredFromRemoteStorageAloneHasEveryAcknowledgedTransferAndEveryBranch()
      throws Exception {
    z.ok(initArgs("--remote", REMOTE).toArray(String[]::new));
    // The pageserver is killed while the bank runs: without this the safekeeper would stop
    // acknowledging once its WAL is 15 MiB ahead of the pageserver's (ADR 0005), and the segment
    // switch below is a 16 MiB jump.
    Path skToml = z.repo.resolve("safekeepers/sk1/safekeeper.toml");
    Files.writeString(
        skToml,
        Files.readString(skToml)
            .replaceAll(
                "(?m)^max_replication_write_lag = .*$", "max_replication_write_lag = \"0\""));
    z.ok("start");
    z.ok("pg", "create", "main");
    int mainPort = z.start("main");
    z.ok("branch", "b2", "main");
    z.ok("pg", "create", "c2", "--branch", "b2");
    int b2Port = z.start("c2");
    z.sql(
        b2Port,
        "CREATE TABLE notes AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 500) g");
    String notes = z.sql(b2Port, "SELECT count(*), sum(hashtext(t)) FROM notes");
    TimelinePositions mainPositions = new TimelinePositions(z, 1, "main");
    TimelinePositions b2Positions = new TimelinePositions(z, 1, "c2");

    // 4 clients, 100 accounts, 4 s; the pageserver SIGKILLed after 2 s.
    BankWorkload bank =
        BankWorkload.create(BankWorkload.factory("127.0.0.1", mainPort, "postgres"), 100, 1_000);
    try (bank) {
      bank.start(4);
      Thread.sleep(2_000);
      long pid = z.pageserverPid().orElseThrow();
      assertThat(ZenithRepo.sh("kill -KILL " + pid)).isZero();
      PgWal.await(T, "the pageserver to die", () -> ZenithRepo.sh("kill -0 " + pid) != 0);
      long before = bank.acknowledgedCount();
      PgWal.await(
          T, "20 transfers without a pageserver", () -> bank.acknowledgedCount() >= before + 20);
      bank.stop();
    }
    assertThat(bank.errors()).as("errors the clients saw").isEmpty();
    assertThat(bank.acknowledgedCount()).isPositive();

    // Complete the segments holding everything acknowledged: a switch, then a commit after it
    // (the safekeeper offloads a segment once its commit LSN is past the segment's end).
    Lsn mainSwitch = Lsn.parse(z.sql(mainPort, "SELECT pg_switch_wal()"));
    z.sql(mainPort, "CREATE TABLE after_switch (x int)");
    Lsn b2Switch = Lsn.parse(z.sql(b2Port, "SELECT pg_switch_wal()"));
    z.sql(b2Port, "CREATE TABLE after_switch (x int)");
    PgWal.await(
        T,
        "main's WAL offloaded past " + mainSwitch,
        () -> !mainPositions.backupLsn().isBefore(mainSwitch));
    PgWal.await(
        T,
        "b2's WAL offloaded past " + b2Switch,
        () -> !b2Positions.backupLsn().isBefore(b2Switch));

    // The disaster: every disk but remote storage's.
    z.ok("stop");
    ZenithRepo.deleteTree(z.repo);
    ZenithRepo.deleteTree(z.computeDataDir());

    ZenithRepo.Result restored = z.ok(initArgs("--from-remote", REMOTE).toArray(String[]::new));
    System.out.println(restored.out());
    Map<String, Lsn[]> table = restoredTable(restored.out());
    assertThat(table).as("branches restored\n%s", restored).containsOnlyKeys("main", "b2");
    assertThat(table.get("main")[1])
        .as("main restored past its layers, from the offloaded WAL\n%s", restored)
        .isGreaterThan(table.get("main")[0])
        .isGreaterThanOrEqualTo(mainSwitch);
    assertThat(table.get("b2")[1]).isGreaterThanOrEqualTo(b2Switch);
    assertThat(restored.out()).contains("generation 2");

    z.ok("start");
    z.ok("pg", "create", "main");
    int port = z.start("main");
    BankWorkload.Snapshot s =
        BankWorkload.read(BankWorkload.factory("127.0.0.1", port, "postgres"));
    assertThat(s.total()).isEqualTo(bank.expectedTotal());
    assertThat(BankWorkload.missing(bank.acknowledged(), s.transfers()))
        .as("acknowledged transfers the restored compute does not have")
        .isEmpty();
    z.sql(port, "CREATE TABLE after_restore AS SELECT 42 AS x");
    assertThat(z.sql(port, "SELECT x FROM after_restore")).isEqualTo("42");

    z.ok("pg", "create", "c2", "--branch", "b2");
    int c2 = z.start("c2");
    assertThat(z.sql(c2, "SELECT count(*), sum(hashtext(t)) FROM notes")).isEqualTo(notes);
    z.sql(c2, "INSERT INTO notes VALUES (501, 'new')");
    assertThat(z.sql(c2, "SELECT count(*) FROM notes")).isEqualTo("501");
    z.ok("stop");

    errors();
  }

  /** {@code --from-remote} of a remote storage with nothing, and of one with a damaged index. */
  private void errors() {
    Path other = z.root.resolve("other-repo");
    String e = fails(other, initArgs("--from-remote", "s3://" + S3Proxy.BUCKET + "/empty"));
    assertThat(e).contains("holds no timeline index").contains("nothing to restore");
    assertThat(other).doesNotExist();

    // A copy of the repository's objects, through the S3 API, whose indexes are damaged (a byte
    // flipped in each).
    int indexes = 0;
    try (RemoteStorage from = RemoteStorage.open(s3.settings("restore"));
        RemoteStorage to = RemoteStorage.open(s3.settings("damaged"))) {
      for (RemoteObject o : from.list("").collectList().block(T)) {
        byte[] b = from.get(o.key()).block(T);
        if (o.key().name().startsWith("index_part-")) {
          b[b.length / 2] ^= 0x5A;
          indexes++;
        }
        to.put(o.key(), b).block(T);
      }
    }
    assertThat(indexes).isPositive();
    e = fails(other, initArgs("--from-remote", "s3://" + S3Proxy.BUCKET + "/damaged"));
    assertThat(e).contains("cannot attach tenant");
    assertThat(other).doesNotExist();
  }

  /** Runs a command in repository {@code dir} that must fail with exit 1 and one stderr line. */
  private String fails(Path dir, List<String> args) {
    ZenithRepo.Result r = z.runIn(dir, args.toArray(String[]::new));
    assertThat(r.exit()).as("zenith %s\n%s", String.join(" ", args), r).isEqualTo(1);
    List<String> err = r.err().lines().toList();
    assertThat(err).as("one line: %s", r).hasSize(1);
    assertThat(err.getFirst()).startsWith("zenith init: error: ");
    return err.getFirst();
  }

  /** Branch → {layers up to, restored up to} from the table {@code init --from-remote} prints. */
  private static Map<String, Lsn[]> restoredTable(String out) {
    Map<String, Lsn[]> m = new java.util.TreeMap<>();
    Matcher row =
        Pattern.compile(
                "(?m)^\\S+\\s+(\\S+)\\s+[0-9a-f]{32}\\s+([0-9A-F]+/[0-9A-F]+)\\s+([0-9A-F]+/[0-9A-F]+)$")
            .matcher(out);
    while (row.find()) {
      m.put(row.group(1), new Lsn[] {Lsn.parse(row.group(2)), Lsn.parse(row.group(3))});
    }
    return m;
  }
}
