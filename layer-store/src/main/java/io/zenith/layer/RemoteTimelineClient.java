package io.zenith.layer;

import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.zip.CRC32C;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.scheduler.Scheduler;

/**
 * The upload queue of one timeline (ADR 0023). A pass looks at what the timeline's index commits
 * (its disk-consistent LSN first, then its layer files, so the list covers at least that LSN),
 * uploads every layer file remote storage does not have yet, one after the other, and then, only
 * when every file it names is uploaded, the timeline's {@link RemoteIndex}; then it records the
 * index's disk-consistent LSN as the timeline's remote-consistent LSN (durable in RocksDB).
 *
 * <p>The queue is the set of committed layer files not uploaded yet: bounded by the timeline's
 * local layer files, which the local disk buffers while remote storage is down; ingest never waits
 * for it. Wake-ups coalesce: one pass at a time, and wake-ups during a pass make one more pass,
 * which uploads one index for everything that changed. A file that compaction or GC retired before
 * its upload is simply not named by the next pass's index.
 *
 * <p>A failed pass is retried with exponential backoff ({@link RemoteUploads.Settings}): for ever
 * on TRANSIENT errors (logged at WARN, at most every {@link #LOG_EVERY}), and also on PERMANENT
 * ones (logged at ERROR, retried at the maximum backoff, since an operator may fix a bucket's
 * permissions without a restart); either is in {@link Status#failure} until a pass works.
 *
 * <p>After an index is uploaded, the objects that no longer need to exist go to the store's {@link
 * RemoteDeletionQueue} (ADR 0024): those the previous index named, those found in the prefix at the
 * first pass, and those this queue uploaded, minus what the uploaded index names and what is
 * committed locally now (a file committed during the pass is uploaded by the next one). Never
 * before the index's put has returned; a pass holds {@link #passLock} throughout, and the deletion
 * worker takes it before it deletes this timeline's objects.
 *
 * <p>Generations (ADR 0026): a pass uploads under the tenant's generation on this pageserver
 * ({@link TenantGenerations}); a layer an earlier generation uploaded keeps its object and its
 * generation in the index. The first pass of a generation continues from the index of the highest
 * generation not above it. Before it puts an index, and again before it records the index's LSN as
 * remote-consistent and queues deletions, a pass asks the control plane ({@link GenerationCheck})
 * whether the generation is still current: a stale one writes no index, never advances the
 * remote-consistent LSN and deletes nothing, and its passes fail ("stale") until the tenant is
 * attached here again with a newer generation.
 *
 * <p>Thread-safe: passes run one at a time on the uploads' scheduler; {@link #wake} and {@link
 * #status} from any thread.
 */
public final class RemoteTimelineClient {
  private static final Logger log = LoggerFactory.getLogger(RemoteTimelineClient.class);
  static final Duration LOG_EVERY = Duration.ofSeconds(30);

  /**
   * A timeline's upload state.
   *
   * @param remoteConsistentLsn the disk-consistent LSN of the last index uploaded
   * @param queueLength committed layer files not uploaded yet, as of the last pass
   * @param uploads layer files this queue uploaded since the start
   * @param uploadedBytes their bytes and the indexes'
   * @param retries passes that failed and were retried
   * @param failure why passes fail now, if they do
   * @param remoteLayers layer files the last index (put and found current) names
   * @param remoteBytes their bytes: the timeline's own history in remote storage
   */
  public record Status(
      Lsn remoteConsistentLsn,
      int queueLength,
      long uploads,
      long uploadedBytes,
      long retries,
      Optional<String> failure,
      int remoteLayers,
      long remoteBytes) {}

  private static final int IDLE = 0;
  private static final int RUNNING = 1;
  private static final int RUNNING_AGAIN = 2;

  private final Timeline timeline;
  private final RemoteStorage storage;
  private final RemoteUploads.Settings settings;
  private final Scheduler scheduler;
  private final RemoteUploads.Counters counters;
  private final Consumer<RemoteKey> onUploaded;
  private final RemoteDeletionQueue deletions;
  private final TenantGenerations generations;
  private final GenerationCheck check;
  private final ReentrantLock passLock = new ReentrantLock();
  private final AtomicInteger state = new AtomicInteger(IDLE);
  private final AtomicLong uploads = new AtomicLong();
  private final AtomicLong bytes = new AtomicLong();
  private final AtomicLong retries = new AtomicLong();

