package io.zenith.ingest;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.CheckPointData;
import io.zenith.layer.Key;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.Timeline;
import io.zenith.layer.Value;
import io.zenith.layer.testing.FullLayerDisk;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.test.StepVerifier;

/**
 * The flush stage on a full disk ({@link FullLayerDisk}): a checkpoint's flush fails, is retried
 * with backoff while the frozen layer stays queued and nothing becomes durable (the metrics say
 * so), and completes once space is back; closing the pipeline ends the retries with the failure.
 */
class IngestPipelineFullDiskTest {
  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId MAIN = TimelineId.parse("22222222222222222222222222222222");
  private static final Lsn START = Lsn.parse("0/1000028");

  @TempDir Path data;
  private final FullLayerDisk disk = FullLayerDisk.unlimited();
  private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
  private LayerStore store;
  private Timeline timeline;
  private Lsn durable;

  /** A timeline with checkpoint data (what WalIngest needs) flushed, and 20 pages unflushed. */
  @BeforeEach
  void timelineWithUnflushedVersions() {
    store = LayerStore.open(data, LayerStoreConfig.DEFAULT, disk);
    store.createTenant(TENANT);
    timeline = store.createRootTimeline(TENANT, MAIN, START, 42, 15);
    Lsn at = START.plus(64);
    timeline.put(KeySpace.CHECKPOINT, at, new Value.Image(new byte[CheckPointData.SIZE]));
    timeline.finishRecord(at, START);
    timeline.checkpoint();
    durable = timeline.diskConsistentLsn();
    for (int i = 0; i < 20; i++) {
      byte[] page = new byte[8192];
      Arrays.fill(page, (byte) i);
      timeline.put(new Key(0, 1663, 5, 16384, 0, i), at.plus(64), new Value.Image(page));
      timeline.finishRecord(at.plus(64), at);
      at = at.plus(64);
    }
  }

  @AfterEach
  void close() {
    store.close();
  }

  private IngestPipeline pipeline() {
    WalIngest ingest =
        new WalIngest(
            timeline,
            (t, k, l) -> {
              throw new AssertionError("no page is read");
            });
    return new IngestPipeline(timeline, ingest, IngestPipeline.Options.DEFAULT, meters);
  }

  private double blocked() {
    return meters.get("zenith.flush.blocked").gauge().value();
  }

  private double failures() {
    return meters.get("zenith.flush.failures").functionCounter().count();
  }

  private List<String> layerAndTempFiles() {
    try (Stream<Path> s = Files.list(timeline.dir())) {
      return s.map(p -> p.getFileName().toString())
          .filter(n -> n.endsWith(".layer") || n.endsWith(".tmp"))
          .sorted()
          .toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Test
  void aCheckpointWaitsWhileTheDiskIsFullAndCompletesOnceSpaceIsBack() {
    List<String> files = layerAndTempFiles();
    Lsn last = timeline.lastRecordLsn();
    try (IngestPipeline p = pipeline()) {
      assertThat(blocked()).isZero();
      disk.setFree(0);
      long[] freedAt = new long[1];
      StepVerifier.create(p.checkpoint())
          .expectSubscription()
          // Attempts at 0 s and 1 s (backoff 1 s, then 2 s): the checkpoint waits, no error.
          .expectNoEvent(Duration.ofMillis(2500))
          .then(
              () -> {
                assertThat(timeline.flushFailure()).contains(FullLayerDisk.ENOSPC);
                assertThat(blocked()).isEqualTo(1);
                assertThat(failures()).isGreaterThanOrEqualTo(2);
                assertThat(timeline.frozenCount()).isEqualTo(1);
                assertThat(timeline.diskConsistentLsn()).isEqualTo(durable);
                assertThat(layerAndTempFiles()).isEqualTo(files);
                disk.setFree(Long.MAX_VALUE);
                freedAt[0] = System.nanoTime();
              })
          .expectComplete()
          // The next attempt comes within the longest backoff.
          .verify(IngestPipeline.RETRY_MAX.plusSeconds(5));
      assertThat(Duration.ofNanos(System.nanoTime() - freedAt[0]))
          .isLessThanOrEqualTo(IngestPipeline.RETRY_MAX.plusSeconds(1));
      assertThat(timeline.diskConsistentLsn()).isEqualTo(last);
      assertThat(timeline.frozenCount()).isZero();
      assertThat(timeline.flushFailure()).isEmpty();
      assertThat(blocked()).isZero();
      assertThat(failures()).isGreaterThanOrEqualTo(2);
      assertThat(layerAndTempFiles()).hasSize(files.size() + 1).noneMatch(n -> n.endsWith(".tmp"));
    }
  }

  @Test
  void closingThePipelineEndsTheRetriesAndKeepsTheFrozenLayer() {
    disk.setFree(0);
    IngestPipeline p = pipeline();
    long[] closeTook = new long[1];
    StepVerifier.create(p.checkpoint())
        .expectSubscription()
        .expectNoEvent(Duration.ofMillis(1500))
        .then(
            () -> {
              long t0 = System.nanoTime();
              p.close();
              closeTook[0] = System.nanoTime() - t0;
            })
        .expectErrorSatisfies(
            e ->
                assertThat(e)
                    .isInstanceOf(LayerStoreException.class)
                    .extracting(x -> ((LayerStoreException) x).kind())
                    .isEqualTo(LayerStoreException.Kind.NO_SPACE))
        .verify(Duration.ofSeconds(10));
    assertThat(Duration.ofNanos(closeTook[0])).isLessThan(Duration.ofSeconds(2));
    assertThat(timeline.frozenCount()).isEqualTo(1);
    assertThat(timeline.diskConsistentLsn()).isEqualTo(durable);

    // The next pipeline (a reconnect) flushes it once there is space.
    disk.setFree(Long.MAX_VALUE);
    try (IngestPipeline again = pipeline()) {
      StepVerifier.create(again.checkpoint()).expectComplete().verify(Duration.ofSeconds(10));
    }
    assertThat(timeline.frozenCount()).isZero();
    assertThat(timeline.diskConsistentLsn()).isEqualTo(timeline.lastRecordLsn());
  }
}
