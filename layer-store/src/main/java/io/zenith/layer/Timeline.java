package io.zenith.layer;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.BiPredicate;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;

/**
 * One timeline of a tenant: its versions, in the open in-memory layer, frozen layers waiting to be
 * flushed, and layer files indexed by RocksDB; and, below its branch point, its ancestor's.
 *
 * <p>Two roles: readers take it as a {@link TimelineView}, ingest as a {@link TimelineWriter}. This
 * class owns the positions (last record, disk- and remote-consistent LSNs) and the flush of frozen
 * layers to files; its layers and the read path over them are in {@link TimelineLayers}, readers
 * waiting for an LSN in {@link LsnWaiters}, the state of failing flushes in {@link FlushFailures}.
 *
 * <p><b>Writing</b> (one thread, the ingest stage): {@link #put} versions of a record, then {@link
 * #finishRecord} with the record's end. {@link #freezeIfDue} freezes the open layer between
 * records; {@link #flushOldestFrozen} (blocking I/O, a dedicated thread) writes a frozen layer to a
 * file and commits it to RocksDB together with the new disk-consistent LSN, in one synced batch. A
 * flush that cannot write its file (a full disk) changes nothing and may be retried: {@link
 * #flushFailure} says why while it fails.
 *
 * <p><b>Reading</b> (any thread): {@link #history}, {@link #newest}, {@link #nextKey}. A reader
 * holds the layer-list read lock while it collects versions, so a layer is never removed under it;
 * in-memory layers cover LSNs above the index's, so nothing is read twice.
 *
 * <p>Thread-safe in the roles above.
 */
public final class Timeline implements TimelineWriter {
  private static final Logger log = LoggerFactory.getLogger(Timeline.class);

  /** The last ingested record: its end, and its start (the next record's xl_prev). */
  public record RecordPosition(Lsn last, Lsn prev) {}

  /** Replaced (durably first) when GC raises the cutoff; the rest of it never changes. */
  private volatile TimelineMetadata metadata;

  /** Held by one maintenance pass (compaction or GC) at a time. */
  private final java.util.concurrent.locks.ReentrantLock maintenance =
      new java.util.concurrent.locks.ReentrantLock();

  private final Compaction compaction;
  private final LsnPins pins = new LsnPins();
  private final GarbageCollection gc;
  private final Path dir;
  private final LayerIndex index;
  private final LayerDisk disk;
  private final TimelineLayers layers;
  private final LsnWaiters waiters = new LsnWaiters();
  private final FlushFailures flushFailures;

  private volatile Timeline ancestor;
  private volatile RecordPosition position;

  /** Moved under the layers' write lock, together with the removal of the flushed layer. */
  private volatile Lsn diskConsistentLsn;

  private final TimelineStateWriter stateWriter;
  private volatile Runnable layersChanged = () -> {};
  private volatile String broken;
  private volatile boolean closed;

  /** Set before {@link #closed}: a closed timeline that was deleted says so to its readers. */
  private volatile boolean deleted;

  Timeline(
      TimelineMetadata metadata,
      Path dir,
      LayerIndex index,
      LayerStoreConfig config,
      LayerDisk disk,
      LayerIndex.TimelineState state) {
    this.metadata = metadata;
    this.dir = dir;
    this.index = index;
    this.disk = disk;
    this.layers = new TimelineLayers(metadata.tenant(), metadata.timeline(), dir, index, config);
    this.flushFailures = new FlushFailures(metadata.tenant() + "/" + metadata.timeline());
    this.compaction = new Compaction(this, layers, index, disk, config.checkpointDistance());
    this.gc = new GarbageCollection(this, layers, index);
    this.position = new RecordPosition(state.diskConsistentLsn(), state.prevRecordLsn());
    this.diskConsistentLsn = state.diskConsistentLsn();
    this.stateWriter =
        new TimelineStateWriter(
            metadata.tenant(), metadata.timeline(), index, state.remoteConsistentLsn());
  }

  @Override
  public TenantId tenant() {
    return metadata.tenant();
  }

  @Override
  public TimelineId id() {
    return metadata.timeline();
  }

  @Override
  public TimelineMetadata metadata() {
    return metadata;
  }

  @Override
  public Optional<Timeline> ancestor() {
    return Optional.ofNullable(ancestor);
  }

  void setAncestor(Timeline a) {
    this.ancestor = a;
  }

  @Override
  public Lsn startLsn() {
    return metadata.initdbLsn();
  }

  @Override
  public RecordPosition position() {
    return position;
  }

  @Override
  public Lsn lastRecordLsn() {
    return position.last();
  }