  // Touched by passes only (one at a time, so no lock).
  private final Map<String, RemoteIndex.Layer> uploaded = new HashMap<>();
  private int generation; // of the passes since the first pass of a generation; 0 before
  private Map<String, Long> remoteSizes; // layer objects found at that pass, by object name
  private Map<String, RemoteIndex.Layer> remoteIndexed; // the index found then, by file name
  private RemoteIndex lastIndex; // the last index put
  private RemoteIndex validIndex; // the last index put and then found current
  private Set<String> candidates; // objects that may exist and go once no index names them
  private String lastMissing; // the file a pass found missing, until a pass works
  private Duration backoff;
  private long lastLogNanos;
  private long suppressed;

  private volatile int queueLength;
  private volatile String failure;
  private volatile Set<String> indexedObjects = Set.of(); // object names the last index names
  private volatile RemoteIndex remoteIndex; // the last index put and found current, for status
  private volatile boolean stopped;
  private volatile Disposable next; // the pass scheduled last
  private volatile boolean waiting; // it has not started yet (a backoff, or the queue)

  RemoteTimelineClient(
      Timeline timeline,
      RemoteStorage storage,
      RemoteUploads.Settings settings,
      Scheduler scheduler,
      RemoteUploads.Counters counters,
      Consumer<RemoteKey> onUploaded,
      RemoteDeletionQueue deletions,
      TenantGenerations generations,
      GenerationCheck check) {
    this.timeline = timeline;
    this.generations = generations;
    this.check = check;
    this.storage = storage;
    this.settings = settings;
    this.scheduler = scheduler;
    this.counters = counters;
    this.onUploaded = onUploaded;
    this.deletions = deletions;
    this.backoff = settings.minBackoff();
  }

  public Status status() {
    return new Status(
        timeline.remoteConsistentLsn(),
        queueLength,
        uploads.get(),
        bytes.get(),
        retries.get(),
        Optional.ofNullable(failure),
        remoteIndex == null ? 0 : remoteIndex.layers().size(),
        remoteIndex == null
            ? 0
            : remoteIndex.layers().stream().mapToLong(RemoteIndex.Layer::size).sum());
  }

  /** Asks for a pass: starts one, or one more after the pass in progress. */
  void wake() {
    while (!stopped) {
      int s = state.get();
      if (s == IDLE && state.compareAndSet(IDLE, RUNNING)) {
        schedule(Duration.ZERO);
        return;
      }
      if (s == RUNNING_AGAIN || (s == RUNNING && state.compareAndSet(RUNNING, RUNNING_AGAIN))) {
        return;
      }
    }
  }

  /**
   * Stops the queue: a pass waiting for its backoff never runs; a pass in progress ends after its
   * current step.
   */
  void stop() {
    stopped = true;
    Disposable d = next;
    if (d != null && waiting) {
      d.dispose();
    }
  }

  private void schedule(Duration delay) {
    try {
      // log lines of a pass carry the timeline, as those of its other threads do
      Runnable task = LogContext.wrap(timeline.tenant(), timeline.id(), this::run);
      waiting = true;
      next = scheduler.schedule(task, delay.toMillis(), TimeUnit.MILLISECONDS);
    } catch (RuntimeException e) {
      // the scheduler is disposed: the uploads are closing
      stopped = true;
    }
  }

  private void run() {
    waiting = false;
    if (stopped) {
      return;
    }
    Duration retryIn;
    try {
      passLock.lockInterruptibly();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return; // the close
    }
    try {
      if (stopped) {
        return; // stopped while this pass waited for the deletion worker's hold
      }
      if (!pass()) {
        // A file was retired under the pass: look again soon (not at once: a file missing for
        // another reason must not make this a busy loop).
        schedule(settings.minBackoff());
        return;
      }
      backoff = settings.minBackoff();
      lastMissing = null;
      if (failure != null) {
        log.info("uploads of {} work again after {} retries", timeline, retries.get());
        failure = null;
        suppressed = 0;
        lastLogNanos = 0;
      }
      if (state.compareAndSet(RUNNING, IDLE)) {
        return;
      }
      state.set(RUNNING); // woken during the pass: one more
      retryIn = Duration.ZERO;
    } catch (RemoteStorageException e) {
      if (e.kind() == RemoteStorageException.Kind.TRANSIENT) {
        retryIn = failed("transient", e.getMessage(), false);
      } else {
        retryIn = failed("permanent", e.getMessage(), true);
      }
    } catch (LayerStoreException e) {
      if (e.kind() == LayerStoreException.Kind.UNKNOWN_TIMELINE) {
        stopped = true; // deleted; the rescan drops this queue
        return;
      }
      boolean stale = e.kind() == LayerStoreException.Kind.STALE_GENERATION;
      retryIn = failed(stale ? "stale" : "local", e.getMessage(), true);
    } catch (IOException | RocksDBException | RuntimeException e) {
      // RuntimeException: a call that outlived callTimeout (block's IllegalStateException)
      retryIn = failed("local", e.toString(), false);
    } finally {
      passLock.unlock();
    }
    if (!stopped) {
      schedule(retryIn);
    }
  }

