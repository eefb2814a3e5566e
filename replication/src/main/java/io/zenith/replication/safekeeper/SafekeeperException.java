package io.zenith.replication.safekeeper;

import java.io.Serial;

/** What a caller of a safekeeper can get wrong, or what went wrong inside it, in one sentence. */
public final class SafekeeperException extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  /** Callers switch on it (the HTTP API maps it to a status). */
  public enum Kind {
    /** No such timeline. */
    NOT_FOUND,
    /** The timeline exists already. */
    ALREADY_EXISTS,
    /** The timeline was deleted here: its id is never used again. */
    DELETED,
    /** A request that cannot be valid (bad history, LSN out of range). */
    INVALID,
    /** The request's term is stale or the safekeeper is not (yet) in it. */
    TERM_CONFLICT,
    /** Doing it would lose committed WAL; refused. */
    UNSAFE,
    /** I/O failed (disk full, permissions) or a peer could not be read. */
    IO,
    /** The timeline was closed (shutdown). */
    CLOSED
  }

  private final Kind kind;

  public SafekeeperException(Kind kind, String message) {
    super(message);
    this.kind = kind;
  }

  public SafekeeperException(Kind kind, String message, Throwable cause) {
    super(message, cause);
    this.kind = kind;
  }

  public Kind kind() {
    return kind;
  }
}
