package io.zenith.replication.auth;

/**
 * A request refused for its credentials. Its message is one line for the client and the log, and
 * never contains the token.
 */
public final class AuthException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** Why, which decides the HTTP status. */
  public enum Kind {
    /** No token where one is needed: 401. */
    MISSING(401),
    /** Not a token, not signed by our key, or claims we do not understand: 401. */
    INVALID(401),
    /** Past its expiry: 401. */
    EXPIRED(401),
    /** A good token whose scope or tenant does not allow the request: 403. */
    FORBIDDEN(403);

    private final int httpStatus;

    Kind(int httpStatus) {
      this.httpStatus = httpStatus;
    }

    public int httpStatus() {
      return httpStatus;
    }
  }

  /** PostgreSQL's invalid_authorization_specification: what libpq clients get for any kind. */
  public static final String SQLSTATE = "28000";

  private final Kind kind;

  public AuthException(Kind kind, String message) {
    super(message, null, false, false);
    this.kind = kind;
  }

  public Kind kind() {
    return kind;
  }
}
