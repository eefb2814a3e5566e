package io.zenith.replication.pgwire;

import java.io.Serial;
import org.jspecify.annotations.Nullable;

/**
 * The server answered with an ErrorResponse. Carries all its fields; {@link #sqlState()} is what
 * callers switch on (constants in {@link SqlState}).
 */
public final class PgServerException extends PgWireException {
  @Serial private static final long serialVersionUID = 1L;

  private final PgNotice notice;

  /**
   * @param context where it happened, e.g. {@code "c3 127.0.0.1:5432: START_REPLICATION"}; the
   *     message is {@code context: SEVERITY SQLSTATE: message (detail: ...)}
   */
  public PgServerException(String context, PgNotice notice) {
    super(Kind.SERVER, context + ": " + notice);
    this.notice = notice;
  }

  public PgNotice notice() {
    return notice;
  }

  public String sqlState() {
    return notice.sqlState();
  }

  /** The server's primary message, without context. */
  public String serverMessage() {
    return notice.message();
  }

  public @Nullable String detail() {
    return notice.detail();
  }

  public @Nullable String hint() {
    return notice.hint();
  }

  public String severity() {
    return notice.severity();
  }
}
