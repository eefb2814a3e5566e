package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.control.PageserverClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.it.support.S3Remote;
import io.zenith.layer.RemoteIndex;
import io.zenith.layer.Seams;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.testing.S3Proxy;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Issue 12's acceptance for the order of uploads, indexes and remote deletions (ADRs 0023, 0024,
 * 0027), through the real {@code ./zenith} launcher and its processes: while pgbench writes into
 * compute {@code main} (full storage, one safekeeper), the pageserver is started with {@code
 * ZENITH_TEST_CRASH_AT} at one remote seam ({@link Seams.Seam#remote()}) and SIGKILLs itself there:
 * a layer uploaded and no index naming it; an index uploaded and the deletion list of what it
 * retired not written; a deletion list durable; a list half executed. The repository's remote
 * storage is a real s3proxy on loopback ({@code zenith init --remote s3://…}, one per class; the
 * CLI and the servers take its keys from the environment), which keeps what the kill left; the test
 * reads it through the same S3 backend.
 *
 * <p>After each kill, before anything else touches remote storage: the newest index names only
 * objects that are there, whole (size and whole-file CRC32C). Then a fresh pageserver (a new data
 * directory holding only {@code pageserver.toml}) takes the tenant with {@code zenith tenant
 * attach} in the next generation: it attaches exactly that index (generation, {@code
 * disk_consistent_lsn}, layer count), catches up from the safekeeper, and once the compute stopped
 * cleanly every page of every relation of the compute's data directory equals the one the attached
 * pageserver exports at the compute's final LSN. The next seam is armed on that pageserver's own
 * data directory.
 *
 * <p>First, once, the killed pageserver's own data directory is started again instead (killed with
 * a deletion list durable and not executed): it resumes uploading ({@code remote_consistent_lsn}
 * passes the LSN of the index it died after) and empties its deletion queue.
 *
 * <p>{@code make test} attaches after two seams (layer uploaded; deletion half done), {@code make
 * test-long} after all four ({@link #ATTACHED}).
 */
@ExtendWith(NettyLeakCheck.Sampled.class)
class CliRemoteSeamCrashTest {
  private static final Logger log = LoggerFactory.getLogger(CliRemoteSeamCrashTest.class);
  private static final Duration T = Duration.ofSeconds(120);

  /** Where in s3proxy's bucket the repository's remote storage lives. */
  private static final String PREFIX = "seams";

  /** pgbench's rate: enough WAL for a layer every few seconds, bounded (conventions). */
  private static final String RATE = "100";

  /**
   * The seams after which a fresh pageserver attaches: two in {@code make test} (a round costs
   * 40–120 s on two cores), all four with {@code -Dzenith.remoteseams.all=true} ({@code make
   * test-long}).
   */
  private static final List<Seams.Seam> ATTACHED =
      Boolean.getBoolean("zenith.remoteseams.all")
          ? Arrays.stream(Seams.Seam.values()).filter(Seams.Seam::remote).toList()
          : List.of(Seams.Seam.REMOTE_LAYER_UPLOADED, Seams.Seam.REMOTE_DELETION_PARTIAL);

  @Test
  void aPageserverKilledAtEachRemoteSeamLeavesAnIndexAFreshPageserverAttachesWithTheSamePages()
      throws Exception {
    try (S3Proxy s3 = S3Proxy.start();
        ZenithRepo z = new ZenithRepo(false)) {
      z.environment(S3Remote.environment());
      z.keepingLogsOnFailure("CliRemoteSeamCrashTest", repo -> run(repo, s3));
    }
  }

  private void run(ZenithRepo z, S3Proxy s3) throws Exception {
    List<String> initArgs = z.initArgs();
    initArgs.addAll(
        List.of(
            "--safekeepers",
            "1",
            "--remote",
            S3Remote.url(PREFIX),
            "--remote-endpoint",
            s3.endpoint().toString()));
    z.ok(initArgs.toArray(String[]::new));
    // Small layers and eager maintenance: each seam is reached within seconds (uploads after
    // every flush, deletions after every compaction or GC that retires an uploaded file).
    for (Map.Entry<String, String> s :
        Map.of(
                "checkpoint_distance", "'512KiB'",
                "compaction_target_size", "'1MiB'",
                "compaction_threshold", "3",
                "image_creation_threshold", "3",
                "compaction_period", "'1s'",
                "gc_period", "'1s'",
                "gc_horizon", "'1MiB'",
                "pitr_interval", "'0s'")
            .entrySet()) {
      z.setPageserverOption(s.getKey(), s.getValue());
    }
    z.ok("start");
    z.ok("pg", "create", "main", "--storage", "full");
    int port = z.start("main");
    Map<String, String> shown = z.show("main");
    TenantId tenant = TenantId.parse(shown.get("tenant"));
    TimelineId timeline = TimelineId.parse(shown.get("timeline"));
    PageserverClient http =
        new PageserverClient(new InetSocketAddress("127.0.0.1", z.httpPort), z::adminToken);
    TimelinePositions positions = new TimelinePositions(z, 1, "main");
    CliSoakTest.PgbenchResult init = CliSoakTest.pgbench(z, port, T, "init", "-i", "-q", "-s", "1");
    assertThat(init.exit()).as(init.output()).isZero();

    try (RemoteStorage remote = RemoteStorage.open(s3.settings(PREFIX))) {
      Process pgbench = startPgbench(z, port, "restart");
      try {
        // The killed pageserver's own directory, started again, finishes what it left.
        Seams.Seam first = Seams.Seam.REMOTE_DELETION_QUEUED;
        killAt(z, first);
        RemoteIndex left = assertConsistent(remote, tenant, timeline, first);
        z.ok("pageserver", "start");
        TimelinePositions.await(
            T,
            "the restarted pageserver's remote_consistent_lsn to pass "
                + left.diskConsistentLsn()
                + " and its deletion queue to empty",
            () -> {
              try {
                Lsn remoteLsn = Lsn.parse(http.timeline(tenant, timeline).remoteConsistentLsn());
                return remoteLsn.isAfter(left.diskConsistentLsn())
                    && http.status().remoteDeletion().pendingLists() == 0;
              } catch (RuntimeException e) {
                return false;
              }
            });
        ApiModel.RemoteDeletionInfo deletion = http.status().remoteDeletion();
        assertThat(deletion.deletions()).as("objects the list left by the kill named").isPositive();
        assertThat(deletion.setAside()).as("lists set aside").isZero();
        log.info("the restarted pageserver resumed uploading after {}", first.settingName());
      } finally {
        stop(pgbench);
      }

      for (Seams.Seam seam : ATTACHED) {
        long t0 = System.nanoTime();
        pgbench = startPgbench(z, port, seam.settingName());
        try {
          killAt(z, seam);
          RemoteIndex index = assertConsistent(remote, tenant, timeline, seam);
          attachOnAFreshPageserver(z, http, tenant, timeline, seam, index);
          positions.awaitPageserver(positions.commitLsn().orElseThrow(), T);
        } finally {
          stop(pgbench);
        }
        CliMaintenanceCrashTest.comparePages(z, positions);
        if (seam != ATTACHED.getLast()) {
          port = z.start("main");
        }
        log.info(
            "seam {}: killed, attached and compared in {} s",
            seam.settingName(),
            (System.nanoTime() - t0) / 1_000_000 / 1000.0);
      }
    }
  }

  /** pgbench's tpcb-like workload on {@code port}, rate-limited, until {@link #stop}. */
  private static Process startPgbench(ZenithRepo z, int port, String name) throws IOException {
    return CliSoakTest.startPgbench(z, port, name, "-n", "-c", "2", "-R", RATE, "-T", "600");
  }

  private static void stop(Process p) throws InterruptedException {
    p.destroy();
    p.waitFor();
  }

  /**
   * Stops the running pageserver, starts it with the crash armed at {@code seam} and waits until it
   * SIGKILLed itself there.
   */
  private static void killAt(ZenithRepo z, Seams.Seam seam) {
    z.ok("pageserver", "stop");
    long pid = CliMaintenanceCrashTest.startArmed(z, seam);
    TimelinePositions.await(
        T,
        "the pageserver (pid " + pid + ") to reach seam " + seam.settingName() + " and die",
        () -> ZenithRepo.sh("kill -0 " + pid) != 0);
    assertThat(z.pageserverLog())
        .as("the pageserver's log says where it died")
        .contains("reached seam " + seam.settingName() + ": SIGKILL to pid " + pid);
  }

  /**
   * The remote state a kill left: the timeline's newest index names only objects that are there
   * with its size and whole-file CRC32C. Returns that index.
   */
  private static RemoteIndex assertConsistent(
      RemoteStorage remote, TenantId tenant, TimelineId timeline, Seams.Seam seam) {
    RemoteKey key =
        RemoteIndex.latestIndexKey(remote, tenant, timeline, Integer.MAX_VALUE, T)
            .orElseThrow(() -> new AssertionError("no index after the kill at " + seam));
    RemoteIndex index = RemoteIndex.fromBytes(remote.get(key).block(T), key.toString());
    Map<String, Long> objects = new HashMap<>();
    List<RemoteObject> listed =
        remote
            .list(RemoteIndex.timelinePrefix(tenant, timeline).path() + "/")
            .collectList()
            .block(T);
    for (RemoteObject o : listed == null ? List.<RemoteObject>of() : listed) {
      objects.put(o.key().name(), o.size());
    }
    List<String> bad = new ArrayList<>();
    for (RemoteIndex.Layer l : index.layers()) {
      Long size = objects.get(l.objectName());
      if (size == null || size != l.size()) {
        bad.add(l.objectName() + " (index: " + l.size() + " bytes, remote: " + size + ")");
        continue;
      }
      CRC32C crc = new CRC32C();
      crc.update(
          remote
              .get(RemoteIndex.layerKey(tenant, timeline, l.fileName(), l.generation()))
              .block(T));
      if ((int) crc.getValue() != l.crc32c()) {
        bad.add(l.objectName() + " (CRC32C differs from the index's)");
      }
    }
    log.info(
        "after the kill at {}: {} names {} layers at {}; {} objects in the prefix",
        seam.settingName(),
        key.name(),
        index.layers().size(),
        index.diskConsistentLsn(),
        objects.size());
    assertThat(bad).as("objects %s names that are missing or damaged", key).isEmpty();
    assertThat(index.layers()).isNotEmpty();
    return index;
  }

  /**
   * Moves the killed pageserver's data directory aside, starts a fresh one with only its settings
   * and attaches the tenant there: it must take {@code index}, as the kill left it.
   */
  private static void attachOnAFreshPageserver(
      ZenithRepo z,
      PageserverClient http,
      TenantId tenant,
      TimelineId timeline,
      Seams.Seam seam,
      RemoteIndex index)
      throws IOException {
    Path data = z.repo.resolve("pageserver");
    Path killed = z.repo.resolve("pageserver-killed-" + seam.settingName());
    Files.move(data, killed);
    Files.createDirectory(data);
    Files.copy(killed.resolve("pageserver.toml"), data.resolve("pageserver.toml"));
    z.ok("pageserver", "start");
    z.ok("tenant", "attach", "default");
    ApiModel.TenantDetail d = http.tenant(tenant);
    assertThat(d.attach()).as("the fresh pageserver attached the tenant").isNotNull();
    ApiModel.AttachedTimeline a =
        d.attach().timelines().stream()
            .filter(t -> t.timelineId().equals(timeline.toString()))
            .findFirst()
            .orElseThrow(() -> new AssertionError("timeline " + timeline + " not attached: " + d));
    assertThat(a.indexGeneration())
        .as("generation of the attached index")
        .isEqualTo(index.generation());
    assertThat(d.generation()).as("the attach's generation").isGreaterThan(index.generation());
    assertThat(a.diskConsistentLsn()).isEqualTo(index.diskConsistentLsn().toString());
    assertThat(a.layers()).isEqualTo(index.layers().size());
    log.info(
        "seam {}: attached in generation {} from index generation {} at {} ({} layers) in {} ms",
        seam.settingName(),
        d.generation(),
        a.indexGeneration(),
        a.diskConsistentLsn(),
        a.layers(),
        d.attach().millis());
  }
}
