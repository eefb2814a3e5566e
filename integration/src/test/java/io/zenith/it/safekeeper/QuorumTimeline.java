package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.safekeeper.SafekeeperApiModel.TimelineInfo;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.safekeeper.Election;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalSegmentName;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.function.Predicate;
import java.util.stream.Stream;

/**
 * One timeline on a {@link SafekeeperSet}, written by a real PostgreSQL 15 compute whose
 * synchronous quorum is the safekeepers ({@code ANY 2 (sk_1, sk_2, sk_3)} for three), driven only
 * through their HTTP APIs: the timeline is created on each, elections run through {@code
 * SafekeeperClient.member}, the compute of a term is set per safekeeper. WAL is compared by digests
 * of the segment files in each safekeeper's directory, read directly (not through the safekeeper).
 *
 * <p>Computes keep their data pages to themselves between checkpoints ({@code bgwriter_lru_maxpages
 * = 0}, no timed checkpoints), so that {@link #successor} can start a compute at an elected LSN.
 * Not thread-safe; close it (it closes every compute it started, not the safekeepers).
 */
final class QuorumTimeline implements AutoCloseable {
  static final Duration T = Duration.ofSeconds(90);

  final SafekeeperSet sks;
  final Identity identity;
  private final List<PgCluster> computes = new ArrayList<>();
  private PgCluster compute;

  private QuorumTimeline(SafekeeperSet sks, PgCluster compute, Identity identity) {
    this.sks = sks;
    this.compute = compute;
    this.identity = identity;
    computes.add(compute);
  }

  /**
   * Starts a compute whose WAL starts at a fresh segment and creates its timeline on every
   * safekeeper of {@code sks} (which must be running).
   */
  static QuorumTimeline start(SafekeeperSet sks) {
    return start(sks, java.util.stream.IntStream.rangeClosed(1, sks.size()).toArray());
  }

  /**
   * As {@link #start(SafekeeperSet)}, but the timeline is created on safekeepers {@code on} only
   * (running); the others learn it from their peers' gossip when they run.
   */
  static QuorumTimeline start(SafekeeperSet sks, int... on) {
    PgCluster compute = PgCluster.initdb();
    try {
      Identity identity =
          PgWal.startSafekeeperCompute(
              compute,
              sks.size(),
              Map.of(
                  "bgwriter_lru_maxpages", "0",
                  "checkpoint_timeout", "1h",
                  "max_wal_size", "8GB"));
      for (int i : on) {
        TimelineInfo created = sks.client(i).ensureTimeline(identity, null).timeline();
        assertThat(created.startLsn()).isEqualTo(identity.startLsn().toString());
        assertThat(created.systemId()).isEqualTo(Long.toUnsignedString(identity.systemId()));
      }
      return new QuorumTimeline(sks, compute, identity);
    } catch (RuntimeException | Error e) {
      compute.close();
      throw e;
    }
  }

  /** The compute of the latest term (the first one, or the latest {@link #successor}). */
  PgCluster compute() {
    return compute;
  }

  TenantId tenant() {
    return identity.tenant();
  }

  TimelineId timeline() {
    return identity.timeline();
  }

  Election.Result elect() throws Election.ElectionFailed {
    return Election.run(
        sks.members(identity.tenant(), identity.timeline()), Duration.ofSeconds(20));
  }

  /** Makes the current compute the WAL source of {@code term} on every running safekeeper. */
  void setCompute(long term) {
    ComputeSource c = new ComputeSource(term, "127.0.0.1", compute.port(), "postgres");
    for (int i = 1; i <= sks.size(); i++) {
      if (sks.isRunning(i)) {
        assertThat(sks.client(i).setCompute(tenant(), timeline(), c).compute()).isNotNull();
      }
    }
  }

  /** The end of the current compute's last record (see SafekeeperQuorumTest). */
  Lsn lastRecordEnd() {
    return recordEndBefore(PgWal.lsn(compute, "pg_current_wal_insert_lsn()"));
  }

