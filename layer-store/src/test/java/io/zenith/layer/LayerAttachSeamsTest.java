package io.zenith.layer;

import static io.zenith.layer.LayerStoreTest.block;
import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.testing.S3Proxy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The remote state at every seam of uploads and remote deletions (ADR 0023, 0024) is attachable
 * (ADR 0027): while the uploading (or deleting) thread stands at the seam, as if the pageserver had
 * been killed there, another store attaches the tenant from that state and every key reads, at the
 * attached disk-consistent LSN, the page the model says. Real s3proxy.
 */
class LayerAttachSeamsTest {
  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId TL = TimelineId.parse("11111111111111111111111111111111");
  private static final Lsn START = Lsn.parse("0/1000028");
  private static final LayerStoreConfig SMALL =
      LayerStoreConfig.DEFAULT.withCheckpointDistance(64 * 1024);
  private static final CompactionSettings COMPACT = new CompactionSettings(64 * 1024, 3, 2, 2);
  private static final RemoteUploads.Settings FAST =
      RemoteUploads.Settings.DEFAULT.withBackoff(Duration.ofMillis(50), Duration.ofMillis(400));
  private static final Duration CALL = Duration.ofSeconds(20);

  private static S3Proxy proxy;
  private static final AtomicInteger prefixes = new AtomicInteger();

  @TempDir Path source;
  @TempDir Path targets;

  @BeforeAll
  static void startProxy() {
    proxy = S3Proxy.start();
  }

  @AfterAll
  static void stopProxy() {
    proxy.stop();
  }

  @AfterEach
  void clearHook() {
    Seams.clear();
  }

  @ParameterizedTest
  @EnumSource(
      value = Seams.Seam.class,
      names = {
        "REMOTE_LAYER_UPLOADED",
        "REMOTE_INDEX_UPLOADED",
        "REMOTE_DELETION_QUEUED",
        "REMOTE_DELETION_PARTIAL"
      })
  void anAttachFromTheRemoteStateAtASeamReadsWhatTheModelSays(Seams.Seam seam) throws Exception {
    List<String> failures = new ArrayList<>();
    AtomicInteger attaches = new AtomicInteger();
    AtomicInteger tries = new AtomicInteger();
    try (RemoteStorage storage =
            RemoteStorage.open(proxy.settings("seam" + prefixes.incrementAndGet()));
        LayerStore store = LayerStore.open(source, SMALL)) {
      store.createTenant(TENANT);
      Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
      LayerStoreTest.Workload w = new LayerStoreTest.Workload(t, START);
      Seams.install(
          s -> {
            // Once per seam reached, up to twice: the uploader stands still meanwhile.
            if (s != seam || attaches.get() >= 2) {
              return;
            }
            Path target = targets.resolve("t" + tries.incrementAndGet());
            try (LayerStore other = LayerStore.open(target, SMALL)) {
              other.downloads().useStorage(storage);
              try {
                TenantAttach.attach(other, storage, TENANT, 1, CALL);
              } catch (LayerStoreException e) {
                if (e.kind() == LayerStoreException.Kind.UNKNOWN_TENANT) {
                  return; // the first layer is up, no index yet: nothing to attach
                }
                throw e;
              }
              attaches.incrementAndGet();
              Timeline a = other.timeline(TENANT, TL);
              Lsn at = a.diskConsistentLsn();
              for (int k = 0; k < 40; k++) {
                // Compaction changes which versions a read visits, never the page (ADR 0009).
                byte[] got = LayerStoreHistoryTest.rebuild(a.history(block(k), at));
                byte[] expected = LayerStoreHistoryTest.rebuild(w.expected(block(k), at));
                if (!java.util.Arrays.equals(got, expected)) {
                  failures.add(seam + ": key " + k + " at " + at + " differs");
                }
              }
            } catch (RuntimeException e) {
              failures.add(seam + ": " + e);
            }
          });
      try (RemoteUploads uploads = RemoteUploads.start(store, storage, FAST)) {
        Random r = new Random(9);
        for (int round = 0; round < 3; round++) {
          w.ingest(300, 40, r);
          t.checkpoint();
          RemoteUploadsTest.awaitRemoteIsTheTimeline(storage, t);
        }
        // Compaction retires files: the next index leaves them out, a deletion list removes them.
        assertThat(t.compact(COMPACT, LayerStoreHistoryTest.MODEL).didSomething()).isTrue();
        w.ingest(100, 40, r);
        t.checkpoint();
        RemoteDeletionQueueTest.awaitPrefixIsTheIndex(storage, store, t);
        assertThat(uploads.client(TENANT, TL).orElseThrow().status().failure()).isEmpty();
      }
    }
    assertThat(attaches.get()).as("attaches at %s", seam).isPositive();
    assertThat(failures).isEmpty();
  }
}
