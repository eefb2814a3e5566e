package io.zenith.gateway.http;

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

  public static ApiException notFound(String message) {
    return new ApiException(404, message);
  }
}
