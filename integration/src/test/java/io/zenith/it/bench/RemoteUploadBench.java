package io.zenith.it.bench;

import io.zenith.layer.Key;
import io.zenith.layer.LayerFileInfo;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.RemoteUploads;
import io.zenith.layer.Timeline;
import io.zenith.layer.Value;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.S3Settings;
import io.zenith.wal.testing.S3Proxy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.async.AsyncRequestBody;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3AsyncClient;
import software.amazon.awssdk.services.s3.model.PutObjectRequest;

/**
 * {@code make bench BENCH=remote-upload} (issue 12's upload benchmark): the layer files of a
 * timeline (about 256 MiB of incompressible 8 KiB images in 16 MiB files) uploaded to a real S3
 * server (s3proxy on loopback) by the pageserver's uploads (`RemoteUploads`: whole-file CRC32C,
 * then the objects one after the other, multipart above the threshold, then the index and the
 * generation checks) against the AWS SDK's own {@code putObject} of the same files, one after the
 * other, in the same run. The server is the same for both, so the ratio is what Zenith's upload
 * path costs over the SDK's.
 */
final class RemoteUploadBench {
  private static final TenantId TENANT = TenantId.parse("be0c0000000000000000000000000001");
  private static final TimelineId TL = TimelineId.parse("be0c0000000000000000000000000002");
  private static final Lsn START = Lsn.parse("0/1000028");
  private static final Duration WAIT = Duration.ofMinutes(10);

  private RemoteUploadBench() {}

  @SuppressWarnings("try") // the uploads run while the loop waits for them
  static void run(Path scratch) throws Exception {
    try (S3Proxy s3 = S3Proxy.start();
        LayerStore store =
            LayerStore.open(
                scratch.resolve("remote-upload-ps"),
                LayerStoreConfig.DEFAULT.withCheckpointDistance(16L << 20))) {
      store.createTenant(TENANT);
      Timeline t = store.createRootTimeline(TENANT, TL, START, 42, 15);
      fill(t, 32_768); // 256 MiB of 8 KiB images
      List<LayerFileInfo> files = t.layerFiles();
      long bytes = files.stream().mapToLong(LayerFileInfo::size).sum();
      double mib = bytes / (1024.0 * 1024);

      double rawFirst = sdkPuts(s3, t, files, "raw1");
      List<String> sweep = new ArrayList<>();
      double[] ours = ours(store, t, s3.settings("ours"), files.size());
      double rawSecond = sdkPuts(s3, t, files, "raw2");
      double raw = Math.min(rawFirst, rawSecond);
      long c0 = System.nanoTime();
      for (LayerFileInfo f : files) {
        crc32c(t.dir().resolve(f.fileName()));
      }
      sweep.add(
          row(
              "whole-file CRC32C of every file (page cache), no upload",
              secondsSince(c0),
              mib,
              raw));
      int n = 0;
      for (long[] v : SWEEP) {
        S3Settings settings = with(s3.settings("sweep" + n++), v[0], v[1], (int) v[2]);
        try (RemoteStorage storage = RemoteStorage.open(settings)) {
          long s0 = System.nanoTime();
          for (LayerFileInfo f : files) {
            storage
                .upload(t.dir().resolve(f.fileName()), RemoteKey.of("layers/" + f.fileName()))
                .block(WAIT);
          }
          sweep.add(
              row(
                  String.format(
                      Locale.ROOT,
                      "S3RemoteStorage.upload, threshold %d MiB, parts %d MiB, %d at a time%s",
                      v[0],
                      v[1],
                      v[2],
                      v[0] << 20 > files.getFirst().size() ? " (one PUT per file)" : ""),
                  secondsSince(s0),
                  mib,
                  raw));
        }
      }
      double[] again = ours(store, t, s3.settings("ours-again"), files.size());
      double[] multipart =
          ours(store, t, with(s3.settings("ours-multipart"), 16, 8, 4), files.size());
      System.out.println();
      System.out.printf(
          Locale.ROOT,
          "remote upload: %d layer files, %.0f MiB, s3proxy on loopback, load %s%n",
          files.size(),
          mib,
          loadAverage());
      System.out.println("| uploader | seconds | MiB/s | ratio to the SDK's putObject |");
      System.out.println("|---|---:|---:|---:|");
      System.out.println(
          row("AWS SDK putObject, one file after the other (best of 2)", raw, mib, raw));
      System.out.println(
          row(
              String.format(
                  Locale.ROOT,
                  "Zenith RemoteUploads (CRC32C, objects, index, generation checks; default"
                      + " settings; first run, JIT cold; %.2f s in remote calls by its meter)",
                  ours[1]),
              ours[0],
              mib,
              raw));
      System.out.println(
          row(
              String.format(
                  Locale.ROOT,
                  "the same again, JIT warm (%.2f s in remote calls by its meter)",
                  again[1]),
              again[0],
              mib,
              raw));
      System.out.println(
          row(
              String.format(
                  Locale.ROOT,
                  "the same, JIT warm, threshold 16 MiB as before ADR 0031: multipart (%.2f s in"
                      + " remote calls)",
                  multipart[1]),
              multipart[0],
              mib,
              raw));
      sweep.forEach(System.out::println);
    }
  }

