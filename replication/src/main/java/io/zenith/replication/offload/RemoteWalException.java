package io.zenith.replication.offload;

import io.zenith.wal.remote.RemoteKey;
import java.io.Serial;
import org.jspecify.annotations.Nullable;

/**
 * Offloaded WAL that cannot be read: callers switch on {@link #kind()}. The message is one sentence
 * naming the object and what is wrong.
 */
public final class RemoteWalException extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  /** What went wrong. */
  public enum Kind {
    /** The segment is not in remote storage (not offloaded yet, or never). */
    NOT_FOUND,
    /** The object exists but is damaged: a bad header, size, start LSN, compression or CRC32C. */
    CORRUPT,
    /** Remote storage failed (down, refusing): the same read may work later. */
    UNAVAILABLE
  }

  private final Kind kind;
  private final @Nullable String key;

  public RemoteWalException(Kind kind, @Nullable RemoteKey key, String message) {
    this(kind, key, message, null);
  }

  public RemoteWalException(
      Kind kind, @Nullable RemoteKey key, String message, @Nullable Throwable cause) {
    super(message, cause);
    this.kind = kind;
    this.key = key == null ? null : key.path();
  }

  public Kind kind() {
    return kind;
  }

  /** The object's key, if the failure concerns one. */
  public @Nullable String key() {
    return key;
  }
}
