package io.zenith.replication.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.replication.offload.RemoteWal;
import io.zenith.replication.offload.RemoteWalException;
import io.zenith.replication.safekeeper.backup.WalBackup;
import io.zenith.replication.safekeeper.peers.Gossip;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import io.zenith.wal.log.ControlFile.TermEntry;
import io.zenith.wal.log.WalLog;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageSettings;
import io.zenith.wal.testing.S3Proxy;
import io.zenith.wal.testing.SyntheticWal;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * WAL offload (ADR 0025) with real remote storage (a local directory, and s3proxy): completed,
 * committed segments go up once, from one member of three, compressed objects that decompress to
 * the local segments' bytes; {@code backup_lsn} is durable across a restart and reaches the peers
 * through gossip; another member takes over within the bound when the uploader stops; retention
 * keeps WAL above {@code backup_lsn} while the storage is down and catches up after; a damaged
 * object is a clear error.
 */
class WalBackupTest {
  private static final int SEG = 1 << 20;
  private static final long SYSID = 7_000_000_000_000_000_002L;
  private static final Lsn START = Lsn.of(SEG);
  private static final TermEntry T1 = new TermEntry(1, START);
  private static final Duration TAKEOVER = Duration.ofSeconds(1);
  private static final WalBackup.Settings FAST =
      new WalBackup.Settings(
          Duration.ofMillis(100),
          TAKEOVER,
          Duration.ofSeconds(10),
          Duration.ofMillis(100),
          Duration.ofMillis(500));

  @TempDir Path tmp;
  private final Identity id =
      new Identity(TenantId.generate(), TimelineId.generate(), SYSID, 15, SEG, START);
  private final SyntheticWal wal = new SyntheticWal(SEG, SYSID, 1, START);
  private final Map<Integer, Member> members = new ConcurrentHashMap<>();
  private final List<AutoCloseable> toClose = new ArrayList<>();
  private final Scheduler blocking = Schedulers.newBoundedElastic(4, 100, "test-gossip");
  private int records;

  /** One running safekeeper with its gossip and uploader. */
  private record Member(Safekeeper sk, Gossip gossip, WalBackup backup, MeterRegistry meters) {
    SafekeeperTimeline timeline(Identity id) {
      return sk.timeline(id.tenant(), id.timeline());
    }

    double uploaded() {
      return meters.counter("safekeeper_wal_backup_segments").count();
    }

    void stop() {
      backup.close();
      gossip.close();
      sk.close();
    }
  }

  @AfterEach
  void stopAll() throws Exception {
    members.values().forEach(Member::stop);
    for (AutoCloseable c : toClose.reversed()) {
      c.close();
    }
    blocking.dispose();
  }

  private void growTo(int segment) {
    while (wal.position().segmentNumber(SEG) < segment) {
      wal.append(10, 0, 100 + records, 3000 + (records * 37) % 9000);
      records++;
    }
  }

  /** Safekeeper {@code sk}'s directory with the timeline holding {@link #wal}, committed. */
  private void prepare(int sk) throws IOException {
    Path dir =
        Files.createDirectories(
            skDir(sk).resolve(id.tenant().toString()).resolve(id.timeline().toString()));
    Lsn end = wal.position();
    ControlFile.create(id, ControlFile.LagLimits.NONE)
        .withPromisedTerm(1)
        .withHistory(List.of(T1))
        // A compute nobody listens for: the test appends "its" WAL itself (appendFromCompute).
        .withCompute(new ComputeSource(1, "127.0.0.1", 1, "postgres"))
        .withPositions(new ControlFile.Positions(end, START, Lsn.INVALID, START))
        .write(dir);
    try (WalLog log = WalLog.open(dir, SEG, SYSID, START)) {
      log.append(START, ByteBuffer.wrap(wal.bytes()));
      log.flush();
    }
  }

  private Path skDir(int sk) {
    return tmp.resolve("sk" + sk);
  }

  private Member start(int sk, int of, RemoteStorage storage) throws IOException {
    SafekeeperConfig config = SafekeeperConfig.of(sk, of).withWalOffload(true);
    MeterRegistry meters = new SimpleMeterRegistry();
    Safekeeper s =
        Safekeeper.start(
            config, skDir(sk), LocalPeers.fetcher(i -> null), meters, Duration.ofMillis(100));
    List<Integer> peers = new ArrayList<>();
    for (int i = 1; i <= of; i++) {
      if (i != sk) {
        peers.add(i);
      }
    }
    Gossip g =
        new Gossip(
            s,
            peers,
            peer -> {
              Member m = members.get(peer);
              if (m == null) {
                throw new IOException("safekeeper " + peer + " is down");
              }
              return m.sk().timelines().stream().map(SafekeeperTimeline::status).toList();
            },
            Duration.ofMillis(100),
            blocking);
    Member m = new Member(s, g, new WalBackup(s, storage, meters, FAST), meters);
    members.put(sk, m);
    return m;
  }

