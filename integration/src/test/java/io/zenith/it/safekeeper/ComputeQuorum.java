package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.safekeeper.Election;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * A real PostgreSQL 15 compute whose synchronous quorum is {@code ANY 2 (sk_1, sk_2, sk_3)} and
 * three safekeeper processes ({@link SafekeeperSet}) holding one timeline of it, driven through
 * their HTTP APIs: created, elected, pulling from the compute. The compute belongs to the caller (a
 * fresh initdb, or one started from a pageserver's basebackup). Not thread-safe; close it (the
 * safekeepers; the compute is the caller's).
 */
public final class ComputeQuorum implements AutoCloseable {
  public static final Duration T = Duration.ofSeconds(60);

  public final PgCluster compute;
  public final SafekeeperSet sks;
  public final Identity identity;

  /** The settings a compute needs before it starts: replication to the three safekeepers. */
  public static void configure(PgCluster compute) {
    compute.configure(settings(3));
  }

  /**
   * Replication to {@code n} safekeepers {@code sk_1..sk_n} with a majority quorum; the compute's
   * own fsync is off, as on a Zenith compute (its WAL is durable on the safekeepers).
   */
  public static Map<String, String> settings(int n) {
    StringBuilder names = new StringBuilder();
    for (int i = 1; i <= n; i++) {
      names.append(i == 1 ? "" : ", ").append("sk_").append(i);
    }
    return Map.of(
        "wal_level", "replica",
        "max_wal_senders", "10",
        "max_replication_slots", "10",
        "fsync", "off",
        "synchronous_standby_names", "ANY " + (n / 2 + 1) + " (" + names + ")");
  }

  /**
   * Three safekeepers for the running {@code compute}'s timeline from {@code start} on (the compute
   * must hold its WAL from there), with {@code limits}; elected (term 1) and pulling.
   */
  public ComputeQuorum(
      Path root,
      PgCluster compute,
      TenantId tenant,
      TimelineId timeline,
      Lsn start,
      LagLimits limits) {
    this(root, compute, tenant, timeline, start, limits, 3);
  }

  /** {@code n} safekeepers (the compute {@link #settings settings(n)}-configured), as above. */
  public ComputeQuorum(
      Path root,
      PgCluster compute,
      TenantId tenant,
      TimelineId timeline,
      Lsn start,
      LagLimits limits,
      int n) {
    this(new SafekeeperSet(root, n), compute, tenant, timeline, start, limits);
  }

  /**
   * The safekeepers of {@code sks} (not started yet; e.g. {@link SafekeeperSet#osProcesses} for a
   * test that signals them), the compute {@link #settings settings(sks.size())}-configured, as
   * above.
   */
  public ComputeQuorum(
      SafekeeperSet sks,
      PgCluster compute,
      TenantId tenant,
      TimelineId timeline,
      Lsn start,
      LagLimits limits) {
    int n = sks.size();
    this.compute = compute;
    // Slots keep the compute's WAL for safekeepers that are down; reserved from now on.
    compute.sql(
        "set synchronous_commit = local;"
            + " select pg_create_physical_replication_slot('sk_' || i, true)"
            + " from generate_series(1, "
            + n
            + ") i");
    long sysid =
        Long.parseUnsignedLong(
            compute.sql("select system_identifier from pg_control_system()").trim());
    identity = new Identity(tenant, timeline, sysid, 15, PgWal.segmentSize(compute), start);
    this.sks = sks.startAll();
    try {
      for (int i = 1; i <= n; i++) {
        sks.client(i).ensureTimeline(identity, limits);
      }
      Election.Result r = Election.run(sks.members(tenant, timeline), Duration.ofSeconds(10));
      assertThat(r.startLsn()).isEqualTo(start);
      ComputeSource c = new ComputeSource(r.term(), "127.0.0.1", compute.port(), "postgres");
      for (int i = 1; i <= n; i++) {
        sks.client(i).setCompute(tenant, timeline, c);
      }
    } catch (Election.ElectionFailed | RuntimeException e) {
      sks.close();
      throw new AssertionError("cannot set the safekeepers up", e);
    }
  }

  /**
   * A fresh compute (initdb, {@link #configure}d, started) with its safekeepers from the start of
   * its next WAL segment (so that {@code pg_receivewal}, which starts at segment boundaries, can
   * read everything), without lag limits.
   */
  public static ComputeQuorum fresh(Path root) {
    PgCluster compute = PgCluster.initdb();
    try {
      configure(compute);
      compute.start();
      compute.sql("select pg_switch_wal()");
      Lsn start =
          PgWal.segmentStart(
              PgWal.lsn(compute, "pg_current_wal_insert_lsn()"), PgWal.segmentSize(compute));
      return new ComputeQuorum(
          root, compute, TenantId.generate(), TimelineId.generate(), start, LagLimits.NONE);
    } catch (RuntimeException | AssertionError e) {
      compute.close();
      throw e;
    }
  }

  public TenantId tenant() {
    return identity.tenant();
  }

  public TimelineId timeline() {
    return identity.timeline();
  }

  /**
   * The end of the compute's last record: its insert LSN, unless that sits right after a page
   * header (then the record ended before the header).
   */
  public Lsn lastRecordEnd() {
    return lastRecordEnd(compute, identity.segmentSize());
  }

  /** {@link #lastRecordEnd()} of any compute. */
  public static Lsn lastRecordEnd(PgCluster compute, int segmentSize) {
    Lsn insert = PgWal.lsn(compute, "pg_current_wal_insert_lsn()");
    if (insert.segmentOffset(segmentSize) == 40) {
      return insert.plus(-40);
    }
    return insert.pageOffset() == 24 ? insert.plus(-24) : insert;
  }

  public SafekeeperApiModel.TimelineInfo info(int id) {
    return sks.client(id).timeline(tenant(), timeline());
  }

  /** Waits until every safekeeper of {@code ids} satisfies {@code ok}. */
  public void awaitAll(String what, int[] ids, Predicate<SafekeeperApiModel.TimelineInfo> ok) {
    awaitAll(sks, tenant(), timeline(), what, ids, ok);
  }

  /** Waits until each of {@code ids} in {@code sks} says of the timeline what {@code ok} wants. */
  public static void awaitAll(
      SafekeeperSet sks,
      TenantId tenant,
      TimelineId timeline,
      String what,
      int[] ids,
      Predicate<SafekeeperApiModel.TimelineInfo> ok) {
    PgWal.await(
        T,
        what,
        () -> {
          for (int id : ids) {
            if (!ok.test(sks.client(id).timeline(tenant, timeline))) {
              return false;
            }
          }
          return true;
        });
  }

  /**
   * Waits until every running safekeeper of {@code ids} reports a commit LSN at or past {@code
   * lsn}.
   */
  public void awaitCommit(Lsn lsn, int... ids) {
    awaitAll("commit_lsn >= " + lsn, ids, t -> !Lsn.parse(t.commitLsn()).isBefore(lsn));
  }

  /** The safekeepers' libpq endpoints, for a pageserver's WAL source. */
  public List<ApiModel.SafekeeperEndpoint> endpoints() {
    List<ApiModel.SafekeeperEndpoint> l = new ArrayList<>();
    for (int i = 1; i <= sks.size(); i++) {
      l.add(new ApiModel.SafekeeperEndpoint(i, "127.0.0.1", pgPort(i)));
    }
    return l;
  }

  /** The libpq port of safekeeper {@code id}. */
  public int pgPort(int id) {
    return sks.settings(id).pgAddress().getPort();
  }

  @Override
  public void close() {
    sks.close();
  }
}
