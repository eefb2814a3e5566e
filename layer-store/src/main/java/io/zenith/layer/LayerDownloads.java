package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteStorage;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Brings layer files that are only in remote storage back on first read (ADR 0027), for one store.
 * A download goes to a temporary file ({@code .download.tmp}, fsynced by the storage), is checked
 * against the size and whole-file CRC32C its {@link LayerStub} took from the uploaded index, then
 * renamed into place and the directory fsynced. Single-flight: readers of a layer being downloaded
 * wait (bounded) for that download; a failed one fails them all with its reason, and the next read
 * tries again. The download runs on the first reader's thread (a blocking-scheduler thread for
 * GetPage and basebackup, never an event loop). Thread-safe.
 */
public final class LayerDownloads implements ReadOnlyFile.Fetcher {
  private static final Logger log = LoggerFactory.getLogger(LayerDownloads.class);

  /** Bound of one download, and of a reader's wait for another's. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(120);

  /**
   * What downloads did since the start.
   *
   * @param downloads layer files downloaded
   * @param bytes their bytes
   * @param nanos time spent in successful downloads
   * @param failures downloads that failed (storage error, timeout, size or CRC mismatch)
   */
  public record Totals(long downloads, long bytes, long nanos, long failures) {}

  private final Duration timeout;
  private final Map<Path, CompletableFuture<Void>> inFlight = new ConcurrentHashMap<>();
  private final AtomicLong downloads = new AtomicLong();
  private final AtomicLong bytes = new AtomicLong();
  private final AtomicLong nanos = new AtomicLong();
  private final AtomicLong failures = new AtomicLong();
  private volatile RemoteStorage storage;

  public LayerDownloads(Duration timeout) {
    this.timeout = timeout;
  }

  /** Where layer files that are not local are downloaded from; until set, such reads fail. */
  public void useStorage(RemoteStorage storage) {
    this.storage = storage;
  }

  /** The storage set by {@link #useStorage}, or null. */
  public RemoteStorage storage() {
    return storage;
  }

  public Totals totals() {
    return new Totals(downloads.get(), bytes.get(), nanos.get(), failures.get());
  }

  /**
   * Opens a registered layer: the local file if it is there, else from its stub (no download).
   *
   * @throws LayerStoreException CORRUPT_FILE or IO naming the file when neither opens
   */
  LayerFile.Reader open(Path path) {
    try {
      LayerStub stub = LayerStub.read(path);
      if (stub == null || Files.exists(path)) {
        LayerFile.Reader r = LayerFile.Reader.open(path);
        if (stub != null) {
          r.file().remoteCopy(stub, this);
        }
        return r;
      }
      return LayerFile.Reader.openRemote(path, stub, this);
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO, "cannot open layer " + path + ": " + e.getMessage(), e);
    }
  }

  @Override
  public void fetch(Path path, LayerStub stub) throws IOException {
    CompletableFuture<Void> mine = new CompletableFuture<>();
    CompletableFuture<Void> running = inFlight.putIfAbsent(path, mine);
    if (running != null) {
      await(running, path);
      return;
    }
    try {
      if (!Files.exists(path)) { // a download that just ended brought it
        download(path, stub);
      }
      mine.complete(null);
    } catch (IOException | RuntimeException e) {
      failures.incrementAndGet();
      mine.completeExceptionally(e);
      throw e;
    } finally {
      inFlight.remove(path, mine);
    }
  }

  private void await(CompletableFuture<Void> running, Path path) throws IOException {
    try {
      running.get(timeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      throw new IOException(
          "waited " + timeout.toSeconds() + " s for another reader's download of " + path, e);
    } catch (ExecutionException e) {
      throw new IOException(
          "the download of " + path + " failed: " + e.getCause().getMessage(), e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while waiting for the download of " + path, e);
    }
  }

  private void download(Path path, LayerStub stub) throws IOException {
    RemoteStorage s = storage;
    RemoteKey key = key(path, stub);
    if (s == null) {
      throw new IOException(
          "layer file " + path + " is only in remote storage (" + key + "), and none is set up");
    }
    Path tmp = path.resolveSibling(path.getFileName() + ".download" + DurableFiles.TEMP_SUFFIX);
    long t0 = System.nanoTime();
    // Not Mono.block: readers include the ingest and flush threads, which Reactor marks
    // non-blocking and where block() throws. Waiting there is right: they need the bytes.
    CompletableFuture<Long> done = s.download(key, tmp).toFuture();
    boolean moved = false;
    try {
      done.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      check(tmp, stub, key);
      Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE);
      moved = true;
      DurableFiles.fsyncDirectory(path.getParent());
    } catch (LayerStoreException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new IOException("cannot download " + key + ": " + e.getMessage(), e);
    } catch (ExecutionException e) {
      throw new IOException("cannot download " + key + ": " + e.getCause().getMessage(), e);
    } catch (TimeoutException e) {
      throw new IOException(
          "cannot download " + key + ": no answer in " + timeout.toSeconds() + " s", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while downloading " + key, e);
    } finally {
      if (!moved) {
        done.cancel(true); // a download still running must not write the file deleted next
        Files.deleteIfExists(tmp);
      }
    }
    long took = System.nanoTime() - t0;
    downloads.incrementAndGet();
    bytes.addAndGet(stub.size());
    nanos.addAndGet(took);
    log.debug("downloaded {} ({} bytes) in {} ms", key, stub.size(), took / 1_000_000);
  }

  /** The object that holds the layer file at {@code path}. */
  static RemoteKey key(Path path, LayerStub stub) {
    return RemoteIndex.layerKey(
        TenantId.fromBytes(stub.header(), 8),
        TimelineId.fromBytes(stub.header(), 24),
        path.getFileName().toString(),
        stub.generation());
  }

  /** Checks a downloaded file against what the index said: size, then the whole-file CRC32C. */
  private static void check(Path tmp, LayerStub stub, RemoteKey key) {
    try {
      long size = Files.size(tmp);
      if (size != stub.size()) {
        throw new LayerStoreException(
            LayerStoreException.Kind.CORRUPT_FILE,
            "downloaded " + key + " is " + size + " bytes, the index says " + stub.size());
      }
      int crc = crc32c(tmp);
      if (crc != stub.crc32c()) {
        throw new LayerStoreException(
            LayerStoreException.Kind.CORRUPT_FILE,
            String.format(
                "downloaded %s has CRC32C %08x, the index says %08x", key, crc, stub.crc32c()));
      }
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO, "cannot check downloaded " + key + ": " + e.getMessage(), e);
    }
  }

  static int crc32c(Path f) throws IOException {
    CRC32C c = new CRC32C();
    byte[] buf = new byte[1 << 16];
    try (InputStream in = Files.newInputStream(f)) {
      for (int n; (n = in.read(buf)) > 0; ) {
        c.update(buf, 0, n);
      }
    }
    return (int) c.getValue();
  }
}
