package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.rocksdb.RocksDBException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The on-disk steps of deleting a whole tenant, and their recovery; the tenant-sized twin of {@link
 * TimelineDeletion}. The deletion mark is the rename of {@code tenants/<id>} to {@code
 * tenants/<id>.deleting} (then an fsync of {@code tenants/}): one atomic, durable step after which
 * none of the tenant's timelines is loaded again. Then the RocksDB entries of every timeline
 * directory under it go (one synced batch each), then its files, then the directory. A crash after
 * the mark leaves a {@code *.deleting} directory, which {@link #finishPending} completes at the
 * next start before anything is loaded; a crash before it leaves the tenant whole. Every step may
 * be repeated.
 *
 * <p>Stateless; the caller serializes deletions (the store's lock).
 */
final class TenantDeletion {
  private static final Logger log = LoggerFactory.getLogger(TenantDeletion.class);

  /** Suffix of a tenant directory whose deletion has begun. */
  static final String SUFFIX = ".deleting";

  /** The mark of a detach (ADR 0027): the same steps, and the remote objects stay. */
  static final String DETACH_SUFFIX = ".detaching";

  private TenantDeletion() {}

  /** {@code tenants/<id>.deleting} beside {@code tenantDir}. */
  static Path markedDir(Path tenantDir) {
    return tenantDir.resolveSibling(tenantDir.getFileName() + SUFFIX);
  }

  /**
   * The whole deletion (the store's lock held): {@code stopWriter} for each timeline (its ingest
   * must have stopped before it closes), the close of each, the mark, then {@link #finish}. A
   * tenant whose mark exists without it in {@code tenants} (an earlier deletion failed after the
   * mark) is finished.
   */
  static void delete(
      LayerIndex index,
      RemoteDeletionQueue deletions,
      Map<TenantId, Map<TimelineId, Timeline>> tenants,
      Path tenantDir,
      TenantId tenant,
      Consumer<TimelineId> stopWriter,
      Runnable afterMark,
      boolean detach) {
    Path marked =
        detach
            ? tenantDir.resolveSibling(tenantDir.getFileName() + DETACH_SUFFIX)
            : markedDir(tenantDir);
    Map<TimelineId, Timeline> timelines = tenants.get(tenant);
    try {
      if (timelines == null) {
        if (!Files.exists(marked)) {
          throw new LayerStoreException(
              LayerStoreException.Kind.UNKNOWN_TENANT, "tenant " + tenant + " not found");
        }
        finish(index, deletions, tenant, marked, detach);
        return;
      }
      for (Timeline t : List.copyOf(timelines.values())) {
        stopWriter.accept(t.id());
        t.delete();
      }
      Files.move(tenantDir, marked, StandardCopyOption.ATOMIC_MOVE);
      DurableFiles.fsyncDirectory(tenantDir.getParent());
      tenants.remove(tenant);
      afterMark.run();
      finish(index, deletions, tenant, marked, detach);
    } catch (IOException | RocksDBException e) {
      throw new LayerStoreException(
          LayerStoreException.Kind.IO,
          "cannot delete tenant "
              + tenant
              + ": "
              + e.getMessage()
              + (Files.exists(marked) ? " (deleting it again, or a restart, finishes it)" : ""),
          e);
    }
  }

  /**
   * The steps after the mark: once remote storage was used, a durable list that deletes the
   * tenant's remote prefix ({@link RemoteDeletionQueue}, after its upload queues stopped); the
   * index entries of every timeline directory (a half-deleted {@code <id>.deleting} one too), then
   * the files, deepest first, then the directory. Repeatable: the directory goes last.
   */
  static void finish(
      LayerIndex index, RemoteDeletionQueue deletions, TenantId tenant, Path marked, boolean detach)
      throws IOException, RocksDBException {
    if (deletions.enabled() && !detach) {
      deletions.enqueue(
          TenantGenerations.readOrDefault(marked),
          List.of(new DeletionList.PrefixEntry(tenant, Optional.empty())));
    }
    Path tls = marked.resolve("timelines");
    if (Files.isDirectory(tls)) {
      List<Path> dirs;
      try (Stream<Path> s = Files.list(tls)) {
        dirs = s.sorted().toList();
      }
      for (Path d : dirs) {
        String name = d.getFileName().toString();
        if (name.endsWith(TimelineDeletion.SUFFIX)) {
          name = name.substring(0, name.length() - TimelineDeletion.SUFFIX.length());
        }
        try {
          index.deleteTimeline(tenant, TimelineId.parse(name));
        } catch (IllegalArgumentException e) {
          // not a timeline's directory: it has no index entries
        }
      }
    }
    long bytes = 0;
    int files = 0;
    if (Files.isDirectory(marked)) {
      List<Path> all = new ArrayList<>();
      try (Stream<Path> s = Files.walk(marked)) {
        // Deepest first, so each directory is empty when its turn comes.
        s.sorted(Comparator.comparing(Path::getNameCount).reversed()).forEach(all::add);
      }
      for (Path p : all) {
        if (Files.isRegularFile(p)) {
          bytes += Files.size(p);
          files++;
        }
        Files.delete(p);
      }
      DurableFiles.fsyncDirectory(marked.getParent());
    }
    log.info(
        "{} tenant {}: {} files, {} bytes returned",
        detach ? "detached" : "deleted",
        tenant,
        files,
        bytes);
  }

  /**
   * Finishes every tenant deletion that a crash interrupted in {@code tenantsDir}: call before
   * loading the tenants. Returns the ids it finished.
   */
  static List<TenantId> finishPending(
      LayerIndex index, RemoteDeletionQueue deletions, Path tenantsDir)
      throws IOException, RocksDBException {
    List<Path> pending;
    try (Stream<Path> s = Files.list(tenantsDir)) {
      pending =
          s.filter(
                  p ->
                      p.getFileName().toString().endsWith(SUFFIX)
                          || p.getFileName().toString().endsWith(DETACH_SUFFIX))
              .sorted()
              .toList();
    }
    List<TenantId> done = new ArrayList<>();
    for (Path marked : pending) {
      String name = marked.getFileName().toString();
      boolean detach = name.endsWith(DETACH_SUFFIX);
      TenantId id;
      try {
        id = TenantId.parse(name.substring(0, name.lastIndexOf('.')));
      } catch (IllegalArgumentException e) {
        log.warn("ignoring {}: not a tenant directory", marked);
        continue;
      }
      log.info(
          "finishing the {} of tenant {} that a restart interrupted",
          detach ? "detach" : "deletion",
          id);
      finish(index, deletions, id, marked, detach);
      done.add(id);
    }
    return done;
  }
}