  @Test
  void oneOfThreeUploadsCommittedSegmentsAnotherTakesOverAndBackupLsnIsDurable() throws Exception {
    growTo(5); // segments 1-4 complete, 5 partial
    Path remoteDir = tmp.resolve("remote");
    RemoteStorage storage = RemoteStorage.open(new RemoteStorageSettings.Local(remoteDir));
    toClose.add(storage);
    for (int sk = 1; sk <= 3; sk++) {
      prepare(sk);
    }
    for (int sk = 1; sk <= 3; sk++) {
      start(sk, 3, storage);
    }
    Lsn fourDone = Lsn.of(5L * SEG);
    await(
        () -> members.values().stream().allMatch(m -> m.timeline(id).backupLsn().equals(fourDone)),
        "every member knows segments 1-4 are offloaded");
    List<Member> uploaders = members.values().stream().filter(m -> m.uploaded() > 0).toList();
    assertThat(uploaders).as("exactly one member uploads").hasSize(1);
    Member first = uploaders.getFirst();
    assertThat(first.uploaded()).isEqualTo(4);
    int firstId = first.sk().config().id();
    assertThat(firstId).isEqualTo(WalBackup.uploader(id.timeline(), List.of(1, 2, 3)));
    assertThat(remoteObjects(storage)).hasSize(4); // the partial segment 5 is not there
    assertRemoteEqualsWal(storage, START, fourDone);

    // The uploader stops; the two others append (and commit) two more segments.
    members.remove(firstId).stop();
    long stoppedAt = System.nanoTime();
    Lsn before = wal.position();
    growTo(7);
    byte[] all = wal.bytes();
    byte[] more = java.util.Arrays.copyOfRange(all, (int) before.minus(START), all.length);
    for (Member m : members.values()) {
      SafekeeperTimeline t = m.timeline(id);
      t.appendFromCompute(1, before, ByteBuffer.wrap(more));
      t.flushAndAck();
    }
    Lsn sixDone = Lsn.of(7L * SEG);
    await(
        () -> members.values().stream().allMatch(m -> m.timeline(id).backupLsn().equals(sixDone)),
        "a survivor takes over and offloads segments 5 and 6");
    double takeoverSeconds = (System.nanoTime() - stoppedAt) / 1e9;
    assertThat(takeoverSeconds)
        .as("takeover within takeoverAfter + a few rounds")
        .isLessThan(TAKEOVER.toSeconds() + 4);
    List<Member> second = members.values().stream().filter(m -> m.uploaded() > 0).toList();
    assertThat(second).hasSize(1);
    assertThat(second.getFirst().uploaded()).isEqualTo(2);
    assertRemoteEqualsWal(storage, START, sixDone);

    // backup_lsn is durable: the stopped member and a survivor restarted read it back.
    Member survivor = second.getFirst();
    int survivorId = survivor.sk().config().id();
    members.remove(survivorId).stop();
    try (Safekeeper again =
        Safekeeper.start(
            SafekeeperConfig.of(survivorId, 3).withWalOffload(true),
            skDir(survivorId),
            LocalPeers.fetcher(i -> null),
            new SimpleMeterRegistry(),
            Duration.ofMinutes(1))) {
      assertThat(again.timeline(id.tenant(), id.timeline()).backupLsn()).isEqualTo(sixDone);
    }
    try (Safekeeper again =
        Safekeeper.start(
            SafekeeperConfig.of(firstId, 3).withWalOffload(true),
            skDir(firstId),
            LocalPeers.fetcher(i -> null),
            new SimpleMeterRegistry(),
            Duration.ofMinutes(1))) {
      assertThat(again.timeline(id.tenant(), id.timeline()).backupLsn()).isEqualTo(fourDone);
    }

    // A damaged object is a clear error naming it; a missing one is NOT_FOUND.
    RemoteKey third = RemoteWal.segmentKey(id.tenant(), id.timeline(), 3, SEG);
    Path file = remoteDir.resolve(third.path());
    byte[] bytes = Files.readAllBytes(file);
    bytes[bytes.length / 2] ^= 0x5A;
    Files.write(file, bytes);
    assertThatThrownBy(() -> readSegment(storage, 3))
        .isInstanceOfSatisfying(
            RemoteWalException.class,
            e -> assertThat(e.kind()).isEqualTo(RemoteWalException.Kind.CORRUPT))
        .hasMessageContaining(third.path());
    Files.write(file, java.util.Arrays.copyOf(bytes, 100));
    assertThatThrownBy(() -> readSegment(storage, 3))
        .isInstanceOfSatisfying(
            RemoteWalException.class,
            e -> assertThat(e.kind()).isEqualTo(RemoteWalException.Kind.CORRUPT))
        .hasMessageContaining("truncated");
    assertThatThrownBy(() -> readSegment(storage, 9))
        .isInstanceOfSatisfying(
            RemoteWalException.class,
            e -> assertThat(e.kind()).isEqualTo(RemoteWalException.Kind.NOT_FOUND));
  }

