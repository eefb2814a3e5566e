package io.zenith.wal;

import java.io.IOException;
import java.io.Serial;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One process per data directory: an exclusive lock on {@code <dir>/<file>} taken before a process
 * touches anything else in the directory and held for its life ({@link #close()} releases it; so
 * does the kernel when the process dies, even by SIGKILL). The holder's pid is written into the
 * file after locking, so that a process refused can name it.
 *
 * <p>The lock is the JDK's {@link FileChannel#tryLock()}, on Linux a POSIX record lock ({@code
 * fcntl(F_SETLK)}, shown as {@code POSIX} in {@code /proc/locks}; it does not conflict with {@code
 * flock(1)}). Two properties of POSIX locks shape this class:
 *
 * <ul>
 *   <li>They belong to the process, so a second lock of the same file in the same JVM is not
 *       refused by the kernel (the JDK throws {@link OverlappingFileLockException} instead). A
 *       second instance in this JVM is refused by a JVM-wide set of held lock files, checked before
 *       any file is opened.
 *   <li>Closing <em>any</em> descriptor of the file in the holding process releases the lock. So
 *       the holder never opens the file again, and nothing else in the holding process may read it
 *       (a refused attempt in the same JVM does not open it: see above).
 * </ul>
 *
 * <p>Thread-safe.
 */
public final class DirectoryLock implements AutoCloseable {
  /** Lock files held by this JVM, by absolute normalized path. */
  private static final Set<Path> HELD = ConcurrentHashMap.newKeySet();

  private final Path directory;
  private final Path file;
  private final FileChannel channel;
  private final FileLock lock;
  private boolean closed;

  private DirectoryLock(Path directory, Path file, FileChannel channel, FileLock lock) {
    this.directory = directory;
    this.file = file;
    this.channel = channel;
    this.lock = lock;
  }

  /**
   * Locks {@code directory} (which must exist) through the file {@code fileName} in it, created if
   * missing, and writes this process's pid into it.
   *
   * @throws InUseException if another process holds the lock, or another holder in this JVM
   * @throws IOException if the lock file cannot be opened or written
   */
  public static DirectoryLock acquire(Path directory, String fileName) throws IOException {
    if (fileName.isEmpty() || fileName.contains("/")) {
      throw new IllegalArgumentException("lock file name '" + fileName + "' is not a plain name");
    }
    Path dir = directory.toAbsolutePath().normalize();
    Path file = dir.resolve(fileName);
    long self = ProcessHandle.current().pid();
    if (!HELD.add(file)) {
      throw new InUseException(dir, self, true);
    }
    FileChannel ch = null;
    try {
      ch =
          FileChannel.open(
              file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
      FileLock lock;
      try {
        lock = ch.tryLock();
      } catch (OverlappingFileLockException e) {
        // Locked in this JVM by someone not using this class: held, by this process.
        throw new InUseException(dir, self, true);
      }
      if (lock == null) {
        throw new InUseException(dir, holder(ch), false);
      }
      byte[] pid = (self + "\n").getBytes(StandardCharsets.US_ASCII);
      ch.truncate(0);
      ByteBuffer b = ByteBuffer.wrap(pid);
      while (b.hasRemaining()) {
        ch.write(b, b.position());
      }
      return new DirectoryLock(dir, file, ch, lock);
    } catch (IOException | RuntimeException e) {
      if (ch != null) {
        try {
          ch.close();
        } catch (IOException suppressed) {
          e.addSuppressed(suppressed);
        }
      }
      HELD.remove(file);
      throw e;
    }
  }

  /**
   * The pid another process wrote into the lock file, read through the channel that failed to lock
   * it. The holder writes it right after locking: an empty file is read again for up to a second.
   */
  private static long holder(FileChannel ch) throws IOException {
    long deadline = System.nanoTime() + 1_000_000_000L;
    while (true) {
      ByteBuffer b = ByteBuffer.allocate(32);
      while (b.hasRemaining() && ch.read(b, b.position()) > 0) {
        // read on
      }
      String text = new String(b.array(), 0, b.position(), StandardCharsets.US_ASCII).strip();
      if (text.matches("[0-9]{1,19}")) {
        try {
          return Long.parseLong(text);
        } catch (NumberFormatException e) {
          return -1;
        }
      }
      if (!text.isEmpty() || System.nanoTime() > deadline) {
        return -1;
      }
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return -1;
      }
    }
  }

  /** The directory locked, absolute and normalized. */
  public Path directory() {
    return directory;
  }

  /** The lock file. */
  public Path file() {
    return file;
  }

  /** Releases the lock (the file stays: deleting it would let two processes lock two files). */
  @Override
  public synchronized void close() throws IOException {
    if (closed) {
      return;
    }
    closed = true;
    try {
      if (lock.isValid()) {
        lock.release();
      }
    } finally {
      channel.close();
      HELD.remove(file);
    }
  }

  /**
   * Releases the lock after its holder failed to start: a failure to release is added to {@code
   * failure}, which stays the one to report.
   */
  public void closeAfter(Throwable failure) {
    try {
      close();
    } catch (IOException e) {
      failure.addSuppressed(e);
    }
  }

  /** Another process (or another holder in this JVM) holds a directory's lock. */
  public static final class InUseException extends IOException {
    @Serial private static final long serialVersionUID = 1L;

    private final String directory;
    private final long pid;
    private final boolean thisProcess;

    InUseException(Path directory, long pid, boolean thisProcess) {
      super(
          "data directory "
              + directory
              + " is in use by "
              + (thisProcess ? "this process" : "another process")
              + (pid > 0 ? " (pid " + pid + ")" : " (pid unknown)"));
      this.directory = directory.toString();
      this.pid = pid;
      this.thisProcess = thisProcess;
    }

    /** The directory, absolute and normalized. */
    public Path directory() {
      return Path.of(directory);
    }

    /** The holder's pid, if its lock file names one. */
    public OptionalLong holderPid() {
      return pid > 0 ? OptionalLong.of(pid) : OptionalLong.empty();
    }

    /** True if the holder is this JVM (another instance in the same process). */
    public boolean heldByThisProcess() {
      return thisProcess;
    }
  }
}