  @Override
  public Lsn diskConsistentLsn() {
    return diskConsistentLsn;
  }

  @Override
  public Lsn remoteConsistentLsn() {
    return stateWriter.remoteConsistentLsn();
  }

  @Override
  public Optional<String> brokenReason() {
    return Optional.ofNullable(broken);
  }

  void markBroken(String reason) {
    this.broken = reason;
    log.error("timeline {}/{} is broken: {}", tenant(), id(), reason);
  }

  private void checkUsable() {
    if (deleted) {
      throw new LayerStoreException(
          LayerStoreException.Kind.UNKNOWN_TIMELINE,
          "timeline " + id() + " of tenant " + tenant() + " was deleted");
    }
    if (closed) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO, "timeline " + tenant() + "/" + id() + " is closed");
    }
    String b = broken;
    if (b != null) {
      throw new LayerStoreException(
          LayerStoreException.Kind.CORRUPT_FILE,
          "timeline " + tenant() + "/" + id() + " is unusable: " + b);
    }
  }

  /** The timeline's directory (its layer files, metadata, and files of the layers above). */
  public Path dir() {
    return dir;
  }

  /** For tests of the layer list's locking. */
  TimelineLayers layers() {
    return layers;
  }

  void addReader(long layerId, LayerFile.Reader r) {
    layers.addReader(layerId, r);
  }

  // ---------------------------------------------------------------- writing

  @Override
  public void put(Key key, Lsn lsn, Value value) {
    checkUsable();
    try {
      layers.openLayer(() -> position.last()).put(key, lsn, value);
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot write the in-memory layer of " + tenant() + "/" + id() + ": " + e.getMessage(),
          e);
    }
  }

  @Override
  public void finishRecord(Lsn end, Lsn start) {
    if (!end.isAfter(position.last())) {
      throw new IllegalArgumentException(
          "record end " + end + " is not after the last record " + position.last());
    }
    InMemoryLayer l = layers.openOrNull();
    RecordPosition p = new RecordPosition(end, start);
    if (l != null) {
      l.advance(end, start);
    }
    position = p;
    waiters.reached(end);
  }

  @Override
  public Mono<Void> waitForLsn(Lsn lsn, Duration timeout) {
    return waiters.await(
        lsn,
        timeout,
        () -> position.last(),
        () ->
            new LayerStoreException(
                LayerStoreException.Kind.LSN_TIMEOUT,
                "timed out after "
                    + timeout.toMillis()
                    + " ms waiting for LSN "
                    + lsn
                    + " on timeline "
                    + tenant()
                    + "/"
                    + id()
                    + " (last record "
                    + position.last()
                    + ")"));
  }

  @Override
  public boolean freezeDue() {
    return layers.freezeDue();
  }

  @Override
  public boolean freezeIfDue(boolean force) {
    try {
      return layers.freezeIfDue(force, () -> position, () -> diskConsistentLsn);
    } catch (IOException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO, "cannot freeze: " + e.getMessage(), e);
    }
  }

  @Override
  public int frozenCount() {
    return layers.frozenCount();
  }

  @Override
  public long openLayerBytes() {
    return layers.openLayerBytes();
  }

  @Override
  public boolean flushOldestFrozen() {
    checkUsable();
    InMemoryLayer l = layers.oldestFrozen();
    if (l == null) {
      return false;
    }
    Lsn to = l.to();
    try {
      if (l.isEmpty()) {
        stateWriter.commitLayer(null, List.of(), to, l.prevRecordAtTo());
      } else {
        writeAndCommit(l, to);
      }
    } catch (LayerFile.WriteException e) {
      throw flushFailed(e, e.getCause() == null ? e.getMessage() : e.getCause().getMessage());
    } catch (RocksDBException e) {
      if (LayerIndex.isNoSpace(e)) {
        throw flushFailed(e, e.getMessage());
      }
      throw cannotFlush(e);
    } catch (IOException e) {
      throw cannotFlush(e);
    }
    flushFailures.worked();
    layers.removeOldestFrozen(() -> diskConsistentLsn = to);
    l.delete();
    layersChanged.run();
    return true;
  }

  private LayerStoreException cannotFlush(Exception e) {
    return new LayerStoreException(
        LayerStoreException.Kind.IO,
        "cannot flush a layer of " + tenant() + "/" + id() + ": " + e.getMessage(),
        e);
  }

  /** Writes {@code l}'s layer file and commits it; on failure, deletes what it wrote. */
  private void writeAndCommit(InMemoryLayer l, Lsn to) throws IOException, RocksDBException {
    if (l.layerId() == 0) {
      // Once per layer: a retry after a failure changes nothing in RocksDB before its commit.
      l.setLayerId(index.allocateLayerId());
    }
    long id = l.layerId();
    LayerFile.Header h =
        new LayerFile.Header(LayerFile.Kind.DELTA, tenant(), id(), l.keyRange(), l.from(), to, id);
    LayerIndex.NewLayer written = layers.write(h, disk, l::writeTo);
    try {
      stateWriter.commitLayer(written.info(), written.entries(), to, l.prevRecordAtTo());
    } catch (RocksDBException | RuntimeException e) {
      // Whether the batch is in RocksDB is for its recovery to say: the file stays (a restart
      // deletes it if it is not registered; a retry writes it again under the same name).
      layers.closeReader(id);
      throw e;
    }
    log.info(
        "flushed layer {} of {}/{}: {} versions, {} bytes, LSN {}..{}",
        written.info().fileName(),
        tenant(),
        id(),
        written.entries().size(),
        written.info().size(),
        l.from(),
        to);
  }

  private LayerStoreException flushFailed(Exception e, String why) {
    flushFailures.failed(e, why, () -> diskConsistentLsn);
    return new LayerStoreException(
        LayerStoreException.Kind.NO_SPACE,
        "cannot flush a layer of " + tenant() + "/" + id() + ": " + e.getMessage(),
        e);
  }

  @Override
  public Optional<String> flushFailure() {
    return flushFailures.current();
  }

  @Override
  public long flushFailures() {
    return flushFailures.count();
  }

  @Override
  public void checkpoint() {
    freezeIfDue(true);
    while (flushOldestFrozen()) {
      // flush every frozen layer, oldest first
    }
  }

  /** Records the LSN up to which remote storage has this timeline (durable on return). */
  void setRemoteConsistentLsn(Lsn lsn) throws RocksDBException {
    stateWriter.setRemoteConsistentLsn(lsn);
  }

  /** Called after each flush and maintenance pass: the upload queue's wake-up (ADR 0023). */
  void onLayersChanged(Runnable r) {
    layersChanged = r;
  }

  // ---------------------------------------------------------------- maintenance

  /**
   * Compacts now, on the calling thread (blocking I/O and page reconstruction): creates image
   * layers where they are due, rewrites the layers the last GC left mostly dead, then merges the L0
   * layers into L1 layers once there are {@code compactionThreshold} ({@link Compaction}). A pass
   * nobody {@code requested} (after a flush, periodic) looks for images less often ({@code
   * Compaction.background}). Waits for another maintenance pass of this timeline.
   */
  public CompactionResult compact(CompactionSettings settings, ImageSource images) {
    return compact(settings, images, true);
  }

  /** {@link #compact(CompactionSettings, ImageSource)}, or a background pass if not requested. */
  public CompactionResult compact(
      CompactionSettings settings, ImageSource images, boolean requested) {
    return maintained(
        "compact",
        () ->
            requested
                ? compaction.fullPass(settings, images, gc.liveBytes())
                : compaction.background(settings, images, gc.liveBytes()));
  }

  /**
   * Removes what no read at or above {@code cutoff} needs; the cutoff is in force already ({@link
   * #raiseGcCutoff}, through {@link LayerStore#gc}).
   */
  GcResult collectGarbage(Lsn cutoff) {
    return maintained("collect garbage of", () -> gc.collect(cutoff));
  }

  /** A pass that may fail with I/O or RocksDB errors. */
  private interface Pass<T> {
    T run() throws IOException, RocksDBException;
  }

  /** Runs {@code pass} holding the maintenance lock: one compaction or GC at a time. */
  private <T> T maintained(String what, Pass<T> pass) {
    checkUsable();
    maintenance.lock();
    try {
      checkUsable();
      T result = pass.run();
      layersChanged.run();
      return result;
    } catch (IOException | RocksDBException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO, "cannot " + what + " " + this + ": " + e.getMessage(), e);
    } finally {
      maintenance.unlock();
    }
  }

  /**
   * Holds {@code lsn} readable until the returned handle is closed: GC keeps its cutoff at or below
   * it (for a basebackup or a read-only compute at that LSN).
   *
   * @throws LayerStoreException INVALID_LSN when it is below the GC cutoff already
   */
  public AutoCloseable pin(Lsn lsn) {
    return pins.pin(lsn, () -> metadata.gcCutoff(), this::toString);
  }

  /**
   * Raises the GC cutoff to {@code wanted} capped by the pins, durably before it returns (reads
   * below it are refused from then on); never lowers it.
   *
   * @return the cutoff now in force
   */
  Lsn raiseGcCutoff(Lsn wanted) throws IOException {
    return pins.raise(
        wanted,
        metadata.gcCutoff(),
        cutoff -> {
          TimelineMetadata raised = metadata.withGcCutoff(cutoff);
          raised.write(dir);
          metadata = raised;
        });
  }

  @Override
  public Lsn gcCutoff() {
    return metadata.gcCutoff();
  }

  @Override
  public int l0Layers() {
    return layers.stats().l0();
  }

  /** This timeline's own layer files by level. */
  public LayerStats layerStats() {
    return layers.stats();
  }

  /**
   * This timeline's own layer files as the index registers them (committed), oldest first.
   *
   * @throws LayerStoreException IO if the index cannot be read
   */
  public List<LayerFileInfo> layerFiles() {
    checkUsable();
    return index.layers(tenant(), id()).stream().map(LayerFileInfo::of).toList();
  }

  // ---------------------------------------------------------------- reading

  @Override
  public List<Version> history(Key key, Lsn lsn) {
    List<Version> out = new ArrayList<>();
    visit(
        key,
        lsn,
        (at, v) -> {
          out.add(new Version(at, v));
          return !v.isBase();
        });
    return out;
  }

  @Override
  public Optional<Version> newest(Key key, Lsn lsn) {
    Version[] found = new Version[1];
    visit(
        key,
        lsn,
        (at, v) -> {
          found[0] = new Version(at, v);
          return false;
        });
    return found[0] == null || found[0].value().isTombstone()
        ? Optional.empty()
        : Optional.of(found[0]);
  }

  /**
   * Visits versions of {@code key} at or below {@code lsn}, newest first, through the ancestors,
   * while the visitor returns true.
   */
  private void visit(Key key, Lsn lsn, BiPredicate<Lsn, Value> visitor) {
    checkAboveGcCutoff(lsn);
    Lsn at = lsn;
    for (Timeline t = this; t != null; ) {
      t.checkUsable();
      boolean more;
      try {
        more = t.layers.visitOwn(key, at, visitor);
      } catch (LayerStoreException e) {
        t.checkUsable(); // a deletion under this read is the cause, not a missing layer
        throw e;
      }
      // Closed (deleted) while this read waited for the layers: what it saw may be partial.
      t.checkUsable();
      if (!more) {
        return;
      }
      Timeline a = t.ancestor;
      if (a != null) {
        at = Lsn.min(at, t.metadata.ancestorLsn());
      }
      t = a;
    }
  }

  /** GC may have removed versions that a read below the cutoff would need: refused. */
  private void checkAboveGcCutoff(Lsn lsn) {
    Lsn cutoff = metadata.gcCutoff();
    if (cutoff.isValid() && lsn.isBefore(cutoff)) {
      throw new LayerStoreException(
          LayerStoreException.Kind.INVALID_LSN,
          "LSN " + lsn + " of timeline " + this + " is below its GC cutoff " + cutoff);
    }
  }

  @Override
  public Optional<Key> nextKey(Key from, Key end, Lsn lsn) {
    Key cur = from;
    while (cur != null && cur.compareTo(end) < 0) {
      Key candidate = null;
      for (Timeline t = this; t != null; t = t.ancestor) {
        t.checkUsable();
        Key c = t.layers.ownCeilingKey(cur);
        t.checkUsable(); // as in visit: a deletion may have emptied what it looked at
        if (c != null && (candidate == null || c.compareTo(candidate) < 0)) {
          candidate = c;
        }
      }
      if (candidate == null || candidate.compareTo(end) >= 0) {
        return Optional.empty();
      }
      if (newest(candidate, lsn).isPresent()) {
        return Optional.of(candidate);
      }
      cur = candidate.next();
    }
    return Optional.empty();
  }

  /**
   * Closes the timeline for its deletion: readers then fail with UNKNOWN_TIMELINE "was deleted"
   * (those in progress too, once they are past the layers they hold), not with a missing layer.
   */
  void delete() {
    deleted = true;
    close();
  }

  /** Closes files; unflushed versions are dropped (the WAL is ingested again after a restart). */
  void close() {
    stateWriter.close();
    layers.close(
        () -> closed = true,
        () ->
            waiters.failAll(
                () ->
                    new LayerStoreException(
                        LayerStoreException.Kind.IO,
                        "timeline " + tenant() + "/" + id() + " closed")));
  }

  @Override
  public String toString() {
    return tenant() + "/" + id();
  }
}
