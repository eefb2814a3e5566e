package io.zenith.it.cli;

import io.zenith.gateway.control.PageserverClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;

/**
 * The WAL positions of one branch's timeline as the repository's servers report them through their
 * HTTP APIs: the safekeepers' {@code commit_lsn} and the pageserver's {@code last_record_lsn} and
 * {@code disk_consistent_lsn}. A server that does not answer (killed, restarting) is left out, not
 * an error. Thread-safe (the clients are).
 */
final class TimelinePositions {
  /** How long one HTTP call may take: a sample must not hang on a server that stopped. */
  private static final Duration CALL = Duration.ofSeconds(10);

  private final TenantId tenant;
  private final TimelineId timeline;
  private final PageserverClient pageserver;
  private final List<SafekeeperClient> safekeepers = new ArrayList<>();

  /** What a safekeeper has of the timeline: durable on its disk, and known to be committed. */
  record Safekeeper(Lsn flush, Lsn commit) {}

  /** What the pageserver has of the timeline: ingested, and durable in layer files. */
  record Pageserver(Lsn lastRecord, Lsn diskConsistent) {}

  /** The timeline of compute {@code compute} of {@code z}, which has {@code safekeepers}. */
  TimelinePositions(ZenithRepo z, int safekeepers, String compute) {
    Map<String, String> shown = z.show(compute);
    this.tenant = TenantId.parse(shown.get("tenant"));
    this.timeline = TimelineId.parse(shown.get("timeline"));
    String token = z.adminToken();
    this.pageserver =
        new PageserverClient(new InetSocketAddress("127.0.0.1", z.httpPort), () -> token);
    for (int id = 1; id <= safekeepers; id++) {
      this.safekeepers.add(
          new SafekeeperClient(
              id, new InetSocketAddress("127.0.0.1", z.safekeeperHttpPort(id)), CALL, () -> token));
    }
  }

  /** The highest {@code commit_lsn} of the safekeepers that answer; empty if none does. */
  Optional<Lsn> commitLsn() {
    Lsn max = null;
    for (SafekeeperClient sk : safekeepers) {
      try {
        Lsn c = Lsn.parse(sk.timeline(tenant, timeline).commitLsn());
        max = max == null ? c : Lsn.max(max, c);
      } catch (RuntimeException e) {
        // not running (killed, restarting): the others decide
      }
    }
    return Optional.ofNullable(max);
  }

  /**
   * The highest {@code backup_lsn} (the end of the WAL offloaded to remote storage, ADR 0025) of
   * the safekeepers that answer; 0/0 if none does.
   */
  Lsn backupLsn() {
    Lsn max = Lsn.INVALID;
    for (SafekeeperClient sk : safekeepers) {
      try {
        String b = sk.timeline(tenant, timeline).backupLsn();
        max = b == null ? max : Lsn.max(max, Lsn.parse(b));
      } catch (RuntimeException e) {
        // not running: the others decide
      }
    }
    return max;
  }

  /** The positions of each safekeeper that answers, by id. */
  Map<Integer, Safekeeper> safekeepers() {
    Map<Integer, Safekeeper> m = new HashMap<>();
    for (int i = 0; i < safekeepers.size(); i++) {
      try {
        var t = safekeepers.get(i).timeline(tenant, timeline);
        m.put(i + 1, new Safekeeper(Lsn.parse(t.flushLsn()), Lsn.parse(t.commitLsn())));
      } catch (RuntimeException e) {
        // not running (killed, restarting): left out
      }
    }
    return m;
  }

  /** The pageserver's positions; empty if it does not answer. */
  Optional<Pageserver> pageserver() {
    try {
      ApiModel.TimelineInfo t = pageserver.timeline(tenant, timeline);
      return Optional.of(
          new Pageserver(Lsn.parse(t.lastRecordLsn()), Lsn.parse(t.diskConsistentLsn())));
    } catch (RuntimeException e) {
      return Optional.empty();
    }
  }

  /**
   * Whether the pageserver has nothing of the timeline left to do: all it ingested is in layer
   * files, and uploaded if it has remote storage.
   */
  boolean pageserverQuiet() {
    try {
      ApiModel.TimelineInfo t = pageserver.timeline(tenant, timeline);
      return t.diskConsistentLsn().equals(t.lastRecordLsn())
          && (t.remoteUpload() == null
              || (t.remoteUpload().queueLength() == 0
                  && t.diskConsistentLsn().equals(t.remoteConsistentLsn())));
    } catch (RuntimeException e) {
      return false;
    }
  }

  /**
   * Waits (bounded) until the pageserver has ingested the WAL up to {@code target}; returns how
   * long that took.
   */
  Duration awaitPageserver(Lsn target, Duration timeout) {
    long t0 = System.nanoTime();
    await(
        timeout,
        "the pageserver's last_record_lsn to reach " + target,
        () -> pageserver().map(p -> !p.lastRecord().isBefore(target)).orElse(false));
    return Duration.ofNanos(System.nanoTime() - t0);
  }

  /**
   * Polls {@code condition} every 200 ms until it holds; fails after {@code timeout}. Slower than
   * {@code PgWal.await}: each poll here is an HTTP call to a server that shares two cores with the
   * workload it is measuring.
   */
  static void await(Duration timeout, String what, BooleanSupplier condition) {
    PgWal.await(timeout, Duration.ofMillis(200), what, condition);
  }

  /** Bytes as MiB with one decimal, for the logs. */
  static String mib(long bytes) {
    return String.format("%.1f MiB", bytes / (1024.0 * 1024.0));
  }
}
