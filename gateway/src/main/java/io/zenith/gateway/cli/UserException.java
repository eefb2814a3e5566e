package io.zenith.gateway.cli;

import java.io.Serial;

/** A problem with what the user asked for; printed as one line, no stack trace. */
final class UserException extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  UserException(String message) {
    super(message);
  }
}
