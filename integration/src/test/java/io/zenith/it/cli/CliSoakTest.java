package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.Lsn;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Issue 9's soak through the real {@code ./zenith} launcher: a repository with one and with three
 * safekeepers, compute {@code main}, {@code pgbench -i -s <scale>}, then pgbench's tpcb-like
 * transactions from 8 clients ({@code -c 8 -j 2 -P 5}) for {@code -Dzenith.soak.seconds}. Sustained
 * writes are what the suite lacked before issue 9: past the safekeepers' {@code
 * max_replication_write_lag} (15 MiB) and the pageserver's {@code checkpoint_distance} (256 MiB by
 * default then) the safekeeper's WAL sender stopped feeding the pageserver and every commit waited
 * forever.
 *
 * <p>{@code make test} runs 45 s at scale 5 with {@code checkpoint_distance = "4MiB"} (so the
 * pageserver freezes and flushes in-memory layers many times, which is asserted: at least five
 * "flushed layer" lines in its log), with three safekeepers only (the quorum case; the budget of
 * {@code make test} has no room for both); {@code make test-long} runs 600 s at scale 20 with the
 * repository's default settings, with one and with three ({@code -Dzenith.soak.scale=20
 * -Dzenith.soak.checkpoint.distance=default -Dzenith.soak.safekeepers=1,3}).
 *
 * <p>Checked: pgbench exits 0 with no failed transaction and every 5 s progress period has commits;
 * sampled every 2 s, the pageserver's {@code last_record_lsn} trails the safekeepers' {@code
 * commit_lsn} by at most 64 MiB and never stands still for more than 30 s while behind; afterwards
 * it catches up, and a compute rebuilt from the pageserver ({@code pg stop --destroy}, {@code pg
 * create}, {@code pg start}) sees the same {@code sum(abalance)}, the same branch and teller totals
 * and the same {@code pgbench_history} as the old one, which satisfy tpcb's invariant (every total
 * equals the sum of the history's deltas).
 */
@ExtendWith(NettyLeakCheck.Sampled.class)
class CliSoakTest {
  private static final Logger log = LoggerFactory.getLogger(CliSoakTest.class);
  private static final long SECONDS = Long.getLong("zenith.soak.seconds", 45);
  private static final int SCALE = Integer.getInteger("zenith.soak.scale", 5);

  /** The pageserver's checkpoint_distance, or "default" to keep what {@code zenith init} wrote. */
  private static final String CHECKPOINT_DISTANCE =
      System.getProperty("zenith.soak.checkpoint.distance", "4MiB");

  private static final Duration PERIOD = Duration.ofSeconds(5);
  private static final Duration SAMPLE = Duration.ofSeconds(2);
  private static final long MAX_LAG = 64L << 20;
  private static final Duration MAX_STILL = Duration.ofSeconds(30);
  private static final Duration T = Duration.ofSeconds(120);
  private static final Pattern PROGRESS =
      Pattern.compile("^progress: ([0-9.]+) s, ([0-9.]+) tps.*$", Pattern.MULTILINE);
  private static final Pattern FAILED =
      Pattern.compile("^number of failed transactions: (\\d+)", Pattern.MULTILINE);
  private static final Pattern FLUSHED = Pattern.compile("(?m)flushed layer \\S+ of ");

  /** The balances a compute holds, and the history they come from. */
  private static final String BALANCES =
      "select (select sum(abalance) from pgbench_accounts) || ' ' || (select sum(bbalance) from"
          + " pgbench_branches) || ' ' || (select sum(tbalance) from pgbench_tellers) || ' ' ||"
          + " (select coalesce(sum(delta), 0) || ' ' || count(*) from pgbench_history)";

  /** The safekeeper counts to soak with ({@code -Dzenith.soak.safekeepers}, comma-separated). */
  static IntStream safekeeperCounts() {
    return Arrays.stream(System.getProperty("zenith.soak.safekeepers", "3").split(","))
        .mapToInt(n -> Integer.parseInt(n.strip()));
  }

