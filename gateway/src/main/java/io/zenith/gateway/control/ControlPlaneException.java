package io.zenith.gateway.control;

import java.io.Serial;

/**
 * Something the user asked for cannot be done: no repository, the pageserver not running, an
 * unknown branch, a port in use. The message is one sentence meant for the user, often with the
 * command that fixes it; the CLI prints it as one line and exits 1.
 */
public final class ControlPlaneException extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  public ControlPlaneException(String message) {
    super(message);
  }

  public ControlPlaneException(String message, Throwable cause) {
    super(message, cause);
  }
}