  @Test
  void retentionKeepsWalAboveBackupLsnWhileS3IsDownAndCatchesUpAfter() throws Exception {
    growTo(5);
    prepare(1);
    S3Proxy proxy = S3Proxy.start();
    toClose.add(proxy);
    RemoteStorage storage =
        RemoteStorage.open(
            proxy.settings("sk").withRetries(2, Duration.ofSeconds(2), Duration.ofSeconds(5)));
    toClose.add(storage);
    proxy.stop();
    Member m = start(1, 1, storage);
    SafekeeperTimeline t = m.timeline(id);
    Lsn end = wal.position();
    // The pageserver has everything durably: only the missing backup holds the WAL.
    t.onPageserverFeedback(new PageserverFeedback(end, end, end));
    await(
        () -> m.meters().counter("safekeeper_wal_backup_failures").count() >= 2,
        "uploads fail and are retried while S3 is down");
    assertThat(m.backup().lastFailure(t)).isNotNull();
    assertThat(t.backupLsn()).isEqualTo(Lsn.INVALID);
    assertThat(t.retentionHorizon()).isEqualTo(Lsn.INVALID);
    assertThat(segmentFiles(1)).hasSize(5);

    proxy.restart();
    Lsn fourDone = Lsn.of(5L * SEG);
    await(() -> t.backupLsn().equals(fourDone), "uploads catch up after S3 is back");
    // The files go first, then the log's own list of them (SegmentFiles.deleteBefore): wait for
    // both, or the oldest LSN can still name the segment just deleted (seen in CI).
    await(
        () -> segmentFiles(1).size() == 1 && t.oldestLsn().equals(fourDone),
        "retention removes the offloaded segments");
    assertThat(m.backup().lastFailure(t)).isNull();
    // The WAL retention removed is still readable, from remote storage, byte for byte.
    assertRemoteEqualsWal(storage, START, fourDone);
  }

  private byte[] readSegment(RemoteStorage storage, long n) {
    return RemoteWal.readSegment(
            storage, id.tenant(), id.timeline(), n, SEG, Duration.ofSeconds(10))
        .block();
  }

  private List<String> remoteObjects(RemoteStorage storage) {
    return storage
        .list(RemoteWal.prefix(id.tenant(), id.timeline()))
        .map(o -> o.key().name())
        .collectList()
        .block(Duration.ofSeconds(10));
  }

  /** The remote WAL in [from, to) has the bytes {@link #wal} wrote there (size + SHA-256). */
  private void assertRemoteEqualsWal(RemoteStorage storage, Lsn from, Lsn to) {
    MessageDigest md = PgWal.sha256();
    RemoteWal.read(storage, id.tenant(), id.timeline(), SEG, from, to, Duration.ofSeconds(10))
        .toIterable()
        .forEach(md::update);
    MessageDigest expected = PgWal.sha256();
    expected.update(wal.bytes(), (int) from.minus(START), (int) to.minus(from));
    assertThat(HexFormat.of().formatHex(md.digest()))
        .isEqualTo(HexFormat.of().formatHex(expected.digest()));
  }

  private List<String> segmentFiles(int sk) {
    Path dir = skDir(sk).resolve(id.tenant().toString()).resolve(id.timeline().toString());
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("0000")).toList();
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private static void await(BooleanSupplier condition, String what) throws Exception {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting: " + what);
      }
      Thread.sleep(20);
    }
  }
}