  @ParameterizedTest(name = "{0} safekeeper(s)")
  @MethodSource("safekeeperCounts")
  void pgbenchKeepsCommittingThePageserverKeepsUpAndARebuiltComputeSeesTheSameBalances(
      int safekeepers) throws Exception {
    try (ZenithRepo z = new ZenithRepo(false)) {
      try {
        soak(z, safekeepers);
      } catch (Throwable t) {
        Path kept =
            z.keepLogs(
                Path.of(
                    "target", "chaos-logs", "CliSoakTest-" + safekeepers + "sk-" + Instant.now()));
        threadDumps(z, safekeepers, kept);
        log.warn("soak with {} safekeeper(s) failed; logs kept in {}", safekeepers, kept);
        throw t;
      }
    }
  }

  private void soak(ZenithRepo z, int safekeepers) throws Exception {
    long t0 = System.nanoTime();
    z.init(safekeepers);
    if (!CHECKPOINT_DISTANCE.equals("default")) {
      z.setPageserverOption("checkpoint_distance", "'" + CHECKPOINT_DISTANCE + "'");
    }
    z.ok("start");
    z.ok("pg", "create", "main");
    int port = z.start("main");
    TimelinePositions positions = new TimelinePositions(z, safekeepers, "main");
    log.info(
        "{} safekeeper(s), checkpoint_distance {}, pgbench scale {}, {} s; set up in {} s",
        safekeepers,
        CHECKPOINT_DISTANCE,
        SCALE,
        SECONDS,
        seconds(t0));

    // pgbench -i is one big transaction: its WAL reaches the safekeepers ahead of the pageserver
    // without waiting for acknowledgements, so the lag is logged but not bounded here.
    t0 = System.nanoTime();
    LagStats initLag = new LagStats("init");
    PgbenchResult init =
        sampled(
            positions,
            initLag,
            () ->
                pgbench(z, port, T.plusSeconds(60L * SCALE), "init", "-i", "-q", "-s", "" + SCALE));
    assertThat(init.exit()).as("pgbench -i\n%s", init.output()).isZero();
    Lsn afterInit = positions.commitLsn().orElseThrow();
    Duration caughtUp = positions.awaitPageserver(afterInit, T);
    log.info(
        "pgbench -i -s {} took {} s (lag max {}, the pageserver stood still behind for at most {}"
            + " s); the pageserver reached commit_lsn {} {} s later",
        SCALE,
        seconds(t0),
        TimelinePositions.mib(initLag.maxLag),
        initLag.maxStillNanos / 1e9,
        afterInit,
        caughtUp.toMillis() / 1000.0);
    assertThat(Duration.ofNanos(initLag.maxStillNanos))
        .as("longest time the pageserver stood still behind commit_lsn during pgbench -i")
        .isLessThanOrEqualTo(MAX_STILL);
    long flushesBefore = flushes(z);

    LagStats lag = new LagStats("run");
    PgbenchResult run =
        sampled(
            positions,
            lag,
            () ->
                pgbench(
                    z,
                    port,
                    Duration.ofSeconds(SECONDS).plus(T),
                    "run",
                    "-c",
                    "8",
                    "-j",
                    "2",
                    "-T",
                    "" + SECONDS,
                    "-P",
                    "" + PERIOD.toSeconds()));
    List<String> summary = run.output().lines().filter(l -> !l.startsWith("progress: ")).toList();
    log.info("pgbench run: exit {}\n{}", run.exit(), String.join("\n", summary));

    // every 5 s period has commits
    List<String> idle = new ArrayList<>();
    int periods = 0;
    double minTps = Double.MAX_VALUE;
    Matcher m = PROGRESS.matcher(run.output());
    while (m.find()) {
      periods++;
      double tps = Double.parseDouble(m.group(2));
      minTps = Math.min(minTps, tps);
      if (tps <= 0) {
        idle.add(m.group());
      }
    }
    log.info(
        "{} progress periods, lowest {} tps; lag max {} at commit_lsn {}, pageserver stood still"
            + " behind for at most {} s, {} samples ({} unanswered)",
        periods,
        minTps,
        TimelinePositions.mib(lag.maxLag),
        lag.maxLagAt,
        lag.maxStillNanos / 1_000_000_000.0,
        lag.samples,
        lag.unanswered);
    assertThat(idle).as("5 s periods without a commit").isEmpty();
    assertThat(run.exit()).as("pgbench's exit status\n%s", run.output()).isZero();
    assertThat(periods)
        .as("progress lines\n%s", run.output())
        .isGreaterThanOrEqualTo((int) (SECONDS / PERIOD.toSeconds()) - 1);
    Matcher failed = FAILED.matcher(run.output());
    assertThat(failed.find()).as("pgbench's summary\n%s", run.output()).isTrue();
    assertThat(failed.group(1)).as("failed transactions").isEqualTo("0");
    assertThat(lag.samples).isGreaterThanOrEqualTo(SECONDS / SAMPLE.toSeconds() / 2);
    assertThat(lag.unanswered).as("samples the servers did not answer").isZero();
    assertThat(lag.maxLag)
        .as("commit_lsn - last_record_lsn (max at %s)", lag.maxLagAt)
        .isLessThanOrEqualTo(MAX_LAG);
    assertThat(Duration.ofNanos(lag.maxStillNanos))
        .as("longest time the pageserver stood still behind commit_lsn")
        .isLessThanOrEqualTo(MAX_STILL);

    Lsn end = positions.commitLsn().orElseThrow();
    caughtUp = positions.awaitPageserver(end, T);
    long flushesAfter = flushes(z);
    log.info(
        "the pageserver reached the final commit_lsn {} {} s after pgbench ended; {} layers"
            + " flushed during pgbench -i, {} during the run",
        end,
        caughtUp.toMillis() / 1000.0,
        flushesBefore,
        flushesAfter - flushesBefore);
    if (!CHECKPOINT_DISTANCE.equals("default")) {
      assertThat(flushesAfter).as("layers the pageserver flushed").isGreaterThanOrEqualTo(5);
    }

    String old = z.sql(port, BALANCES);
    String[] f = old.split(" ");
    assertThat(List.of(f[1], f[2], f[3]))
        .as("branch, teller and history totals equal the accounts' total: %s", old)
        .containsOnly(f[0]);
    assertThat(Long.parseLong(f[4])).as("transactions in pgbench_history").isPositive();
    z.ok("pg", "stop", "main", "--destroy");
    z.ok("pg", "create", "main");
    ZenithRepo.Result started = z.ok("pg", "start", "main");
    log.info("rebuilt compute: {}", started.out().strip());
    String rebuilt = z.sql(ZenithRepo.portIn(started, "main"), BALANCES);
    log.info("balances (accounts, branches, tellers, history delta, history rows): {}", old);
    assertThat(rebuilt).as("the rebuilt compute's balances").isEqualTo(old);
  }