  /** The end of the record before a record start {@code lsn} (a page header may lie between). */
  Lsn recordEndBefore(Lsn lsn) {
    if (lsn.segmentOffset(identity.segmentSize()) == 40) {
      return lsn.plus(-40);
    }
    return lsn.pageOffset() == 24 ? lsn.plus(-24) : lsn;
  }

  TimelineInfo info(int id) {
    return sks.client(id).timeline(tenant(), timeline());
  }

  static Lsn flush(TimelineInfo t) {
    return Lsn.parse(t.flushLsn());
  }

  static Lsn commit(TimelineInfo t) {
    return Lsn.parse(t.commitLsn());
  }

  /** Waits until every safekeeper of {@code ids} answers a status that passes {@code ok}. */
  void awaitAll(String what, int[] ids, Predicate<TimelineInfo> ok) {
    try {
      PgWal.await(
          T,
          what,
          () -> {
            for (int id : ids) {
              if (!ok.test(info(id))) {
                return false;
              }
            }
            return true;
          });
    } catch (AssertionError e) {
      throw new AssertionError(e.getMessage() + describe(ids), e);
    }
  }

  /** What safekeepers {@code ids} say about the timeline, and the ends of their logs. */
  String describe(int... ids) {
    StringBuilder sb = new StringBuilder();
    for (int id : ids) {
      sb.append("\n--- safekeeper ").append(id).append(": ");
      try {
        sb.append(info(id));
      } catch (RuntimeException x) {
        sb.append(x.getMessage());
      }
      sb.append("\n").append(sks.logTail(id));
    }
    return sb.toString();
  }

  /**
   * Waits until safekeepers {@code ids} hold and know as committed everything up to {@code end}.
   */
  void awaitCaughtUp(int[] ids, Lsn end) {
    awaitAll(
        "safekeepers " + java.util.Arrays.toString(ids) + " to hold and commit " + end,
        ids,
        t -> !flush(t).isBefore(end) && !commit(t).isBefore(end));
  }

  /** Safekeeper {@code id}'s WAL directory of this timeline. */
  Path walDir(int id) {
    return sks.timelineDir(id, tenant(), timeline());
  }

  /** Digest of safekeeper {@code id}'s WAL [start, upTo), read from its segment files. */
  String digest(int id, Lsn upTo) {
    return PgWal.digest(walDir(id), identity.segmentSize(), identity.startLsn(), upTo);
  }

  /** Digest of the current compute's WAL [start, upTo), read from its {@code pg_wal}. */
  String computeDigest(Lsn upTo) {
    return PgWal.digest(compute.walDir(), identity.segmentSize(), identity.startLsn(), upTo);
  }

  /**
   * Asserts that safekeepers {@code ids} and the current compute hold the same WAL up to {@code
   * upTo}.
   */
  void assertSameWal(int[] ids, Lsn upTo) {
    String expected = computeDigest(upTo);
    for (int id : ids) {
      assertThat(digest(id, upTo)).as("safekeeper %d's WAL up to %s", id, upTo).isEqualTo(expected);
    }
  }

