package io.zenith.layer;

import java.io.Serial;

/**
 * A condition callers of the layer store handle: what went wrong, and enough context (tenant,
 * timeline, file, LSN in the message) to tell a user precisely.
 */
public final class LayerStoreException extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  /** What went wrong; callers switch on it (an HTTP API maps it to a status code). */
  public enum Kind {
    UNKNOWN_TENANT,
    UNKNOWN_TIMELINE,
    ALREADY_EXISTS,
    /** A timeline cannot be deleted while child timelines branch from it. */
    HAS_CHILDREN,
    /** A branch point or read LSN outside what the timeline holds. */
    INVALID_LSN,
    /** Waiting for an LSN the timeline has not received took too long. */
    LSN_TIMEOUT,
    /** A layer or metadata file failed its checks (magic, version, CRC, bounds). */
    CORRUPT_FILE,
    /**
     * A flush could not write for want of space (a layer file's bytes, or RocksDB's "no space")
     * before anything of it was durable: nothing changed, and the flush can be retried once there
     * is space.
     */
    NO_SPACE,
    /** A generation older than the tenant's: an attach the control plane superseded (ADR 0026). */
    STALE_GENERATION,
    /** An I/O error (permissions, a failed read). */
    IO
  }

  private final Kind kind;

  public LayerStoreException(Kind kind, String message) {
    super(message);
    this.kind = kind;
  }

  public LayerStoreException(Kind kind, String message, Throwable cause) {
    super(message, cause);
    this.kind = kind;
  }

  public Kind kind() {
    return kind;
  }
}