  /** Records a failed pass, logs it (rate-limited) and says when to try again. */
  private Duration failed(String kind, String message, boolean permanent) {
    if (stopped) {
      return Duration.ZERO; // interrupted by the close or the timeline's deletion: not a failure
    }
    retries.incrementAndGet();
    counters.retries.incrementAndGet();
    failure = kind + ": " + message;
    long now = System.nanoTime();
    if (lastLogNanos == 0 || now - lastLogNanos >= LOG_EVERY.toNanos()) {
      String fmt = "uploads of {} fail ({} failures not logged since the last), retry in {}: {}";
      Duration then = permanent ? settings.maxBackoff() : backoff;
      if (permanent) {
        log.error(fmt, timeline, suppressed, then, failure);
      } else {
        log.warn(fmt, timeline, suppressed, then, failure);
      }
      lastLogNanos = now;
      suppressed = 0;
    } else {
      suppressed++;
    }
    Duration wait = permanent ? settings.maxBackoff() : backoff;
    Duration doubled = backoff.multipliedBy(2);
    backoff = doubled.compareTo(settings.maxBackoff()) > 0 ? settings.maxBackoff() : doubled;
    return wait;
  }

  /**
   * One pass: uploads what is missing, then the index if it changed.
   *
   * @return false if a layer file was retired locally under the pass (nothing is wrong; the next
   *     pass no longer sees it)
   */
  private boolean pass() throws IOException, RocksDBException {
    int gen = generations.of(timeline.tenant());
    if (gen != generation) {
      // the first pass, or the tenant was attached here again: start over from its index
      remoteSizes = null;
      uploaded.clear();
      lastIndex = null;
      validIndex = null;
    }
    Lsn disk = timeline.diskConsistentLsn();
    TimelineMetadata metadata = timeline.metadata();
    List<LayerFileInfo> files = timeline.layerFiles();
    if (remoteSizes == null) {
      remoteIndexed = remoteIndex(gen);
      remoteSizes = listRemote();
      candidates = new HashSet<>();
      remoteIndexed.values().forEach(l -> candidates.add(l.objectName()));
      String suffix = RemoteIndex.suffix(gen);
      remoteSizes.keySet().stream().filter(n -> n.endsWith(suffix)).forEach(candidates::add);
      generation = gen;
    }
    Set<String> names = new HashSet<>();
    int missing = 0;
    for (LayerFileInfo f : files) {
      names.add(f.fileName());
      RemoteIndex.Layer u = uploaded.get(f.fileName());
      if (u == null || u.size() != f.size()) {
        missing++;
      }
    }
    queueLength = missing;
    List<RemoteIndex.Layer> layers = new ArrayList<>();
    for (LayerFileInfo f : files) {
      RemoteIndex.Layer u = uploaded.get(f.fileName());
      if (u == null || u.size() != f.size()) {
        u = upload(f);
        if (u == null) {
          return false;
        }
        uploaded.put(f.fileName(), u);
        queueLength = --missing;
      }
      layers.add(u);
    }
    uploaded.keySet().retainAll(names); // retired files: their objects go after the index
    RemoteIndex index = new RemoteIndex(gen, metadata, disk, layers);
    if (!index.equals(lastIndex)) {
      requireCurrent(gen, "write its index"); // a stale generation writes no index
      RemoteKey key = RemoteIndex.indexKey(timeline.tenant(), timeline.id(), gen);
      byte[] b = index.toBytes();
      long t0 = System.nanoTime();
      storage.put(key, b).block(settings.callTimeout());
      uploaded(key, b.length, t0);
      counters.indexUploads.incrementAndGet();
      Seams.reached(Seams.Seam.REMOTE_INDEX_UPLOADED);
      lastIndex = index;
      Set<String> objects = new HashSet<>();
      index.layers().forEach(l -> objects.add(l.objectName()));
      objects.add(key.name());
      indexedObjects = Set.copyOf(objects);
    }
    if (lastIndex != validIndex) {
      // Checked again after the put: had a newer generation been issued before it, that
      // pageserver may have read an older index, and needs the WAL and the objects beyond it.
      requireCurrent(gen, "let its remote-consistent LSN advance");
      validIndex = lastIndex;
      remoteIndex = lastIndex;
      if (lastIndex.diskConsistentLsn().isAfter(timeline.remoteConsistentLsn())) {
        timeline.setRemoteConsistentLsn(lastIndex.diskConsistentLsn());
      }
    }
    retire(validIndex); // also when an earlier pass's enqueue failed after its put
    return true;
  }

