package io.zenith.pg;

import java.io.Serial;

/** The PostgreSQL installation is missing or unusable; the message says what to do. */
public final class PgSetupException extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  public PgSetupException(String message) {
    super(message);
  }
}
