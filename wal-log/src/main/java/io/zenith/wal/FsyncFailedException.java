package io.zenith.wal;

import java.io.Serial;
import java.nio.file.Path;

/**
 * An fsync failed: what was written to {@link #path()} since its last successful fsync may be lost,
 * and Linux may report the next fsync of it as successful although the data is gone. Nothing may
 * catch this to retry; a process stops ({@link Fsync#onFailure}) and its restart recovers from what
 * is on disk, as PostgreSQL does after a failed fsync (PANIC).
 *
 * <p>An {@link Error}, not an exception: the {@code catch (RuntimeException e)} and {@code catch
 * (IOException e)} blocks that retry ordinary failures (upkeep steps, intake reconnects, the rewind
 * after a full disk) must not see it.
 */
public final class FsyncFailedException extends Error {
  @Serial private static final long serialVersionUID = 1L;

  /** A string, not a {@link Path}: exception fields must be serializable. */
  private final String path;

  FsyncFailedException(Path path, Throwable cause) {
    super("fsync of " + path + " failed: " + reason(cause), cause);
    this.path = path.toString();
  }

  /** The file or directory whose fsync failed. */
  public Path path() {
    return Path.of(path);
  }

  private static String reason(Throwable cause) {
    String m = cause.getMessage();
    return m == null || m.isBlank() ? cause.getClass().getSimpleName() : m.strip();
  }
}
