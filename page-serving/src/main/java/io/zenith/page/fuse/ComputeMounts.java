package io.zenith.page.fuse;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The two lazy mounts of one compute (what {@code zenith compute agent} runs, ADR 0021): {@code
 * base/} and {@code global/} of its data directory, seeded from the slim basebackup that was
 * extracted there. Mounting moves those two directories of the basebackup into {@code <work>/seed/}
 * (once; a later mount reuses the seed), detaches a dead mount of a previous agent ({@link
 * LazyMount#unmountStale}), deletes a previous overlay (ADR 0018 point 4: an overlay never outlives
 * its mount), mounts both and checks that both answer a listing within a bound. {@link #close}
 * unmounts both and deletes the overlay. Thread-safe.
 */
public final class ComputeMounts implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(ComputeMounts.class);

  /** The owner of a data directory: the compute's OS user, who owns every file of the mounts. */
  public record Owner(int uid, int gid) {}

  private final List<LazyMount> mounts;
  private final Path overlay;

  private ComputeMounts(List<LazyMount> mounts, Path overlay) {
    this.mounts = mounts;
    this.overlay = overlay;
  }

  /** Who owns {@code pgdata}. */
  public static Owner owner(Path pgdata) throws IOException {
    return new Owner(
        (Integer) Files.getAttribute(pgdata, "unix:uid"),
        (Integer) Files.getAttribute(pgdata, "unix:gid"));
  }

  /**
   * Mounts {@code base/} and {@code global/} of {@code pgdata} with {@code config} (its uid and gid
   * should be {@link #owner}'s), the seed and overlay under {@code work}.
   *
   * @param answerTimeout how long both mounts get to answer a listing
   * @throws IOException if a directory is missing, a mount fails, or a mount does not answer (then
   *     nothing stays mounted)
   */
  public static ComputeMounts mount(
      LazyFsConfig config, Path pgdata, Path work, Duration answerTimeout) throws IOException {
    Path overlay = work.resolve("overlay");
    List<LazyMount> mounts = new ArrayList<>();
    try {
      for (LazyMount.Root root : LazyMount.Root.values()) {
        String dir = root == LazyMount.Root.BASE ? "base" : "global";
        Path mountPoint = pgdata.resolve(dir);
        if (LazyMount.unmountStale(mountPoint)) {
          log.info("detached the dead mount of a previous agent at {}", mountPoint);
        }
        Path seed = work.resolve("seed").resolve(dir);
        if (!Files.exists(seed)) {
          if (!Files.isDirectory(mountPoint, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException(
                mountPoint + " is missing: extract a slim basebackup into " + pgdata + " first");
          }
          Files.createDirectories(seed.getParent());
          Files.move(mountPoint, seed);
        }
        deleteTree(overlay.resolve(dir));
        if (!Files.exists(mountPoint)) {
          Files.createDirectory(mountPoint);
        }
        // the compute's user must be able to enter the mount point while nothing is mounted too
        UserPrincipal owner = Files.getOwner(pgdata);
        Files.setOwner(mountPoint, owner);
        Files.setPosixFilePermissions(mountPoint, PosixFilePermissions.fromString("rwx------"));
        mounts.add(LazyMount.mount(config, root, seed, overlay.resolve(dir), mountPoint));
      }
      for (LazyMount m : mounts) {
        awaitAnswer(m.mountPoint(), answerTimeout);
      }
      return new ComputeMounts(List.copyOf(mounts), overlay);
    } catch (IOException | RuntimeException e) {
      closeAll(mounts);
      throw e;
    }
  }

  /** A listing of the mount's root, bounded: a mount that hangs must not hang its agent. */
  private static void awaitAnswer(Path mountPoint, Duration timeout) throws IOException {
    CompletableFuture<Integer> listed =
        CompletableFuture.supplyAsync(
            () -> {
              try (Stream<Path> s = Files.list(mountPoint)) {
                return (int) s.count();
              } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
            },
            r -> Thread.ofPlatform().daemon().name("mount-check").start(r));
    try {
      int entries = listed.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      log.info("{} answers ({} entries)", mountPoint, entries);
    } catch (TimeoutException e) {
      throw new IOException(
          mountPoint + " did not answer a listing within " + timeout.toSeconds() + " s");
    } catch (ExecutionException e) {
      throw new IOException(
          "listing " + mountPoint + " failed: " + e.getCause().getMessage(), e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while checking " + mountPoint, e);
    }
  }

  /** The mount points, {@code base/} first. */
  public List<Path> mountPoints() {
    return mounts.stream().map(LazyMount::mountPoint).toList();
  }

  /** Unmounts both (each even if the other fails) and deletes the overlay. */
  @Override
  public void close() throws IOException {
    try {
      closeAll(mounts);
    } finally {
      deleteTree(overlay);
    }
  }

  private static void closeAll(List<LazyMount> mounts) throws IOException {
    IOException first = null;
    for (LazyMount m : mounts) {
      try {
        m.close();
      } catch (IOException e) {
        if (first == null) {
          first = e;
        } else {
          first.addSuppressed(e);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }

  private static void deleteTree(Path root) throws IOException {
    if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(root)) {
      for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }
}
