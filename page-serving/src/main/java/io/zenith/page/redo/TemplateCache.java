package io.zenith.page.redo;

import io.zenith.pg.PgDistribution;
import io.zenith.wal.DurableFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Scratch templates kept between scratch clusters, so that a pageserver start (and every test that
 * starts one) copies a template instead of running initdb, a single-user backend and pg_resetwal:
 * about 1.5 s of CPU, and many seconds on a loaded machine.
 *
 * <p>Layout: {@code <parent>/zenith-walredo-templates/<key>/template} plus a {@code ready} file
 * naming the key, published by an atomic rename of a complete, fsynced directory, so a reader sees
 * a whole entry or none. The key is a SHA-256 over everything the template's bytes depend on: the
 * PostgreSQL binaries (path, size and modification time of {@code postgres} and {@code initdb}, so
 * a package upgrade misses the cache), its OS user, the settings and the SQL the template is built
 * with. The template names its module without a path ({@code dynamic_library_path} points each
 * backend at its own cluster's copy), so an entry is the same for every scratch root.
 *
 * <p>The cache is an optimisation only: any failure to read or publish is logged and the caller
 * builds the template itself. The directory is used only when it belongs to this process's user and
 * nobody else may write to it (another local user must not be able to plant a template). Entries
 * not used for {@link #UNUSED_FOR} are deleted when a new one is published. Thread-safe: concurrent
 * publishers of one key race on the rename, and the loser discards its copy.
 */
final class TemplateCache {
  private static final Logger log = LoggerFactory.getLogger(TemplateCache.class);

  static final String DIR = "zenith-walredo-templates";
  static final String READY = "ready";
  static final Duration UNUSED_FOR = Duration.ofDays(7);

  private final Path dir;

  private TemplateCache(Path dir) {
    this.dir = dir;
  }

  /**
   * The cache under {@code parent}, created (0700) if absent; empty when it cannot be used: it is
   * not a directory, or does not belong to the owner of {@code ours} (a directory this process just
   * created), or others may write to it.
   */
  static Optional<TemplateCache> in(Path parent, Path ours) {
    Path dir = parent.resolve(DIR);
    try {
      if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
        try {
          Files.createDirectory(
              dir,
              PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } catch (FileAlreadyExistsException raced) {
          // another cluster created it at the same time: checked below like any existing one
        }
      }
      if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
        log.warn("{} is not a directory; building the WAL-redo template without a cache", dir);
        return Optional.empty();
      }
      Set<PosixFilePermission> modes =
          Files.getPosixFilePermissions(dir, LinkOption.NOFOLLOW_LINKS);
      if (!Files.getOwner(dir, LinkOption.NOFOLLOW_LINKS).equals(Files.getOwner(ours))
          || modes.contains(PosixFilePermission.GROUP_WRITE)
          || modes.contains(PosixFilePermission.OTHERS_WRITE)) {
        log.warn(
            "{} belongs to another user or is writable by others; building the WAL-redo template"
                + " without a cache",
            dir);
        return Optional.empty();
      }
      return Optional.of(new TemplateCache(dir));
    } catch (IOException e) {
      log.warn(
          "cannot use {} ({}); building the WAL-redo template without a cache", dir, e.toString());
      return Optional.empty();
    }
  }

  /** The key of a template built by {@code pg} from {@code recipe} (settings, SQL, flags). */
  static String key(PgDistribution pg, String recipe) {
    try {
      MessageDigest sha = MessageDigest.getInstance("SHA-256");
      StringBuilder in = new StringBuilder(recipe).append('\n').append(pg.osUser().orElse(""));
      for (String program : List.of("postgres", "initdb")) {
        Path p = pg.bin(program).toAbsolutePath();
        in.append('\n')
            .append(p)
            .append(' ')
            .append(Files.size(p))
            .append(' ')
            .append(Files.getLastModifiedTime(p).toMillis());
      }
      return HexFormat.of().formatHex(sha.digest(in.toString().getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is part of every JDK", e);
    } catch (IOException e) {
      // no key, no cache hit: a made-up key that can never have been published
      return "unreadable-" + UUID.randomUUID();
    }
  }

  /**
   * Copies the template published under {@code key} to {@code target} (which must not exist); false
   * when there is none or the copy failed (then nothing is left at {@code target}).
   */
  boolean copyTo(String key, Path target) {
    Path entry = dir.resolve(key);
    Path ready = entry.resolve(READY);
    try {
      if (!Files.exists(entry, LinkOption.NOFOLLOW_LINKS)) {
        return false;
      }
      if (!Files.isRegularFile(ready) || !Files.readString(ready).strip().equals(key)) {
        // entries appear whole (a rename), so this one was damaged since: make room for a new one
        log.warn("the cached WAL-redo template {} is damaged; deleting it", entry);
        deleteQuietly(entry);
        return false;
      }
      ScratchCluster.copyTree(entry.resolve("template"), target);
      Files.setLastModifiedTime(ready, FileTime.from(Instant.now()));
      return true;
    } catch (IOException | RuntimeException e) {
      log.warn(
          "cannot copy the cached WAL-redo template {} ({}); building it", entry, e.toString());
      deleteQuietly(target);
      return false;
    }
  }

  /**
   * Publishes a copy of {@code template} under {@code key}, unless another cluster did first;
   * deletes entries unused for {@link #UNUSED_FOR}.
   */
  void publish(String key, Path template) {
    Path staging = dir.resolve(".staging-" + UUID.randomUUID());
    try {
      Files.createDirectory(staging);
      ScratchCluster.copyTree(template, staging.resolve("template"));
      Files.writeString(staging.resolve(READY), key + "\n");
      DurableFiles.syncTree(staging);
      try {
        Files.move(staging, dir.resolve(key), StandardCopyOption.ATOMIC_MOVE);
        DurableFiles.fsyncDirectory(dir);
      } catch (FileAlreadyExistsException | DirectoryNotEmptyException lost) {
        deleteQuietly(staging); // another cluster published the same template first
      }
      prune(key);
    } catch (IOException | RuntimeException e) {
      log.warn("cannot publish the WAL-redo template to {} ({})", dir, e.toString());
      deleteQuietly(staging);
    }
  }

  private void prune(String keep) throws IOException {
    Instant before = Instant.now().minus(UNUSED_FOR);
    try (Stream<Path> s = Files.list(dir)) {
      for (Path entry : s.toList()) {
        if (entry.getFileName().toString().equals(keep)) {
          continue;
        }
        Path ready = entry.resolve(READY);
        Path stamp = Files.exists(ready) ? ready : entry;
        if (Files.getLastModifiedTime(stamp, LinkOption.NOFOLLOW_LINKS)
            .toInstant()
            .isBefore(before)) {
          log.info("deleting the WAL-redo template {}, unused since {}", entry, before);
          deleteQuietly(entry);
        }
      }
    }
  }

  private static void deleteQuietly(Path p) {
    try {
      ScratchCluster.deleteTree(p);
    } catch (RuntimeException e) {
      log.warn("cannot delete {} ({})", p, e.toString());
    }
  }
}
