package io.zenith.wal;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * The one place every fsync of Zenith goes through: files ({@link #force}), directories ({@link
 * #directory}) and writes a library makes durable itself ({@link #syncedWrite}: RocksDB's synced
 * batches).
 *
 * <p><b>A failed fsync is fatal</b>, as in PostgreSQL: after one, Linux may report the next fsync
 * of the same file as successful while the data written before is gone, so nothing retries it. The
 * failure calls the process's {@link #onFailure} handler (the pageserver and safekeeper {@code run}
 * commands log one line and halt; the default does nothing) and then throws {@link
 * FsyncFailedException}, which carries the path. A restart recovers from what is really on disk.
 *
 * <p><b>Test seam:</b> the {@link Device} that performs the fsyncs is {@link #OS} unless a test
 * installs another with {@link #use} (in a try-with-resources block) to see every fsync or fail
 * one; process tests install one at start ({@code ZENITH_TEST_FSYNC_FAIL}, read once by the {@code
 * run} commands). Production code never reads a setting per write.
 *
 * <p>Thread-safe.
 */
public final class Fsync {
  private Fsync() {}

  /** Performs fsyncs. Implementations must be thread-safe. */
  public interface Device {
    /**
     * Fsyncs an open file or directory ({@code metadata}: also its metadata, as {@code fsync}
     * rather than {@code fdatasync}).
     */
    void force(FileChannel channel, Path path, boolean metadata) throws IOException;

    /**
     * Called before a write that a library makes durable itself ({@link #syncedWrite}); a test
     * device fails it by throwing. The operating system's does nothing.
     */
    default void beforeSyncedWrite(Path path) throws IOException {}
  }

  /** The operating system's fsync. */
  public static final Device OS = (channel, path, metadata) -> channel.force(metadata);

  private static volatile Device device = OS;
  private static volatile Consumer<FsyncFailedException> onFailure = e -> {};

  /** A write a library makes durable itself, such as a RocksDB batch with {@code sync=true}. */
  @FunctionalInterface
  public interface SyncedWrite<E extends Exception> {
    void run() throws E;
  }

  /** Fsyncs a file's content and metadata ({@code fsync}). */
  public static void force(FileChannel channel, Path path) {
    force(channel, path, true);
  }

  /** Fsyncs a file's content ({@code fdatasync}; metadata only as far as needed to read it). */
  public static void forceData(FileChannel channel, Path path) {
    force(channel, path, false);
  }

  private static void force(FileChannel channel, Path path, boolean metadata) {
    try {
      device.force(channel, path, metadata);
    } catch (IOException e) {
      throw failed(path, e);
    }
  }

  /**
   * Makes a directory's entries (creations, renames, deletions) durable.
   *
   * @throws IOException if the directory cannot be opened (not an fsync failure)
   */
  public static void directory(Path dir) throws IOException {
    try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
      force(ch, dir, true);
    }
  }

  /**
   * Runs a write that a library makes durable itself; an exception {@code isSyncFailure} accepts is
   * a failed fsync of {@code path} (fatal), any other is thrown as it is.
   */
  public static <E extends Exception> void syncedWrite(
      Path path, SyncedWrite<E> write, java.util.function.Predicate<? super E> isSyncFailure)
      throws E {
    try {
      device.beforeSyncedWrite(path);
    } catch (IOException e) {
      throw failed(path, e);
    }
    try {
      write.run();
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      @SuppressWarnings("unchecked")
      E typed = (E) e; // run() throws only E or unchecked exceptions
      if (isSyncFailure.test(typed)) {
        throw failed(path, e);
      }
      throw typed;
    }
  }

  /** Reports a failed fsync of {@code path} to the handler; returns the error to throw. */
  private static FsyncFailedException failed(Path path, Throwable cause) {
    FsyncFailedException e = new FsyncFailedException(path, cause);
    onFailure.accept(e);
    return e;
  }

  /**
   * Sets what the process does on a failed fsync before the error is thrown: a server's {@code run}
   * command logs and halts. Set once at start; the default does nothing (libraries and tests see
   * the thrown {@link FsyncFailedException}).
   */
  public static void onFailure(Consumer<FsyncFailedException> handler) {
    onFailure = Objects.requireNonNull(handler);
  }

  /** The device in use until the returned handle is closed (tests; process start). */
  public static Installed use(Device d) {
    Device previous = device;
    device = Objects.requireNonNull(d);
    return () -> device = previous;
  }

  /** An installed device; {@link #close()} puts the previous one back. */
  @FunctionalInterface
  public interface Installed extends AutoCloseable {
    @Override
    void close();
  }
}