  /** Throws STALE_GENERATION unless {@code gen} is still the tenant's current generation. */
  private void requireCurrent(int gen, String what) {
    if (!check.current(timeline.tenant(), gen)) {
      throw new LayerStoreException(
          LayerStoreException.Kind.STALE_GENERATION,
          "generation "
              + gen
              + " of tenant "
              + timeline.tenant()
              + " is stale: the control plane issued a newer one (the tenant is attached"
              + " elsewhere), so this pageserver does not "
              + what
              + "; it uploads again once attached here in a newer generation");
    }
  }

  /**
   * Queues the deletion of every candidate that {@code index} (uploaded) does not name and that is
   * not committed locally now. Files committed since the pass read the list are not uploaded yet,
   * hence not candidates unless an earlier run left an object of that name: such an object stays.
   */
  private void retire(RemoteIndex index) throws IOException {
    Set<String> keepObjects = new HashSet<>();
    index.layers().forEach(l -> keepObjects.add(l.objectName()));
    Set<String> keepFiles = new HashSet<>();
    timeline.layerFiles().forEach(f -> keepFiles.add(f.fileName()));
    List<String> gone =
        candidates.stream()
            .filter(n -> !keepObjects.contains(n) && !keepFiles.contains(fileNameOf(n)))
            .sorted()
            .toList();
    if (gone.isEmpty()) {
      return;
    }
    List<DeletionList.Entry> entries = new ArrayList<>();
    for (String n : gone) {
      entries.add(new DeletionList.ObjectEntry(timeline.tenant(), timeline.id(), n));
    }
    deletions.enqueue(index.generation(), entries);
    Seams.reached(Seams.Seam.REMOTE_DELETION_QUEUED);
    gone.forEach(candidates::remove);
  }

  /** Held by a pass throughout; the deletion worker holds it while it deletes this timeline's. */
  ReentrantLock passLock() {
    return passLock;
  }

  /** The object names the last index this queue uploaded names (with the index itself). */
  Set<String> indexedObjects() {
    return indexedObjects;
  }

  Timeline timeline() {
    return timeline;
  }

  /** Whether {@code name} is a layer file's object: {@code <id>__<lsns>.layer-<generation>}. */
  private static boolean isLayerObject(String name) {
    int dash = name.length() - RemoteIndex.suffix(1).length();
    return dash > 0
        && name.charAt(dash) == '-'
        && name.startsWith(TimelineFiles.LAYER, dash - TimelineFiles.LAYER.length());
  }

  /** A layer object's local file name: its name without the generation suffix. */
  private static String fileNameOf(String objectName) {
    return objectName.substring(0, objectName.length() - RemoteIndex.suffix(1).length());
  }

