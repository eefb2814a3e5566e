package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.r2dbc.postgresql.PostgresqlConnectionFactory;
import io.zenith.it.support.BankWorkload;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.Lsn;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Issue 9's pageserver crash scenario through the real {@code ./zenith} launcher: a repository with
 * three safekeepers, compute {@code main}, bank transfers from 8 clients (100 accounts), while the
 * pageserver process, streaming the branch's WAL from the safekeepers, is SIGKILLed and restarted
 * with {@code zenith pageserver start}, {@code -Dzenith.pskill.cycles} times ({@code make test}: 3,
 * {@code make test-long}: 20). The pageserver flushes a layer every MiB ({@code checkpoint_distance
 * = "1MiB"}), so that kills find layer files and each restart resumes from a {@code
 * disk_consistent_lsn} past the last one instead of re-ingesting everything.
 *
 * <p>Checked, each cycle: the pageserver dies; commits go on while it is down (the safekeepers hold
 * the WAL, and the compute waits only once the pageserver trails by {@code
 * max_replication_write_lag}: a pageserver that trailed by nearly that much at the kill, as it does
 * when the workload outruns its ingest on a loaded machine, is not expected to let 30 more commits
 * through); once restarted, its {@code last_record_lsn} reaches the {@code commit_lsn} the
 * safekeepers had when it came back (bounded); the workload makes progress before the next kill. At
 * the end: the clients saw no error, the compute's total is invariant and it holds every
 * acknowledged transfer, and so does a compute rebuilt from the pageserver alone ({@code pg stop
 * --destroy}, {@code pg create}, {@code pg start}).
 */
@ExtendWith(NettyLeakCheck.Sampled.class)
class CliPageserverKillTest {
  private static final Logger log = LoggerFactory.getLogger(CliPageserverKillTest.class);
  private static final int CYCLES = Integer.getInteger("zenith.pskill.cycles", 3);
  private static final int CLIENTS = 8;

  /** Transfers acknowledged after a restart's catch-up before the next kill. */
  private static final long BETWEEN_KILLS = 300;

  /** Transfers acknowledged while the pageserver is down (far below 15 MiB of WAL). */
  private static final long WHILE_DOWN = 30;

  private static final Duration T = Duration.ofSeconds(120);

  /** The safekeepers' default {@code max_replication_write_lag} (ADR 0005). */
  private static final long WRITE_LAG = 15L << 20;

  /** How close to {@link #WRITE_LAG} a pageserver may trail before commits may stop at a kill. */
  private static final long WRITE_LAG_MARGIN = 2L << 20;

  @Test
  void acknowledgedTransfersSurvivePageserverKillsAndAComputeRebuiltFromThePageserver()
      throws Exception {
    try (ZenithRepo z = new ZenithRepo(false)) {
      try {
        killCycles(z);
      } catch (Throwable t) {
        Path kept =
            z.keepLogs(Path.of("target", "chaos-logs", "CliPageserverKillTest-" + Instant.now()));
        CliSoakTest.threadDumps(z, 3, kept);
        log.warn("pageserver kill test failed; logs kept in {}", kept);
        throw t;
      }
    }
  }

