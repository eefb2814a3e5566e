package io.zenith.page.fuse;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;
import org.cryptomator.jfuse.api.Fuse;
import org.cryptomator.jfuse.api.FuseBuilder;
import org.cryptomator.jfuse.api.FuseMountFailedException;

/**
 * A lazy relation filesystem mounted over {@code base/} or {@code global/} of a compute's data
 * directory (issue 13, ADR 0018): files the compute has not written read through to the
 * pageserver's pagestream at the compute's start LSN; what it writes, creates, truncates, unlinks
 * and renames lives in an overlay directory that is deleted when the filesystem is unmounted. Mount
 * options: {@code allow_other} and {@code default_permissions} (a root-made mount is usable by the
 * compute's user, and the kernel checks the fixed modes), the kernel's page cache kept across opens
 * ({@code kernel_cache}) with long attribute and entry timeouts (nothing but the mount changes the
 * files), the writeback cache, 1 MiB reads and writes, a 1 MiB readahead window (raised by {@link
 * MountReadahead} where this process may), and {@link LazyFsConfig#threads()} worker threads.
 *
 * <p>Thread-safe; {@link #close} unmounts (lazily, so a busy mount goes away too).
 */
public final class LazyMount implements AutoCloseable {
  /** Which directory of a compute's data directory a mount serves. */
  public enum Root {
    /** {@code base/}: databases of the default tablespace. */
    BASE,
    /** {@code global/}: the shared catalogs. */
    GLOBAL
  }

  /** The mount's type is {@code fuse.zenith}: how a stale mount of ours is told from others. */
  static final String SUBTYPE = "zenith";

  private final Fuse fuse;
  private final PageSource source;
  private final LazyTree tree;
  private final Path mountPoint;

  private LazyMount(Fuse fuse, PageSource source, LazyTree tree, Path mountPoint) {
    this.fuse = fuse;
    this.source = source;
    this.tree = tree;
    this.mountPoint = mountPoint;
  }

  /**
   * Mounts the filesystem.
   *
   * @param seed the directory's files from a slim basebackup (copied into the overlay; relation
   *     files come from the pageserver), or null for none
   * @param overlay a directory for the overlay: created if missing, must be empty; only the owner
   *     of this process can read it
   * @param mountPoint an existing directory
   * @throws IOException if libfuse is not installed, the overlay is not empty, or the mount fails
   */
  public static LazyMount mount(
      LazyFsConfig config, Root root, Path seed, Path overlay, Path mountPoint) throws IOException {
    return mount(new RemotePages(config), config, root, seed, overlay, mountPoint);
  }

  /** Mounts over any page source (closed with the mount, or here if the mount fails). */
  static LazyMount mount(
      PageSource source, LazyFsConfig config, Root root, Path seed, Path overlay, Path mountPoint)
      throws IOException {
    FuseBuilder builder;
    try {
      Files.createDirectories(overlay);
      try (Stream<Path> s = Files.list(overlay)) {
        if (s.findAny().isPresent()) {
          throw new IOException("the overlay directory " + overlay + " is not empty");
        }
      }
      if (!Files.isDirectory(mountPoint)) {
        throw new IOException("the mount point " + mountPoint + " is not a directory");
      }
      unmountStale(mountPoint);
      builder = Fuse.builder();
      builder.setLibraryPath(FuseLibrary.find().toString());
    } catch (IOException | RuntimeException e) {
      source.close();
      throw e;
    }
    LazyTree tree = null;
    try {
      tree = new LazyTree(source, root, seed, overlay);
      Fuse fuse = builder.build(new LazyFuseOperations(tree, builder.errno(), config, overlay));
      try {
        fuse.mount(
            "zenith",
            mountPoint,
            "-oallow_other,default_permissions,fsname=zenith,subtype=" + SUBTYPE,
            "-okernel_cache,attr_timeout=86400,entry_timeout=86400",
            "-omax_read=" + LazyFuseOperations.MAX_IO,
            "-omax_threads=" + config.threads());
      } catch (FuseMountFailedException | IllegalArgumentException e) {
        closeQuietly(fuse);
        // libfuse may have mounted before its loop failed: jfuse leaves that mount behind
        unmountStale(mountPoint);
        throw new IOException("mounting " + mountPoint + " failed: " + e.getMessage(), e);
      }
      MountReadahead.raise(mountPoint, LazyFuseOperations.MAX_IO / 1024);
      return new LazyMount(fuse, source, tree, mountPoint);
    } catch (IOException | RuntimeException e) {
      source.close();
      if (tree != null) {
        tree.discardAll();
      }
      throw e;
    }
  }

  /** The namespace, for tests that look past the kernel's caches. */
  LazyTree tree() {
    return tree;
  }

  public Path mountPoint() {
    return mountPoint;
  }

  /** Unmounts, closes the pagestream connections and deletes the overlay's files. */
  @Override
  public void close() throws IOException {
    try {
      fuse.close();
    } catch (TimeoutException e) {
      throw new IOException("unmounting " + mountPoint + " timed out", e);
    } finally {
      source.close();
      tree.discardAll();
    }
  }

  /**
   * A mount point as {@code /proc/self/mountinfo} writes it: absolute, normalized, with backslash
   * and space octal-escaped.
   */
  static String mountinfoForm(Path mountPoint) {
    return mountPoint
        .toAbsolutePath()
        .normalize()
        .toString()
        .replace("\\", "\\134")
        .replace(" ", "\\040");
  }

  /**
   * Detaches a mount of ours left at {@code mountPoint} by a process that died or failed to start
   * (the kernel keeps it, answering "Transport endpoint is not connected"), with {@code fusermount3
   * -u -z}. Does nothing if nothing of ours is mounted there.
   *
   * @return whether a mount was detached
   * @throws IOException if {@code fusermount3} fails or does not end within 10 s
   */
  public static boolean unmountStale(Path mountPoint) throws IOException {
    String escaped = mountinfoForm(mountPoint);
    boolean ours =
        Files.readAllLines(Path.of("/proc/self/mountinfo")).stream()
            .anyMatch(
                l -> l.contains(" " + escaped + " ") && l.contains(" - fuse." + SUBTYPE + " "));
    if (!ours) {
      return false;
    }
    Process p =
        new ProcessBuilder("fusermount3", "-u", "-z", mountPoint.toString())
            .redirectErrorStream(true)
            .start();
    try {
      if (!p.waitFor(10, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException("fusermount3 -u -z " + mountPoint + " did not end within 10 s");
      }
      if (p.exitValue() != 0) {
        throw new IOException(
            "fusermount3 -u -z "
                + mountPoint
                + " failed: "
                + new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip());
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      p.destroyForcibly();
      throw new IOException("interrupted while detaching " + mountPoint, e);
    }
    return true;
  }

  private static void closeQuietly(Fuse fuse) {
    try {
      fuse.close();
    } catch (TimeoutException | RuntimeException e) {
      // the mount did not happen; nothing else to undo
    }
  }
}