  private static double seconds(long sinceNanos) {
    return Math.round((System.nanoTime() - sinceNanos) / 1e8) / 10.0;
  }

  /** Runs {@code work} while {@code stats} samples {@code positions} every {@link #SAMPLE}. */
  private static PgbenchResult sampled(
      TimelinePositions positions, LagStats stats, Callable<PgbenchResult> work) throws Exception {
    ScheduledExecutorService sampler =
        Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("soak-sampler").unstarted(r));
    try {
      sampler.scheduleWithFixedDelay(
          () -> stats.sample(positions), 0, SAMPLE.toMillis(), TimeUnit.MILLISECONDS);
      return work.call();
    } finally {
      sampler.shutdown();
      if (!sampler.awaitTermination(30, TimeUnit.SECONDS)) {
        sampler.shutdownNow();
      }
    }
  }

  /**
   * The pageserver's lag behind the safekeepers over the samples: O(1) state, written by the
   * sampler thread only and read after it has terminated.
   */
  private static final class LagStats {
    final String phase;
    long samples;
    long unanswered;
    long maxLag;
    Lsn maxLagAt = Lsn.INVALID;
    long maxStillNanos;
    private Lsn lastRecord = Lsn.INVALID;
    private long stillSince;

    LagStats(String phase) {
      this.phase = phase;
    }

    void sample(TimelinePositions positions) {
      // the pageserver first: what the safekeepers say a moment later is at least as far, so the
      // lag measured is an upper bound (the other order measured 0 under every load)
      Optional<TimelinePositions.Pageserver> ps = positions.pageserver();
      Optional<Lsn> commit = positions.commitLsn();
      long now = System.nanoTime();
      samples++;
      if (commit.isEmpty() || ps.isEmpty()) {
        unanswered++;
        log.info("{}: commit_lsn {}, pageserver {}", phase, commit, ps);
        return;
      }
      Lsn c = commit.get();
      Lsn p = ps.get().lastRecord();
      long behind = Math.max(0, c.minus(p));
      if (behind > maxLag) {
        maxLag = behind;
        maxLagAt = c;
      }
      if (!p.equals(lastRecord) || behind == 0) {
        lastRecord = p;
        stillSince = now;
      }
      maxStillNanos = Math.max(maxStillNanos, now - stillSince);
      log.info(
          "{}: commit_lsn {}, pageserver last_record_lsn {} (lag {}), disk_consistent_lsn {}",
          phase,
          c,
          p,
          TimelinePositions.mib(behind),
          ps.get().diskConsistent());
    }
  }

  record PgbenchResult(int exit, String output) {}

  /**
   * Runs pgbench against {@code port} with {@code args}; its output (stdout and stderr) also goes
   * to {@code pgbench-<name>.log} in the repository, so that {@link ZenithRepo#keepLogs} keeps it.
   */
  static PgbenchResult pgbench(
      ZenithRepo z, int port, Duration timeout, String name, String... args)
      throws IOException, InterruptedException {
    Path out = pgbenchLog(z, name);
    Process p = startPgbench(z, port, name, args);
    if (!p.waitFor(timeout.toSeconds(), TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError(
          "pgbench " + String.join(" ", args) + " timed out\n" + Files.readString(out));
    }
    return new PgbenchResult(p.exitValue(), Files.readString(out));
  }

  /** Starts pgbench as {@link #pgbench} does, without waiting for it. */
  static Process startPgbench(ZenithRepo z, int port, String name, String... args)
      throws IOException {
    List<String> cmd =
        new ArrayList<>(
            List.of(
                z.pg.bin("pgbench").toString(),
                "-h",
                "127.0.0.1",
                "-p",
                Integer.toString(port),
                "-U",
                "postgres"));
    cmd.addAll(List.of(args));
    cmd.add("postgres");
    ProcessBuilder pb =
        new ProcessBuilder(cmd)
            .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
            .redirectErrorStream(true)
            .redirectOutput(pgbenchLog(z, name).toFile());
    pb.environment().put("PGCONNECT_TIMEOUT", "10");
    return pb.start();
  }

  /** Where {@link #pgbench} and {@link #startPgbench} write pgbench's output. */
  static Path pgbenchLog(ZenithRepo z, String name) {
    return z.repo.resolve("pgbench-" + name + ".log");
  }

  /** How many layers the pageserver's log says it flushed (over its restarts: the log appends). */
  static long flushes(ZenithRepo z) {
    return FLUSHED.matcher(z.pageserverLog()).results().count();
  }

  /** {@code jstack} of the pageserver and each safekeeper into {@code dir}, for a stall report. */
  static void threadDumps(ZenithRepo z, int safekeepers, Path dir) {
    String jstack = Path.of(System.getProperty("java.home"), "bin", "jstack").toString();
    List<Optional<Long>> pids = new ArrayList<>();
    List<String> names = new ArrayList<>();
    pids.add(z.pageserverPid());
    names.add("pageserver");
    for (int id = 1; id <= safekeepers; id++) {
      pids.add(z.safekeeperPid(id));
      names.add("sk" + id);
    }
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      return;
    }
    for (int i = 0; i < pids.size(); i++) {
      String name = names.get(i);
      pids.get(i)
          .ifPresent(
              pid ->
                  ZenithRepo.sh(
                      jstack + " " + pid + " > " + dir.resolve(name + ".jstack.txt") + " 2>&1"));
    }
  }
}
