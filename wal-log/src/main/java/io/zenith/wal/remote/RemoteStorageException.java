package io.zenith.wal.remote;

import java.io.Serial;
import org.jspecify.annotations.Nullable;

/**
 * A remote-storage operation that failed. Callers switch on {@link #kind()}: retry a {@link
 * Kind#TRANSIENT} failure later, treat {@link Kind#NOT_FOUND} as an answer, report a {@link
 * Kind#PERMANENT} one. The message is one sentence naming the backend, the operation and the key.
 */
public final class RemoteStorageException extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  /** What kind of failure. */
  public enum Kind {
    /** The object does not exist. */
    NOT_FOUND,
    /**
     * The storage could not be reached or answered that it is busy or broken for now (connection
     * refused, timeouts, HTTP 5xx, 429 throttling): the same call may succeed later. The S3 backend
     * has already retried it with backoff.
     */
    TRANSIENT,
    /**
     * A failure that repeating will not fix: access denied, no such bucket, bad request, a local
     * I/O error such as a full disk or a missing source file.
     */
    PERMANENT
  }

  private final Kind kind;
  private final @Nullable String key;

  public RemoteStorageException(Kind kind, @Nullable RemoteKey key, String message) {
    this(kind, key, message, null);
  }

  public RemoteStorageException(
      Kind kind, @Nullable RemoteKey key, String message, @Nullable Throwable cause) {
    super(message, cause);
    this.kind = kind;
    this.key = key == null ? null : key.path();
  }

  public Kind kind() {
    return kind;
  }

  /** The key of the failed operation, if it had one (not for listings and batches). */
  public @Nullable RemoteKey key() {
    return key == null ? null : RemoteKey.of(key);
  }
}