  private void killCycles(ZenithRepo z) throws Exception {
    long setUp = System.nanoTime();
    z.init(3);
    z.setPageserverOption("checkpoint_distance", "'1MiB'");
    String started = z.ok("start").lines().get(0);
    z.ok("pg", "create", "main");
    int port = z.start("main");
    TimelinePositions positions = new TimelinePositions(z, 3, "main");
    log.info("{}", started);
    log.info(
        "set up in {} s; {} kill cycles", (System.nanoTime() - setUp) / 1_000_000 / 1000.0, CYCLES);
    PostgresqlConnectionFactory factory = BankWorkload.factory("127.0.0.1", port, "postgres");
    BankWorkload bank = BankWorkload.create(factory, 100, 1_000);
    ScheduledExecutorService sampler =
        Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("pskill-sampler").unstarted(r));
    long maxCatchUpMillis = 0;
    try (bank) {
      bank.start(CLIENTS);
      long[] last = {0};
      sampler.scheduleWithFixedDelay(() -> sample(positions, bank, last), 2, 2, TimeUnit.SECONDS);
      for (int cycle = 1; cycle <= CYCLES; cycle++) {
        long before = bank.acknowledgedCount();
        TimelinePositions.await(
            T,
            BETWEEN_KILLS + " transfers before kill " + cycle,
            () -> bank.acknowledgedCount() >= before + BETWEEN_KILLS);
        long pid = z.pageserverPid().orElseThrow();
        TimelinePositions.Pageserver atKill = positions.pageserver().orElseThrow();
        assertThat(ZenithRepo.sh("kill -KILL " + pid)).isZero();
        TimelinePositions.await(
            T,
            "the pageserver (pid " + pid + ") to die",
            () -> ZenithRepo.sh("kill -0 " + pid) != 0);
        long killed = bank.acknowledgedCount();
        log.info(
            "kill {}/{}: SIGKILL pageserver pid {} at last_record_lsn {}, disk_consistent_lsn {};"
                + " {} transfers acknowledged",
            cycle,
            CYCLES,
            pid,
            atKill.lastRecord(),
            atKill.diskConsistent(),
            killed);
        // Commits go on while the pageserver is down only while it trails by less than
        // max_replication_write_lag: on a loaded machine the workload can outrun its ingest, and
        // then the compute already waits for it at the kill (the backpressure working as it
        // should). Its restart must then release the commits, which the catch-up below checks.
        long trailing = positions.commitLsn().orElseThrow().minus(atKill.lastRecord());
        if (trailing < WRITE_LAG - WRITE_LAG_MARGIN) {
          TimelinePositions.await(
              T,
              WHILE_DOWN + " transfers with the pageserver down (kill " + cycle + ")",
              () -> bank.acknowledgedCount() >= killed + WHILE_DOWN);
        } else {
          log.info(
              "kill {}/{}: the pageserver trailed by {}, at max_replication_write_lag: commits"
                  + " wait for its restart",
              cycle,
              CYCLES,
              TimelinePositions.mib(trailing));
        }

        long t0 = System.nanoTime();
        String restarted = z.ok("pageserver", "start").out().strip();
        Lsn target = positions.commitLsn().orElseThrow();
        TimelinePositions.Pageserver atStart = positions.pageserver().orElseThrow();
        log.info(
            "kill {}/{}: {}; it has last_record_lsn {}, disk_consistent_lsn {}; safekeepers'"
                + " commit_lsn {} ({} behind)",
            cycle,
            CYCLES,
            restarted,
            atStart.lastRecord(),
            atStart.diskConsistent(),
            target,
            TimelinePositions.mib(Math.max(0, target.minus(atStart.lastRecord()))));
        assertThat(atStart.diskConsistent())
            .as("a restarted pageserver's disk_consistent_lsn (it had %s)", atKill.diskConsistent())
            .isGreaterThanOrEqualTo(atKill.diskConsistent());
        Duration caughtUp = positions.awaitPageserver(target, T);
        long sinceStart = (System.nanoTime() - t0) / 1_000_000;
        maxCatchUpMillis = Math.max(maxCatchUpMillis, sinceStart);
        log.info(
            "kill {}/{}: the pageserver reached {} {} s after it answered ({} s after `pageserver"
                + " start` began); {} transfers acknowledged",
            cycle,
            CYCLES,
            target,
            caughtUp.toMillis() / 1000.0,
            sinceStart / 1000.0,
            bank.acknowledgedCount());
      }
      long before = bank.acknowledgedCount();
      TimelinePositions.await(
          T,
          BETWEEN_KILLS + " transfers after the last restart",
          () -> bank.acknowledgedCount() >= before + BETWEEN_KILLS);
    } finally {
      sampler.shutdown();
      if (!sampler.awaitTermination(30, TimeUnit.SECONDS)) {
        sampler.shutdownNow();
      }
    }
    log.info(
        "{} kills, {} transfers acknowledged, {} uncertain, slowest restart to catch-up {} s, {}"
            + " layers flushed",
        CYCLES,
        bank.acknowledgedCount(),
        bank.uncertain().size(),
        maxCatchUpMillis / 1000.0,
        CliSoakTest.flushes(z));
    assertThat(bank.errors()).as("errors the clients saw").isEmpty();

    Set<BankWorkload.TransferId> acknowledged = bank.acknowledged();
    BankWorkload.Snapshot own =
        BankWorkload.read(BankWorkload.factory("127.0.0.1", port, "postgres"));
    assertThat(own.total()).as("the compute's total").isEqualTo(bank.expectedTotal());
    assertThat(BankWorkload.missing(acknowledged, own.transfers()))
        .as("acknowledged transfers the compute does not have")
        .isEmpty();

    Lsn end = positions.commitLsn().orElseThrow();
    Duration caughtUp = positions.awaitPageserver(end, T);
    log.info(
        "the pageserver reached the final commit_lsn {} in {} s",
        end,
        caughtUp.toMillis() / 1000.0);
    z.ok("pg", "stop", "main", "--destroy");
    z.ok("pg", "create", "main");
    ZenithRepo.Result rebuiltStart = z.ok("pg", "start", "main");
    log.info("rebuilt compute: {}", rebuiltStart.out().strip());
    BankWorkload.Snapshot rebuilt =
        BankWorkload.read(
            BankWorkload.factory("127.0.0.1", ZenithRepo.portIn(rebuiltStart, "main"), "postgres"));
    assertThat(rebuilt.total()).as("the rebuilt compute's total").isEqualTo(bank.expectedTotal());
    assertThat(BankWorkload.missing(acknowledged, rebuilt.transfers()))
        .as("acknowledged transfers the rebuilt compute does not have")
        .isEmpty();
    assertThat(BankWorkload.missing(own.transfers(), rebuilt.transfers()))
        .as("transfers of the old compute the rebuilt one does not have")
        .isEmpty();
    assertThat(rebuilt.transfers().size())
        .as("transfers on the rebuilt compute")
        .isEqualTo(own.transfers().size());
    log.info(
        "{} transfers on the old and on the rebuilt compute ({} acknowledged)",
        own.transfers().size(),
        acknowledged.size());
  }

  /** Logs transfers since the last sample and where the safekeepers and the pageserver are. */
  private static void sample(TimelinePositions positions, BankWorkload bank, long[] last) {
    long now = bank.acknowledgedCount();
    var ps = positions.pageserver(); // first: the lag logged is an upper bound
    var commit = positions.commitLsn();
    log.info(
        "acknowledged {} (+{}), commit_lsn {}, pageserver {}",
        now,
        now - last[0],
        commit.map(Lsn::toString).orElse("-"),
        ps.map(
                p ->
                    "last_record_lsn "
                        + p.lastRecord()
                        + " (lag "
                        + TimelinePositions.mib(
                            commit.map(c -> Math.max(0, c.minus(p.lastRecord()))).orElse(0L))
                        + "), disk_consistent_lsn "
                        + p.diskConsistent())
            .orElse("down"));
    last[0] = now;
  }
}
