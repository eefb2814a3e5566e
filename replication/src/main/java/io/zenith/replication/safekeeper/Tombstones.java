package io.zenith.replication.safekeeper;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The timelines deleted on this safekeeper: a durable tombstone {@code <data>/<tenant>/<timeline>
 * .deleted} each, written (temporary file, fsync, rename, fsync of the directory) before anything
 * of the timeline is removed, and kept for good, so that neither peer gossip nor the control plane
 * nor a late connection brings a deleted timeline back. A timeline directory found beside its
 * tombstone at start is what a crash left of a deletion: {@link #load} finishes it.
 *
 * <p>Thread-safe (the set is concurrent; {@link Safekeeper} serializes writes under its lock).
 */
final class Tombstones {
  private static final Logger log = LoggerFactory.getLogger(Tombstones.class);
  static final String SUFFIX = ".deleted";

  private final Path dataDir;
  private final Set<String> deleted = ConcurrentHashMap.newKeySet();

  private Tombstones(Path dataDir) {
    this.dataDir = dataDir;
  }

  /** Reads the tombstones under {@code dataDir} and finishes deletions a crash interrupted. */
  static Tombstones load(Path dataDir) throws IOException {
    Tombstones t = new Tombstones(dataDir);
    for (Path tenantDir : list(dataDir)) {
      if (!Files.isDirectory(tenantDir) || !isId(tenantDir.getFileName().toString())) {
        continue;
      }
      for (Path f : list(tenantDir)) {
        String name = f.getFileName().toString();
        if (!name.endsWith(SUFFIX) || !isId(name.substring(0, name.length() - SUFFIX.length()))) {
          continue;
        }
        String id = name.substring(0, name.length() - SUFFIX.length());
        t.deleted.add(tenantDir.getFileName() + "/" + id);
        Path dir = tenantDir.resolve(id);
        if (Files.exists(dir)) {
          log.info("finishing the deletion of timeline {}/{}", tenantDir.getFileName(), id);
          deleteTree(dir);
        }
      }
    }
    return t;
  }

  private static boolean isId(String s) {
    return s.matches("[0-9a-f]{32}");
  }

  private static List<Path> list(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.sorted().toList();
    }
  }

  boolean isDeleted(TenantId tenant, TimelineId timeline) {
    return deleted.contains(tenant + "/" + timeline);
  }

  /** Writes the tombstone durably (before anything of the timeline goes). */
  void add(TenantId tenant, TimelineId timeline) throws IOException {
    Path tenantDir = dataDir.resolve(tenant.toString());
    DurableFiles.createDirectories(tenantDir);
    DurableFiles.write(
        tenantDir.resolve(timeline + SUFFIX),
        ("deleted at " + Instant.now() + "\n").getBytes(StandardCharsets.UTF_8));
    deleted.add(tenant + "/" + timeline);
  }

  /**
   * Deletes a timeline directory, deepest first, then fsyncs its parent. A file written or removed
   * in it meanwhile (a last control-file write or segment removal racing the close) makes the walk
   * fail: it is walked again.
   */
  static void deleteTree(Path dir) throws IOException {
    for (int attempt = 1; Files.exists(dir); attempt++) {
      try (Stream<Path> s = Files.walk(dir)) {
        for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
        DurableFiles.fsyncDirectory(dir.getParent());
      } catch (NoSuchFileException | DirectoryNotEmptyException e) {
        if (attempt == 3) {
          throw e;
        }
      }
    }
  }
}
