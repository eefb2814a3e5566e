package io.zenith.gateway.pageserver;

import io.zenith.layer.LayerStoreException;
import java.io.Serial;

/** An API request that cannot be served: an HTTP status and a one-line message. */
public final class ApiException extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  private final int status;

  public ApiException(int status, String message) {
    super(message);
    this.status = status;
  }

  public int status() {
    return status;
  }

  public static ApiException badRequest(String message) {
    return new ApiException(400, message);
  }

  /** The status a layer-store condition deserves. */
  public static ApiException of(LayerStoreException e) {
    int status =
        switch (e.kind()) {
          case UNKNOWN_TENANT, UNKNOWN_TIMELINE -> 404;
          case ALREADY_EXISTS -> 409;
          case INVALID_LSN -> 400;
          case LSN_TIMEOUT -> 504;
          case CORRUPT_FILE, IO -> 500;
        };
    return new ApiException(status, e.getMessage());
  }
}
