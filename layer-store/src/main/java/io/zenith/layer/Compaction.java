package io.zenith.layer;

import io.zenith.wal.Lsn;
import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * The compaction of one timeline's own layers: L0 delta layers merged into key-partitioned L1
 * layers, and key partitions materialized as image layers. Each step writes new layer files
 * durably, commits them to the index in one synced batch (their versions, and the registry minus
 * the layers they replace), and only then retires the replaced files ({@link
 * TimelineLayers#retire}). A crash before the commit leaves unregistered new files, one after it
 * unregistered old ones: the next start deletes unregistered files either way, so no index entry
 * ever names a missing file.
 *
 * <p>Works on an {@link IndexSnapshot}: flushes that commit meanwhile add layers it does not see,
 * and never touch the versions it moves. Other maintenance (GC) must not run at the same time: the
 * caller holds the timeline's maintenance lock. Not thread-safe.
 */
final class Compaction {
  private static final Logger log = LoggerFactory.getLogger(Compaction.class);

  private final Timeline timeline;
  private final TimelineLayers layers;
  private final LayerIndex index;
  private final LayerDisk disk;

  /** WAL between two image checks of background passes (two checkpoint distances). */
  private final long imageCheckDistance;

  /** The disk-consistent LSN at the last look for image layers. */
  private Lsn lastImageCheck = Lsn.INVALID;

  /** The disk-consistent LSN the last background pass saw. */
  private Lsn lastBackgroundPass = Lsn.INVALID;

  Compaction(
      Timeline timeline,
      TimelineLayers layers,
      LayerIndex index,
      LayerDisk disk,
      long checkpointDistance) {
    this.timeline = timeline;
    this.layers = layers;
    this.index = index;
    this.disk = disk;
    this.imageCheckDistance = 2 * checkpointDistance;
  }

  /**
   * A pass nobody asked for (after a flush, or periodic): what {@link #fullPass} does, but it looks
   * for image layers only once the disk-consistent LSN has moved two checkpoint distances since the
   * last look, or has moved at all but not since the previous background pass (the WAL stopped:
   * what came last gets its images). A look scans the timeline's whole index, so one per flush and
   * per period made a catch-up quadratic in the database's size (ADR 0009, amended). Without a
   * look, the pass still rewrites mostly dead layers and merges L0 layers when due.
   */
  CompactionResult background(CompactionSettings settings, ImageSource source, Map<Long, Long> live)
      throws IOException, RocksDBException {
    Lsn at = timeline.diskConsistentLsn();
    boolean stopped = at.equals(lastBackgroundPass);
    lastBackgroundPass = at;
    boolean look =
        !lastImageCheck.isValid()
            || at.value() - lastImageCheck.value() >= imageCheckDistance
            || (stopped && !at.equals(lastImageCheck));
    if (!look) {
      return rewriteMostlyDead(live, settings).plus(compactL0(settings));
    }
    return fullPass(settings, source, live);
  }

  /**
   * A full pass: image layers where due, the rewrite of mostly dead layers, then the merge of L0
   * layers. Images first: they count the delta layers over each partition, which a merge of L0
   * layers into L1 layers makes fewer.
   */
  CompactionResult fullPass(CompactionSettings settings, ImageSource source, Map<Long, Long> live)
      throws IOException, RocksDBException {
    lastImageCheck = timeline.diskConsistentLsn();
    return createImages(settings, source)
        .plus(rewriteMostlyDead(live, settings))
        .plus(compactL0(settings));
  }

  /** Merges the L0 delta layers into L1 layers once there are {@code compactionThreshold}. */
  CompactionResult compactL0(CompactionSettings settings) throws IOException, RocksDBException {
    try (IndexSnapshot snap = index.snapshot(timeline.tenant(), timeline.id())) {
      List<LayerIndex.LayerInfo> l0 =
          snap.layers().stream()
              .filter(LayerIndex.LayerInfo::isL0Delta)
              .sorted(Comparator.comparing(LayerIndex.LayerInfo::lsnFrom))
              .toList();
      if (l0.size() < settings.compactionThreshold()) {
        return CompactionResult.NOTHING;
      }
      long started = System.nanoTime();
      CompactionResult r = merge(snap, l0, settings);
      log.info(
          "compacted {} L0 layers of {} into {} L1 layers ({} bytes freed) in {} ms",
          l0.size(),
          timeline,
          r.l1Written(),
          r.bytesRemoved(),
          (System.nanoTime() - started) / 1_000_000);
      return new CompactionResult(
          l0.size(), r.l1Written(), 0, 0, 0, r.layersRemoved(), r.bytesRemoved());
    }
  }

  /**
   * Rewrites the layers (L0, L1 or image) of which GC has left less than half alive: their live
   * versions are merged into new L1 layers and the files retired. GC deletes a file only when none
   * of its versions is needed any more, and an L0 layer covers every key, so without this a layer
   * that still holds a few pages nobody has written since would keep its whole size until the next
   * L0 merge (every {@code compactionThreshold} flushes) or for ever (an L1 or an image layer: a
   * newer image of its partition leaves out the pages already images in it, which keep it alive).
   *
   * @param liveBytes per layer, the bytes of the versions the last GC kept; layers not in it (new
   *     since) are alive
   */
  CompactionResult rewriteMostlyDead(Map<Long, Long> liveBytes, CompactionSettings settings)
      throws IOException, RocksDBException {
    if (liveBytes.isEmpty()) {
      return CompactionResult.NOTHING;
    }
    try (IndexSnapshot snap = index.snapshot(timeline.tenant(), timeline.id())) {
      List<LayerIndex.LayerInfo> dead =
          snap.layers().stream()
              .filter(l -> mostlyDead(l, liveBytes.get(l.layerId()), settings))
              .sorted(Comparator.comparing(LayerIndex.LayerInfo::lsnFrom))
              .toList();
      if (dead.isEmpty()) {
        return CompactionResult.NOTHING;
      }
      CompactionResult r = merge(snap, dead, settings);
      log.info(
          "rewrote {} mostly dead layers of {} into {} L1 layers ({} bytes freed)",
          dead.size(),
          timeline,
          r.l1Written(),
          r.bytesRemoved());
      return new CompactionResult(
          0, r.l1Written(), 0, 0, dead.size(), r.layersRemoved(), r.bytesRemoved());
    }
  }

  /**
   * Less than half of the file alive, and at least an eighth of {@code compaction_target_size} (at
   * most 1 MiB) dead: for less, a rewrite costs more I/O than it returns.
   */
  static boolean mostlyDead(LayerIndex.LayerInfo l, Long live, CompactionSettings settings) {
    long minDead = Math.min(1L << 20, settings.targetSize() / 8);
    return live != null && live * 2 < l.size() && l.size() - live >= minDead;
  }

  /**
   * Writes the live versions of {@code merged} (delta or image layers) as L1 layers cut by key
   * ranges of about {@code targetSize}, commits them in place of {@code merged}, and retires those.
   */
  private CompactionResult merge(
      IndexSnapshot snap, List<LayerIndex.LayerInfo> merged, CompactionSettings settings)
      throws IOException, RocksDBException {
    List<LayerIndex.NewLayer> written = new ArrayList<>();
    Set<Long> ids = new HashSet<>();
    merged.forEach(l -> ids.add(l.layerId()));
    Lsn from = merged.stream().map(LayerIndex.LayerInfo::lsnFrom).min(Lsn::compareTo).orElseThrow();
    Lsn to = merged.stream().map(LayerIndex.LayerInfo::lsnTo).max(Lsn::compareTo).orElseThrow();
    // Files smaller together than the target hold fewer live bytes than it: one range, known
    // without the scan that cuts ranges (one of a merge's two scans of the index; ADR 0033).
    long total = merged.stream().mapToLong(LayerIndex.LayerInfo::size).sum();
    List<KeyRange> ranges =
        total < settings.targetSize()
            ? List.of(KeyRange.ALL)
            : partitionByBytes(snap, ids, settings.targetSize());
    try {
      for (KeyRange range : ranges) {
        LayerIndex.NewLayer l1 = writeL1(snap, ids, range, from, to);
        if (l1.entries().isEmpty()) {
          abandon(List.of(l1)); // no live version (the cutting scan would have made no range)
          continue;
        }
        written.add(l1);
        if (written.size() == 1) {
          Seams.reached(Seams.Seam.L1_WRITTEN);
        }
      }
    } catch (IOException | RuntimeException e) {
      abandon(written);
      throw e;
    }
    List<Long> replaced = merged.stream().map(LayerIndex.LayerInfo::layerId).toList();
    commit(written, List.of(), replaced);
    Seams.reached(Seams.Seam.L0_REPLACED);
    long freed = layers.retire(replaced);
    return new CompactionResult(0, written.size(), 0, 0, 0, replaced.size(), freed);
  }

  /**
   * Key ranges of about {@code target} bytes of the live versions of layers {@code ids}, cut
   * between keys, together covering every key.
   */
  private static List<KeyRange> partitionByBytes(IndexSnapshot snap, Set<Long> ids, long target)
      throws IOException {
    List<Key> starts = new ArrayList<>();
    long[] bytes = {0};
    Key[] last = {null};
    snap.forEachVersion(
        e -> {
          if (!ids.contains(e.ref().layerId())) {
            return;
          }
          if (starts.isEmpty() || (bytes[0] >= target && !e.key().equals(last[0]))) {
            starts.add(starts.isEmpty() ? Key.MIN : e.key());
            bytes[0] = 0;
          }
          bytes[0] += e.ref().length();
          last[0] = e.key();
        });
    return ranges(starts);
  }

  private static List<KeyRange> ranges(List<Key> starts) {
    List<KeyRange> out = new ArrayList<>(starts.size());
    for (int i = 0; i < starts.size(); i++) {
      out.add(new KeyRange(starts.get(i), i + 1 < starts.size() ? starts.get(i + 1) : Key.MAX));
    }
    return out;
  }

  /** Writes the live versions of layers {@code ids} in {@code range} as one L1 layer file. */
  private LayerIndex.NewLayer writeL1(
      IndexSnapshot snap, Set<Long> ids, KeyRange range, Lsn from, Lsn to)
      throws IOException, RocksDBException {
    long id = index.allocateLayerId();
    LayerFile.Header h =
        new LayerFile.Header(
            LayerFile.Kind.DELTA, timeline.tenant(), timeline.id(), range, from, to, id, 1);
    return layers.write(
        h,
        disk,
        w ->
            snap.forEachVersion(
                range,
                e -> {
                  if (ids.contains(e.ref().layerId())) {
                    w.addBlob(
                        e.key(),
                        e.lsn(),
                        layers
                            .reader(e.ref().layerId())
                            .readBlob(e.ref().offset(), e.ref().length()),
                        e.ref().flags());
                  }
                }));
  }

  /**
   * Materializes, at the disk-consistent LSN, each key partition (about {@code targetSize} of
   * pages) whose versions since its last image lie in {@code imageCreationThreshold} or more delta
   * layers: that many layers is what a read of the partition's pages may have to visit.
   */
  CompactionResult createImages(CompactionSettings settings, ImageSource source)
      throws IOException, RocksDBException {
    Lsn at = timeline.diskConsistentLsn();
    Map<Long, LayerFile.Header> headers = new HashMap<>();
    layers.headers().forEach(h -> headers.put(h.layerId(), h));
    int written = 0;
    long pages = 0;
    CompactionResult[] merged = {CompactionResult.NOTHING};
    try (IndexSnapshot snap = index.snapshot(timeline.tenant(), timeline.id())) {
      for (DuePartition due : duePartitions(snap, headers, at, settings)) {
        List<Key> keys = new ArrayList<>();
        snap.forEachVersion(
            due.range(),
            e -> {
              if (!e.lsn().isAfter(at) && (keys.isEmpty() || !keys.getLast().equals(e.key()))) {
                keys.add(e.key());
              }
            });
        long[] n = {0};
        long started = System.nanoTime();
        LayerIndex.NewLayer image = writeImage(due.range(), at, keys, source, settings, n, merged);
        Seams.reached(Seams.Seam.IMAGE_WRITTEN);
        commit(List.of(image), List.of(), List.of());
        Seams.reached(Seams.Seam.IMAGE_COMMITTED);
        written++;
        pages += n[0];
        log.info(
            "created image layer {} of {} at {}: {} pages of {} keys ({} delta layers) in {} ms",
            image.info().fileName(),
            timeline,
            at,
            n[0],
            keys.size(),
            due.deltas(),
            (System.nanoTime() - started) / 1_000_000);
      }
    }
    return new CompactionResult(0, 0, written, pages, 0, 0, 0).plus(merged[0]);
  }

  /** A key partition due for an image, and the delta layers that make it due. */
  private record DuePartition(KeyRange range, int deltas) {}

  /**
   * The key partitions ({@code keysPerImageLayer} keys each, together covering every key) whose
   * versions at or below {@code at} since their last image lie in {@code imageCreationThreshold} or
   * more delta layers, in one scan of the index: per partition, the newest version's LSN in each
   * layer, compared with the partition's last image once its end is known.
   */
  private static List<DuePartition> duePartitions(
      IndexSnapshot snap, Map<Long, LayerFile.Header> headers, Lsn at, CompactionSettings settings)
      throws IOException {
    List<LayerFile.Header> images =
        headers.values().stream().filter(h -> h.kind() == LayerFile.Kind.IMAGE).toList();
    int keysPer = settings.keysPerImageLayer();
    List<DuePartition> due = new ArrayList<>();
    // the partition being scanned: its first key, and the newest version at or below `at` that
    // each layer holds in it
    Map<Long, Lsn> newest = new HashMap<>();
    Key[] start = {null};
    Key[] previous = {null};
    long[] keys = {0};
    Consumer<Key> close =
        end -> {
          KeyRange range = new KeyRange(start[0], end);
          Lsn lastImage = lastImage(images, range);
          int deltas = 0;
          for (Map.Entry<Long, Lsn> e : newest.entrySet()) {
            LayerFile.Header h = headers.get(e.getKey());
            if (h != null && h.kind() == LayerFile.Kind.DELTA && e.getValue().isAfter(lastImage)) {
              deltas++;
            }
          }
          if (lastImage.isBefore(at) && deltas >= settings.imageCreationThreshold()) {
            due.add(new DuePartition(range, deltas));
          }
          newest.clear();
        };
    snap.forEachVersion(
        e -> {
          if (!e.key().equals(previous[0])) {
            if (keys[0] % keysPer == 0) {
              if (start[0] != null) {
                close.accept(e.key());
              }
              start[0] = start[0] == null ? Key.MIN : e.key();
            }
            keys[0]++;
            previous[0] = e.key();
          }
          if (!e.lsn().isAfter(at)) {
            newest.merge(e.ref().layerId(), e.lsn(), Lsn::max);
          }
        });
    if (start[0] != null) {
      close.accept(Key.MAX);
    }
    return due;
  }

  /** The LSN of the newest image layer over {@code range}, INVALID if none. */
  static Lsn lastImage(java.util.Collection<LayerFile.Header> headers, KeyRange range) {
    Lsn last = Lsn.INVALID;
    for (LayerFile.Header h : headers) {
      if (h.kind() == LayerFile.Kind.IMAGE && h.keys().overlaps(range)) {
        last = Lsn.max(last, h.lsnTo());
      }
    }
    return last;
  }

  private LayerIndex.NewLayer writeImage(
      KeyRange range,
      Lsn at,
      List<Key> keys,
      ImageSource source,
      CompactionSettings settings,
      long[] pages,
      CompactionResult[] merged)
      throws IOException, RocksDBException {
    long id = index.allocateLayerId();
    LayerFile.Header h =
        new LayerFile.Header(
            LayerFile.Kind.IMAGE,
            timeline.tenant(),
            timeline.id(),
            range,
            Lsn.of(at.value() - 1),
            at,
            id,
            1);
    // Pages are materialized a few at once (WAL redo is the cost) and written in key order; at
    // most twice the parallelism of them are in memory.
    int parallel = settings.imageParallelism();
    Iterable<Materialized> images =
        Flux.fromIterable(keys)
            .flatMapSequential(
                k ->
                    Mono.fromCallable(() -> materialize(k, at, source))
                        .subscribeOn(Schedulers.boundedElastic()),
                parallel,
                1)
            .toIterable(parallel * 2);
    return layers.write(
        h,
        disk,
        w -> {
          long seen = 0;
          for (Materialized m : images) {
            if (m.bytes() != null) {
              w.add(m.key(), at, new Value.Image(m.bytes()));
              pages[0]++;
            }
            if (++seen % MERGE_CHECK_PAGES == 0
                && layers.stats().l0() >= settings.compactionThreshold()) {
              merged[0] = merged[0].plus(compactL0Meanwhile(settings));
            }
          }
        });
  }

  /** Pages of an image layer between two looks at whether L0 layers are due for a merge. */
  private static final int MERGE_CHECK_PAGES = 32;

  /**
   * The merge of L0 layers in the middle of writing an image layer (ADR 0033). A partition's pages
   * take seconds of WAL redo per thousand, and a pass holds the timeline's maintenance lock, so
   * without this no merge ran meanwhile, L0 layers reached the compaction gate and ingest waited
   * for the images. The merge is independent of the image being written: the image is not
   * registered yet, its pages are read through the index like any reader's, and the merge moves
   * versions between files without changing them. GC still never runs beside it (same thread, same
   * lock).
   */
  private CompactionResult compactL0Meanwhile(CompactionSettings settings) throws IOException {
    try {
      return compactL0(settings);
    } catch (RocksDBException e) {
      throw new IOException("cannot merge L0 layers while writing an image layer", e);
    }
  }

  /** A key's image, or null bytes when it needs none. */
  private record Materialized(Key key, byte[] bytes) {}

  /**
   * Skips keys that gain nothing from an image: deleted at {@code at} (a tombstone is a base
   * already), or whose newest version is already an image.
   */
  private Materialized materialize(Key key, Lsn at, ImageSource source) {
    List<Version> history = timeline.history(key, at);
    if (history.isEmpty()
        || history.getFirst().value().isTombstone()
        || history.getFirst().value() instanceof Value.Image) {
      return new Materialized(key, null);
    }
    return new Materialized(key, source.image(timeline, key, at));
  }

  /** Deletes layers written by a step that failed before its commit (nothing names them). */
  private void abandon(List<LayerIndex.NewLayer> written) throws IOException {
    for (LayerIndex.NewLayer l : written) {
      layers.closeReader(l.info().layerId());
      Files.deleteIfExists(timeline.dir().resolve(l.info().fileName()));
    }
  }

  private void commit(
      List<LayerIndex.NewLayer> added, List<LayerIndex.VersionRef> removed, List<Long> retired)
      throws IOException, RocksDBException {
    try {
      index.commit(
          timeline.tenant(), timeline.id(), new LayerIndex.Changes(added, removed, retired));
    } catch (RocksDBException | RuntimeException e) {
      abandon(added);
      throw e;
    }
  }
}