  private static String row(String what, double seconds, double mib, double rawSeconds) {
    return String.format(
        Locale.ROOT,
        "| %s | %.2f | %.0f | %.2f× |",
        what,
        seconds,
        mib / seconds,
        rawSeconds / seconds);
  }

  /**
   * The S3 backend's multipart settings the sweep tries, each {threshold MiB, part MiB, parts at a
   * time}: the default, one PUT per file, one part at a time, larger parts; the first two again
   * (the order's effect: the machine is shared).
   */
  private static final long[][] SWEEP = {
    {16, 8, 4}, {64, 16, 4}, {16, 8, 1}, {16, 16, 1}, {64, 16, 4}, {16, 8, 4},
  };

  /** {@code base} with another multipart threshold, part size (MiB) and part concurrency. */
  private static S3Settings with(S3Settings base, long thresholdMiB, long partMiB, int parts) {
    return new S3Settings(
        base.bucket(),
        base.prefix(),
        base.endpoint(),
        base.region(),
        base.pathStyle(),
        base.credentials(),
        thresholdMiB << 20,
        partMiB << 20,
        parts,
        base.pageSize(),
        base.maxAttempts(),
        base.attemptTimeout(),
        base.callTimeout());
  }

  /**
   * {@code RemoteUploads} uploading every file of {@code t} and an index naming them to {@code
   * settings}' prefix (a new one: nothing there yet): {wall seconds, seconds in remote calls by its
   * own meter}.
   */
  private static double[] ours(LayerStore store, Timeline t, S3Settings settings, int files)
      throws InterruptedException {
    try (RemoteStorage storage = RemoteStorage.open(settings);
        RemoteUploads uploads =
            RemoteUploads.start(store, storage, RemoteUploads.Settings.DEFAULT)) {
      long t0 = System.nanoTime();
      long deadline = t0 + WAIT.toNanos();
      RemoteUploads.Totals done = uploads.totals();
      while (done.uploads() < files
          || done.indexUploads() < 1
          || !t.remoteConsistentLsn().equals(t.diskConsistentLsn())) {
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("the uploads did not finish within " + WAIT);
        }
        Thread.sleep(10);
        done = uploads.totals();
      }
      return new double[] {secondsSince(t0), done.nanos() / 1e9};
    }
  }

  private static double secondsSince(long t0) {
    return (System.nanoTime() - t0) / 1e9;
  }

  private static int crc32c(Path p) throws java.io.IOException {
    java.util.zip.CRC32C c = new java.util.zip.CRC32C();
    java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate(1 << 16);
    try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(p)) {
      while (ch.read(buf.clear()) >= 0) {
        c.update(buf.flip());
      }
    }
    return (int) c.getValue();
  }

  /** Images of {@code pages} distinct blocks, flushed into layer files. */
  private static void fill(Timeline t, int pages) {
    Random r = new Random(1);
    Lsn lsn = START;
    for (int i = 0; i < pages; i++) {
      byte[] page = new byte[8192];
      r.nextBytes(page); // incompressible, as the worst case for the bytes sent
      Lsn start = lsn;
      lsn = lsn.plus(8256);
      t.put(new Key(0, 1663, 5, 16384, 0, i), lsn, new Value.Image(page));
      t.finishRecord(lsn, start);
      if (t.freezeIfDue(false)) {
        t.flushOldestFrozen();
      }
    }
    t.checkpoint();
  }

  /** Seconds for the SDK to put every file, one after the other. */
  private static double sdkPuts(S3Proxy s3, Timeline t, List<LayerFileInfo> files, String prefix) {
    try (S3AsyncClient client =
        S3AsyncClient.builder()
            .endpointOverride(s3.endpoint())
            .forcePathStyle(true)
            .region(Region.US_EAST_1)
            .credentialsProvider(
                StaticCredentialsProvider.create(
                    AwsBasicCredentials.create(S3Proxy.ACCESS_KEY, S3Proxy.SECRET_KEY)))
            .build()) {
      long t0 = System.nanoTime();
      for (LayerFileInfo f : files) {
        client
            .putObject(
                PutObjectRequest.builder()
                    .bucket(S3Proxy.BUCKET)
                    .key(prefix + "/" + f.fileName())
                    .build(),
                AsyncRequestBody.fromFile(t.dir().resolve(f.fileName())))
            .join();
      }
      return (System.nanoTime() - t0) / 1e9;
    }
  }

  private static String loadAverage() {
    return String.format(
        Locale.ROOT,
        "%.1f",
        java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
  }
}
