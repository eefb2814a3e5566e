package io.zenith.page.stream;

import java.io.IOException;
import java.io.Serial;
import org.jspecify.annotations.Nullable;

/**
 * A pagestream exchange that cannot go on: a malformed message (either side), or an ErrorResponse
 * of the server outside a request (an unknown timeline, a protocol violation). Errors of one
 * request are not exceptions but {@link PagestreamResponse.Error} answers.
 */
public final class PagestreamException extends IOException {
  @Serial private static final long serialVersionUID = 1L;

  private final @Nullable String sqlState;

  public PagestreamException(@Nullable String sqlState, String message) {
    super(message);
    this.sqlState = sqlState;
  }

  /** The server's SQLSTATE, or null if the client found the problem. */
  public @Nullable String sqlState() {
    return sqlState;
  }
}