  /** Uploads one layer file; null if it was retired (deleted locally) before or during it. */
  private RemoteIndex.Layer upload(LayerFileInfo f) throws IOException {
    Path p = timeline.dir().resolve(f.fileName());
    Long there = remoteSizes.get(f.fileName() + RemoteIndex.suffix(generation));
    RemoteIndex.Layer indexed = remoteIndexed.remove(f.fileName());
    if (indexed != null && indexed.size() == f.size()) {
      Long indexedThere = remoteSizes.get(indexed.objectName());
      if (indexedThere != null && indexedThere == f.size()) {
        // uploaded and indexed by an earlier run, perhaps of an earlier generation: no need to
        // read it again, and its object keeps its name
        return indexed;
      }
    }
    int crc;
    try {
      crc = crc32c(p);
    } catch (NoSuchFileException e) {
      return missing(f.fileName(), p);
    }
    RemoteKey key =
        RemoteIndex.layerKey(timeline.tenant(), timeline.id(), f.fileName(), generation);
    if (there == null || there != f.size()) {
      // a candidate from the attempt on: a failed (timed out) upload may still have landed
      candidates.add(key.name());
      long t0 = System.nanoTime();
      try {
        storage.upload(p, key).block(settings.callTimeout());
      } catch (RemoteStorageException e) {
        if (!Files.exists(p)) {
          return missing(f.fileName(), p);
        }
        throw e;
      }
      uploaded(key, f.size(), t0);
      uploads.incrementAndGet();
      counters.uploads.incrementAndGet();
      Seams.reached(Seams.Seam.REMOTE_LAYER_UPLOADED);
    }
    return new RemoteIndex.Layer(f.fileName(), f.size(), crc, generation);
  }

  /**
   * A committed file that is not on disk: retired under the pass (null: the next pass no longer
   * names it), or, if the next pass names it again, lost (a failure the status shows).
   */
  private RemoteIndex.Layer missing(String fileName, Path p) {
    if (fileName.equals(lastMissing)) {
      throw new LayerStoreException(
          LayerStoreException.Kind.CORRUPT_FILE, "layer file " + p + " is committed but missing");
    }
    lastMissing = fileName;
    return null;
  }

  private void uploaded(RemoteKey key, long size, long t0) {
    counters.nanos.addAndGet(System.nanoTime() - t0);
    counters.bytes.addAndGet(size);
    bytes.addAndGet(size);
    onUploaded.accept(key);
  }

  /**
   * The layer objects earlier runs uploaded, of any generation, by object name: a restart does not
   * upload them again (an object exists only whole, on both backends, so its size is enough).
   */
  private Map<String, Long> listRemote() {
    Map<String, Long> out = new HashMap<>();
    String prefix = RemoteIndex.timelinePrefix(timeline.tenant(), timeline.id()).path() + "/";
    List<RemoteObject> objects = storage.list(prefix).collectList().block(settings.callTimeout());
    for (RemoteObject o : objects == null ? List.<RemoteObject>of() : objects) {
      String name = o.key().name();
      if (isLayerObject(name)) {
        out.put(name, o.size());
      }
    }
    return out;
  }

  /**
   * The layers of the index this generation continues from (its own, or the newest older one), by
   * file name, for their checksums and generations; none if there is no index or it is damaged
   * (then the files are read and uploaded again).
   */
  private Map<String, RemoteIndex.Layer> remoteIndex(int gen) {
    Map<String, RemoteIndex.Layer> out = new HashMap<>();
    Optional<RemoteKey> latest =
        RemoteIndex.latestIndexKey(
            storage, timeline.tenant(), timeline.id(), gen, settings.callTimeout());
    if (latest.isEmpty()) {
      return out;
    }
    RemoteKey key = latest.get();
    byte[] b;
    try {
      b = storage.get(key).block(settings.callTimeout());
    } catch (RemoteStorageException e) {
      if (e.kind() == RemoteStorageException.Kind.NOT_FOUND) {
        return out;
      }
      throw e;
    }
    try {
      for (RemoteIndex.Layer l : RemoteIndex.fromBytes(b, key.toString()).layers()) {
        out.put(l.fileName(), l);
      }
    } catch (LayerStoreException e) {
      log.warn("ignoring the remote index of {}: {}", timeline, e.getMessage());
    }
    return out;
  }

  /** The CRC32C of a whole file (read through its own channel: see {@link ReadOnlyFile}). */
  static int crc32c(Path p) throws IOException {
    CRC32C c = new CRC32C();
    ByteBuffer buf = ByteBuffer.allocate(1 << 16);
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
      while (ch.read(buf.clear()) >= 0) {
        c.update(buf.flip());
      }
    }
    return (int) c.getValue();
  }

  @Override
  public String toString() {
    return "upload queue of " + timeline;
  }
}
