package io.zenith.page.redo;

import io.zenith.wal.Lsn;
import java.io.Serial;

/**
 * A page could not be rebuilt. Carries what a caller needs to react: the {@link Kind}, the target
 * block and the LSN range of the request (when the failure belongs to one), and a message naming
 * them with the cause (for a crash, the tail of the process's stderr).
 */
public final class WalRedoException extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  /** What went wrong. Callers switch on it; the message has the details. */
  public enum Kind {
    /** The redo process refused the request (bad record, CRC, lengths); nothing was applied. */
    REJECTED(false),
    /** PostgreSQL raised an ERROR while applying a record; the process goes on. */
    REDO_FAILED(false),
    /** The process died during the request (PANIC, killed, FATAL); a new one is started. */
    CRASHED(true),
    /** No answer within the request timeout; the process was killed. */
    TIMEOUT(true),
    /** The process answered something the protocol does not allow; it was killed. */
    PROTOCOL(true),
    /** No process could be started (scratch cluster, PostgreSQL installation, handshake). */
    START_FAILED(true),
    /** Too many requests queued for the tenant; try later. */
    OVERLOADED(false),
    /** The manager is shut down. */
    CLOSED(false);

    private final boolean processLost;

    Kind(boolean processLost) {
      this.processLost = processLost;
    }

    /** Whether the process that served the request is gone (the next request gets a new one). */
    public boolean processLost() {
      return processLost;
    }
  }

  private final Kind kind;
  private final String target;
  private final Lsn firstLsn;
  private final Lsn lastEnd;

  /** A failure of one request: the message names its target and LSN range. */
  public WalRedoException(Kind kind, RedoRequest request, String cause) {
    this(kind, request, cause, null);
  }

  public WalRedoException(Kind kind, RedoRequest request, String cause, Throwable throwable) {
    super("WAL redo of " + request.describe() + " failed: " + cause, throwable);
    this.kind = kind;
    this.target = request.target();
    this.firstLsn = request.firstLsn();
    this.lastEnd = request.lastEnd();
  }

  /** A failure that belongs to no request (a process that does not start, a closed manager). */
  public WalRedoException(Kind kind, String message, Throwable cause) {
    super(message, cause);
    this.kind = kind;
    this.target = null;
    this.firstLsn = Lsn.INVALID;
    this.lastEnd = Lsn.INVALID;
  }

  public Kind kind() {
    return kind;
  }

  /** The block, as {@code rel 1663/5/16384 fork main blk 7}; null if no request was involved. */
  public String target() {
    return target;
  }

  /** Start LSN of the request's first record ({@link Lsn#INVALID} if none). */
  public Lsn firstLsn() {
    return firstLsn;
  }

  /** End LSN of the request's last record ({@link Lsn#INVALID} if none). */
  public Lsn lastEnd() {
    return lastEnd;
  }

  /** The same failure for another request (a process that failed to start, seen by a request). */
  WalRedoException forRequest(RedoRequest request) {
    return new WalRedoException(kind, request, getMessage(), this);
  }
}
