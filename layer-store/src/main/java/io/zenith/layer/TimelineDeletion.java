package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The on-disk steps of deleting a timeline, and their recovery. The deletion mark is the rename of
 * {@code timelines/<id>} to {@code timelines/<id>.deleting} (then an fsync of {@code timelines/}):
 * one atomic, durable step after which the timeline is never loaded again. Then its RocksDB entries
 * go (one synced batch), then its files, then the directory; first of all, once remote storage was
 * used, a durable list that deletes its remote prefix ({@link RemoteDeletionQueue}, after its
 * upload queue stopped). A crash after the mark leaves a {@code *.deleting} directory, which {@link
 * #finishPending} completes at the next start, before anything is loaded; a crash before it leaves
 * the timeline whole. Every step may be repeated.
 *
 * <p>Stateless; the caller serializes deletions of one timeline (the store's lock).
 */
final class TimelineDeletion {
  private static final Logger log = LoggerFactory.getLogger(TimelineDeletion.class);

  /** Suffix of a timeline directory whose deletion has begun. */
  static final String SUFFIX = ".deleting";

  /** Where a deletion is; tests stop a deletion after a step to simulate a crash there. */
  enum Step {
    /** The timeline is closed: readers fail, nothing on disk changed yet. */
    CLOSED,
    /** The directory is renamed: the deletion will finish, whatever happens. */
    MARKED,
    /** Its index entries are gone. */
    INDEX_DELETED,
    /** Some of its files are gone (after the first file). */
    FILE_DELETED
  }

  private TimelineDeletion() {}

  /** {@code timelines/<id>.deleting} beside {@code timelineDir}. */
  static Path markedDir(Path timelineDir) {
    return timelineDir.resolveSibling(timelineDir.getFileName() + SUFFIX);
  }

  /** The deletion mark: renames the directory and makes the rename durable. */
  static Path mark(Path timelineDir) throws IOException {
    Path marked = markedDir(timelineDir);
    Files.move(timelineDir, marked, StandardCopyOption.ATOMIC_MOVE);
    DurableFiles.fsyncDirectory(timelineDir.getParent());
    return marked;
  }

  /**
   * The whole deletion (the store's lock held): checks (unknown, children), {@code stopWriter}, the
   * close, the mark, then {@link #finish}; a timeline whose mark exists without it is finished.
   */
  static void delete(
      LayerIndex index,
      RemoteDeletionQueue deletions,
      Map<TimelineId, Timeline> m,
      Path timelinesDir,
      TenantId tenant,
      TimelineId id,
      Runnable stopWriter,
      Consumer<Step> after) {
    Path dir = timelinesDir.resolve(id.toString());
    Path marked = markedDir(dir);
    Timeline t = m.get(id);
    try {
      if (t == null) {
        if (!Files.exists(marked)) {
          throw new LayerStoreException(
              LayerStoreException.Kind.UNKNOWN_TIMELINE,
              "timeline " + id + " not found in tenant " + tenant);
        }
        // An earlier deletion stopped after its mark (an I/O error): finish it.
        finish(index, deletions, tenant, id, marked, after);
        return;
      }
      List<TimelineId> children =
          m.values().stream()
              .filter(c -> c.metadata().ancestorId().filter(id::equals).isPresent())
              .map(Timeline::id)
              .sorted()
              .toList();
      if (!children.isEmpty()) {
        throw new LayerStoreException(
            LayerStoreException.Kind.HAS_CHILDREN,
            "timeline "
                + id
                + " of tenant "
                + tenant
                + " has child timelines "
                + children.stream().map(Object::toString).collect(Collectors.joining(", "))
                + ": delete them first");
      }
      stopWriter.run();
      t.delete();
      after.accept(Step.CLOSED);
      mark(dir);
      m.remove(id);
      after.accept(Step.MARKED);
      finish(index, deletions, tenant, id, marked, after);
    } catch (IOException | RocksDBException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot delete timeline "
              + id
              + " of tenant "
              + tenant
              + ": "
              + e.getMessage()
              + (Files.exists(marked) ? " (deleting it again, or a restart, finishes it)" : ""),
          e);
    }
  }

  /**
   * The steps after the mark: the remote prefix's deletion list, index entries, files, directory.
   * Repeatable: the directory goes last, so a crash before it queues the prefix again (a second
   * list deletes nothing more).
   */
  static void finish(
      LayerIndex index,
      RemoteDeletionQueue deletions,
      TenantId tenant,
      TimelineId id,
      Path marked,
      Consumer<Step> after)
      throws IOException, RocksDBException {
    if (deletions.enabled()) {
      deletions.enqueue(
          // marked is tenants/<t>/timelines/<tl>.deleting
          TenantGenerations.readOrDefault(marked.getParent().getParent()),
          List.of(new DeletionList.PrefixEntry(tenant, Optional.of(id))));
    }
    index.deleteTimeline(tenant, id);
    after.accept(Step.INDEX_DELETED);
    long bytes = 0;
    int files = 0;
    if (Files.isDirectory(marked)) {
      List<Path> all;
      try (Stream<Path> s = Files.walk(marked)) {
        // Deepest first, so each directory is empty when its turn comes; the top one last.
        all = s.sorted(Comparator.comparing(Path::getNameCount).reversed()).toList();
      }
      for (Path p : all) {
        if (p.equals(marked)) {
          continue;
        }
        if (Files.isRegularFile(p)) {
          bytes += Files.size(p);
          files++;
        }
        Files.delete(p);
        after.accept(Step.FILE_DELETED);
      }
      Files.delete(marked);
      DurableFiles.fsyncDirectory(marked.getParent());
    }
    log.info("deleted timeline {}/{}: {} files, {} bytes returned", tenant, id, files, bytes);
  }

  /**
   * Finishes every deletion that a crash interrupted in {@code timelinesDir} (one tenant's): call
   * before loading its timelines.
   */
  static void finishPending(
      LayerIndex index, RemoteDeletionQueue deletions, TenantId tenant, Path timelinesDir)
      throws IOException, RocksDBException {
    if (!Files.isDirectory(timelinesDir)) {
      return;
    }
    List<Path> pending;
    try (Stream<Path> s = Files.list(timelinesDir)) {
      pending = s.filter(p -> p.getFileName().toString().endsWith(SUFFIX)).sorted().toList();
    }
    for (Path marked : pending) {
      String name = marked.getFileName().toString();
      TimelineId id;
      try {
        id = TimelineId.parse(name.substring(0, name.length() - SUFFIX.length()));
      } catch (IllegalArgumentException e) {
        log.warn("ignoring {}: not a timeline directory", marked);
        continue;
      }
      log.info("finishing the deletion of timeline {}/{} that a restart interrupted", tenant, id);
      finish(index, deletions, tenant, id, marked, step -> {});
    }
  }
}
