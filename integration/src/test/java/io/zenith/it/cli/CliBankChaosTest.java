package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.r2dbc.postgresql.PostgresqlConnectionFactory;
import io.zenith.it.support.BankWorkload;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Issue 4's chaos scenario end to end, through the real {@code ./zenith} launcher: a repository
 * with three safekeepers, compute {@code main} started by {@code pg start} (election, pageserver
 * streaming from the safekeepers), bank transfers (10 clients, 100 accounts) while a chaos loop
 * SIGKILLs one safekeeper process and restarts it with {@code zenith safekeeper start}, one after
 * the other, at least once each and for {@code -Dzenith.chaos.seconds} ({@code make test} runs the
 * three kills only, about two minutes with the setup and the rebuild, since {@code
 * SafekeeperChaosTest} already runs the timed chaos there; {@code make test-long} runs 150 s).
 *
 * <p>Checked: every client commits in every period with two of three up and sees no error; the
 * total is invariant; and a new compute, rebuilt from the pageserver alone ({@code pg stop
 * --destroy}, {@code pg create}, {@code pg start}: a new term, a basebackup at its start LSN),
 * holds every transfer whose COMMIT returned and the same total.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@ExtendWith(NettyLeakCheck.Sampled.class)
class CliBankChaosTest {
  private static final Logger log = LoggerFactory.getLogger(CliBankChaosTest.class);
  private static final Duration RUN = Duration.ofSeconds(Long.getLong("zenith.chaos.seconds", 0));
  private static final Duration PERIOD =
      Duration.ofSeconds(Long.getLong("zenith.chaos.period.seconds", 5));
  private static final Duration T = Duration.ofSeconds(90);

  private ZenithRepo z;

  /**
   * The safekeepers' positions through their HTTP APIs: {@code zenith status} in a polling loop
   * started a JVM per poll, about a second of CPU each on the two cores the workload, the
   * safekeepers and the pageserver share.
   */
  private TimelinePositions positions;

  /** The compute's port (it is not restarted until the chaos is over). */
  private int port;

  @BeforeAll
  void init() throws IOException {
    z = new ZenithRepo(false);
    z.init(3);
    z.ok("start");
    z.ok("pg", "create", "main");
    port = z.start("main");
    positions = new TimelinePositions(z, 3, "main");
  }

  @AfterAll
  void cleanUp() {
    if (z != null) {
      z.close();
    }
  }

  private void kill(int id) {
    long pid = z.safekeeperPid(id).orElseThrow();
    assertThat(ZenithRepo.sh("kill -KILL " + pid)).isZero();
    PgWal.await(T, "safekeeper " + id + " to die", () -> ZenithRepo.sh("kill -0 " + pid) != 0);
  }

  @Test
  void acknowledgedTransfersSurviveSafekeeperKillsAndAComputeRebuiltFromThePageserver()
      throws Exception {
    PostgresqlConnectionFactory factory = BankWorkload.factory("127.0.0.1", port, "postgres");
    BankWorkload bank = BankWorkload.create(factory, 100, 1_000);
    List<String> stalls;
    int kills = 0;
    ScheduledExecutorService sampler =
        Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("chaos-sampler").unstarted(r));
    try (bank) {
      bank.start(10);
      long[] last = {0};
      sampler.scheduleWithFixedDelay(() -> sample(port, bank, last), 2, 2, TimeUnit.SECONDS);
      long deadline = System.nanoTime() + RUN.toNanos();
      int victim = 1;
      while (System.nanoTime() < deadline || kills < 3) {
        log.info("SIGKILL safekeeper {}", victim);
        kill(victim);
        long before = bank.acknowledgedCount();
        PgWal.await(
            T,
            "50 transfers with safekeeper " + victim + " down",
            () -> bank.acknowledgedCount() >= before + 50);
        z.ok("safekeeper", "start", Integer.toString(victim));
        log.info("safekeeper {} restarted", victim);
        // Before the next kill, the restarted one must be back in the quorum, or two would be
        // down: its flush LSN must reach what the others had committed when it came back.
        int id = victim;
        Lsn target = positions.safekeepers().get(victim % 3 + 1).commit();
        TimelinePositions.await(
            T,
            "safekeeper " + id + " to catch up to " + target,
            () -> {
              TimelinePositions.Safekeeper own = positions.safekeepers().get(id);
              return own != null && !own.flush().isBefore(target);
            });
        log.info("safekeeper {} caught up", victim);
        kills++;
        victim = victim % 3 + 1;
      }
      stalls = bank.stalls(PERIOD);
    } finally {
      sampler.shutdownNow();
    }
    log.info(
        "{} kills, {} transfers acknowledged, {} uncertain",
        kills,
        bank.acknowledgedCount(),
        bank.uncertain().size());
    if (!stalls.isEmpty()) {
      log.warn(
          "clients stalled; logs kept in {}",
          z.keepLogs(Path.of("target", "chaos-logs", "CliBankChaosTest-" + Instant.now())));
    }
    assertThat(stalls).as("periods of %s without a commit", PERIOD).isEmpty();
    assertThat(bank.errors()).as("errors the clients saw").isEmpty();

    z.ok("pg", "stop", "main", "--destroy");
    z.ok("pg", "create", "main");
    ZenithRepo.Result started = z.ok("pg", "start", "main");
    assertThat(z.show("main").get("term")).isNotEqualTo("1");
    log.info("rebuilt compute: {}", started.out());
    BankWorkload.Snapshot s =
        BankWorkload.read(
            BankWorkload.factory("127.0.0.1", ZenithRepo.portIn(started, "main"), "postgres"));
    assertThat(s.total()).isEqualTo(bank.expectedTotal());
    assertThat(BankWorkload.missing(bank.acknowledged(), s.transfers()))
        .as("acknowledged transfers the compute does not have")
        .isEmpty();
  }

  /**
   * Logs what a stall would need explaining: transfers acknowledged since the last sample, the
   * compute's (at {@code port}) WAL position and its view of each safekeeper ({@code
   * pg_stat_replication}).
   */
  private void sample(int port, BankWorkload bank, long[] last) {
    long now = bank.acknowledgedCount();
    String compute;
    try {
      compute =
          z.psql(
                  port,
                  "select pg_current_wal_lsn() || ' ' || coalesce(string_agg(application_name"
                      + " || ':' || state || '/' || sync_state || '@' || coalesce(flush_lsn::text,"
                      + " '-'), ' ' order by application_name), '') from pg_stat_replication")
              .output()
              .strip();
    } catch (RuntimeException | AssertionError e) {
      compute = "not answering: " + e.getMessage();
    }
    log.info("acknowledged {} (+{}), compute: {}", now, now - last[0], compute);
    last[0] = now;
  }
}