  /**
   * A copy of safekeeper {@code id}'s segment files under their final names ({@code pg_waldump}
   * reads no {@code .partial} files), where PostgreSQL's OS user can read them; returns the
   * directory and the names of its first and last segment.
   */
  WalCopy walCopy(int id) {
    try {
      Path dir = compute.dataDir().getParent().resolve("sk" + id + "-wal-" + System.nanoTime());
      compute.distribution().createOwnedDirectory(dir);
      List<String> names = new ArrayList<>();
      try (Stream<Path> files = Files.list(walDir(id))) {
        for (Path p : files.sorted().toList()) {
          String name = p.getFileName().toString().replace(WalSegmentName.PARTIAL_SUFFIX, "");
          if (WalSegmentName.parse(name, identity.segmentSize()).isPresent()) {
            Files.copy(p, dir.resolve(name));
            compute.distribution().giveToPgUser(dir.resolve(name));
            names.add(name);
          }
        }
      }
      names.sort(null);
      return new WalCopy(dir, names.getFirst(), names.getLast());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Segment files copied for PostgreSQL's tools. */
  record WalCopy(Path dir, String first, String last) {}

  /** Runs {@code sql} on the current compute in the background (e.g. a commit that will wait). */
  CompletableFuture<String> sqlAsync(String sql) {
    PgCluster c = compute;
    return CompletableFuture.supplyAsync(() -> c.sql(sql));
  }

  /** Waits until {@code n} backends of the current compute wait for synchronous replication. */
  void awaitSyncRepWaiters(int n) {
    PgCluster c = compute;
    PgWal.await(
        T,
        n + " commits waiting for the safekeepers",
        () ->
            Integer.parseInt(
                    c.sql("select count(*) from pg_stat_activity" + " where wait_event = 'SyncRep'")
                        .trim())
                >= n);
  }

  /** SIGKILLs the current compute's postmaster and waits until it is gone. */
  void killCompute() {
    kill(compute);
  }

  /** SIGKILLs compute {@code c}'s postmaster and waits until it is gone. */
  void kill(PgCluster c) {
    try {
      long pid = Long.parseLong(Files.readAllLines(c.dataDir().resolve("postmaster.pid")).get(0));
      SafekeeperSet.signal(pid, "KILL");
      PgWal.await(
          T, "postmaster " + pid + " to exit", () -> !Files.exists(Path.of("/proc/" + pid)));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Starts the compute of a new term whose WAL continues at {@code at} (an elected start LSN), and
   * makes it {@link #compute()}. Until pageservers read WAL from safekeepers there is no basebackup
   * at {@code at} to start it from; what stands in for one: a copy of the current compute's data
   * directory (stopped or idle) with its WAL cut at {@code at} (later segments deleted, the rest of
   * that segment zeroed), so that PostgreSQL's crash recovery ends exactly at {@code at} and the
   * new compute writes its own WAL from there. Data pages of the copy never run ahead of {@code
   * at}: computes here write pages only at checkpoints, and none happens after {@code at}.
   */
  PgCluster successor(Lsn at) {
    Path from = compute.dataDir();
    int seg = identity.segmentSize();
    long cutSegment = at.value() / seg;
    PgCluster next =
        PgCluster.fromDataDirectory(
            to -> {
              try (Stream<Path> walk = Files.walk(from)) {
                for (Path p : walk.toList()) {
                  Path rel = from.relativize(p);
                  Path dst = to.resolve(rel.toString());
                  if (Files.isDirectory(p)) {
                    Files.createDirectories(dst);
                    continue;
                  }
                  if (rel.toString().equals("postmaster.pid")) {
                    continue;
                  }
                  Optional<WalSegmentName> name =
                      rel.getParent() != null && rel.getParent().toString().equals("pg_wal")
                          ? WalSegmentName.parse(rel.getFileName().toString(), seg)
                          : Optional.empty();
                  if (name.isPresent() && name.get().segmentNumber() > cutSegment) {
                    continue;
                  }
                  Files.copy(p, dst);
                  if (name.isPresent() && name.get().segmentNumber() == cutSegment) {
                    zeroFrom(dst, at.segmentOffset(seg), seg);
                  }
                }
              } catch (IOException e) {
                throw new UncheckedIOException(e);
              }
            });
    computes.add(next);
    next.start();
    compute = next;
    return next;
  }

  private static void zeroFrom(Path file, long offset, int size) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
      ByteBuffer zeros = ByteBuffer.allocate(1 << 20);
      for (long p = offset; p < size; ) {
        zeros.clear().limit((int) Math.min(zeros.capacity(), size - p));
        p += ch.write(zeros, p);
      }
    }
  }

  /** Closes what a test's setup got to start (either may be null): computes, then safekeepers. */
  static void closeAll(QuorumTimeline q, SafekeeperSet sks) {
    try {
      if (q != null) {
        q.close();
      }
    } finally {
      if (sks != null) {
        sks.close();
      }
    }
  }

  @Override
  public void close() {
    for (PgCluster c : computes) {
      c.close();
    }
  }
}
