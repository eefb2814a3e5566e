package io.zenith.wal;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * The one way Zenith makes a file durable: write a temporary file, fsync it, rename it over the
 * target, fsync the directory. After a crash the target holds either the old or the new content,
 * never a mix; a leftover {@code *.tmp} is garbage to delete. Every fsync goes through {@link
 * Fsync}: a failed one is fatal ({@link FsyncFailedException}), never retried.
 *
 * <p>Thread-safe (stateless); callers serialize writers of the same target.
 */
public final class DurableFiles {
  private DurableFiles() {}

  /** Suffix of files being written; removed on startup wherever found. */
  public static final String TEMP_SUFFIX = ".tmp";

  /** Writes the content of a channel-filling callback durably to {@code target}. */
  @FunctionalInterface
  public interface Writer {
    void write(FileChannel channel) throws IOException;
  }

  /** Durable on return: content, name and directory entry are fsynced. */
  public static void write(Path target, Writer writer) throws IOException {
    write(target, writer, false);
  }

  private static void write(Path target, Writer writer, boolean ownerOnly) throws IOException {
    Path tmp = target.resolveSibling(target.getFileName() + TEMP_SUFFIX);
    if (ownerOnly) {
      // a leftover temp file keeps its modes: only a new one is created 0600
      Files.deleteIfExists(tmp);
    }
    try (FileChannel ch =
        ownerOnly
            ? FileChannel.open(
                tmp,
                java.util.Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE),
                java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                    java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")))
            : FileChannel.open(
                tmp,
                StandardOpenOption.CREATE,
                StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE)) {
      writer.write(ch);
      Fsync.force(ch, tmp);
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(tmp);
      throw e;
    }
    Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    fsyncDirectory(target.toAbsolutePath().getParent());
  }

  /** Durable on return. */
  public static void write(Path target, byte[] content) throws IOException {
    write(target, bytes(content), false);
  }

  private static Writer bytes(byte[] content) {
    return ch -> {
      java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(content);
      while (b.hasRemaining()) {
        ch.write(b);
      }
    };
  }

  /**
   * Durable on return, as {@link #write(Path, byte[])}, and {@code target} only ever readable by
   * this user (0600 from its creation as a temp file: a key is never readable by others, not even
   * for a moment).
   */
  public static void writeOwnerOnly(Path target, byte[] content) throws IOException {
    write(target, bytes(content), true);
  }

  /** Makes a directory's entries (creations, renames, deletions) durable ({@link Fsync}). */
  public static void fsyncDirectory(Path dir) throws IOException {
    Fsync.directory(dir);
  }

  /** Creates a directory and its parents durably (each new entry's parent is fsynced). */
  public static void createDirectories(Path dir) throws IOException {
    Path abs = dir.toAbsolutePath();
    if (Files.isDirectory(abs)) {
      return;
    }
    createDirectories(abs.getParent());
    Files.createDirectory(abs);
    fsyncDirectory(abs.getParent());
  }

  /**
   * Makes a tree written without fsyncs durable (an export): every regular file, then every
   * directory from the deepest up, then {@code root}'s entry in its parent.
   */
  public static void syncTree(Path root) throws IOException {
    Path abs = root.toAbsolutePath().normalize();
    List<Path> all;
    try (Stream<Path> s = Files.walk(abs)) {
      all = s.toList();
    }
    for (Path p : all) {
      if (Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
          Fsync.force(ch, p);
        }
      }
    }
    List<Path> dirs =
        all.stream()
            .filter(p -> Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS))
            .sorted(Comparator.comparingInt(Path::getNameCount).reversed())
            .toList();
    for (Path d : dirs) {
      Fsync.directory(d);
    }
    if (abs.getParent() != null) {
      Fsync.directory(abs.getParent());
    }
  }
}
