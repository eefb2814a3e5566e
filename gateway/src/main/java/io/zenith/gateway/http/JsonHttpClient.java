package io.zenith.gateway.http;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectWriter;
import io.netty.channel.ChannelOption;
import io.netty.handler.codec.http.HttpMethod;
import java.io.IOException;
import java.io.Serial;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.function.BiFunction;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;
import reactor.core.publisher.Mono;
import reactor.netty.http.client.HttpClient;

/**
 * A blocking client of a Zenith JSON API over reactor-netty's {@link HttpClient} (never call it on
 * an event loop). An error answer becomes an {@link ApiError} with the server's one-line message; a
 * server that does not answer, or answers what cannot be read, becomes the caller's failure
 * exception with one line naming the server (and, when nothing listens, how to start it).
 * Thread-safe.
 */
public final class JsonHttpClient {
  /** Requests leave optional fields out: the APIs refuse {@code null}s. */
  private static final ObjectWriter REQUESTS =
      Json.MAPPER.copy().setDefaultPropertyInclusion(JsonInclude.Include.NON_NULL).writer();

  private final String base;
  private final InetSocketAddress address;
  private final String serverName;
  private final @Nullable String startHint;
  private final Duration timeout;
  private final BiFunction<String, @Nullable Throwable, RuntimeException> failure;
  private final Supplier<@Nullable String> token;
  private @Nullable HttpClient http; // made on first use: commands that do not call it start faster

  /** The API answered with an error status. */
  public static final class ApiError extends RuntimeException {
    @Serial private static final long serialVersionUID = 1L;
    private final int status;

    public ApiError(int status, String message) {
      super(message);
      this.status = status;
    }

    public int status() {
      return status;
    }
  }

  /** The server did not answer, or answered something that is not its API. */
  public static final class Unavailable extends RuntimeException {
    @Serial private static final long serialVersionUID = 1L;

    public Unavailable(String message, @Nullable Throwable cause) {
      super(message, cause);
    }
  }

  /**
   * @param serverName what the server is, for messages ("the pageserver", "safekeeper 2")
   * @param startHint how to start it, for the message when nothing listens (e.g. "start it with
   *     `zenith start`"), or null
   * @param timeout the longest a call waits for its answer
   * @param failure makes the exception of a server that does not answer (message, cause)
   */
  public JsonHttpClient(
      InetSocketAddress address,
      String serverName,
      @Nullable String startHint,
      Duration timeout,
      BiFunction<String, @Nullable Throwable, RuntimeException> failure) {
    this(address, serverName, startHint, timeout, failure, () -> null);
  }

  /**
   * A client that sends {@code Authorization: Bearer <token>} (ADR 0016).
   *
   * @param token the token, asked for at each call (the control plane renews them); null sends none
   */
  public JsonHttpClient(
      InetSocketAddress address,
      String serverName,
      @Nullable String startHint,
      Duration timeout,
      BiFunction<String, @Nullable Throwable, RuntimeException> failure,
      Supplier<@Nullable String> token) {
    this.token = token;
    this.address = address;
    this.base = "http://" + address.getHostString() + ":" + address.getPort();
    this.serverName = serverName;
    this.startHint = startHint;
    this.timeout = timeout;
    this.failure = failure;
  }

  /** A client whose failures are {@link Unavailable}. */
  public JsonHttpClient(
      InetSocketAddress address, String serverName, @Nullable String startHint, Duration timeout) {
    this(address, serverName, startHint, timeout, Unavailable::new);
  }

  private synchronized HttpClient http() {
    if (http == null) {
      http =
          HttpClient.create()
              .baseUrl(base)
              .responseTimeout(timeout)
              .option(
                  ChannelOption.CONNECT_TIMEOUT_MILLIS,
                  (int) Math.min(5000, Math.max(100, timeout.toMillis())));
    }
    return http;
  }

  public String baseUrl() {
    return base;
  }

  public InetSocketAddress address() {
    return address;
  }

  public <T> T get(String path, TypeReference<T> type) {
    return call(HttpMethod.GET, path, null, type);
  }

  /**
   * Whether a server answers {@code GET path}, even with an error status (one that refuses this
   * client's token still listens there); never throws.
   */
  public boolean answers(String path) {
    try {
      get(path, new TypeReference<JsonNode>() {});
      return true;
    } catch (ApiError e) {
      return true;
    } catch (RuntimeException e) {
      return false;
    }
  }

  private record Response(int status, String body) {}

  /**
   * Sends {@code body} (none if null) as JSON and reads the answer as {@code type}.
   *
   * @throws ApiError for an error status, with the server's message
   */
  public <T> T call(HttpMethod method, String path, @Nullable Object body, TypeReference<T> type) {
    byte[] json;
    try {
      json = body == null ? null : REQUESTS.writeValueAsBytes(body);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
    Response r;
    try {
      String bearer = token.get();
      HttpClient client =
          http()
              .headers(
                  h -> {
                    if (json != null) {
                      h.set("content-type", "application/json");
                    }
                    if (bearer != null) {
                      h.set("authorization", "Bearer " + bearer);
                    }
                  });
      r =
          client
              .request(method)
              .uri(path)
              .send((req, out) -> json == null ? out : out.sendByteArray(Mono.just(json)))
              .responseSingle(
                  (res, content) ->
                      content
                          .asString(java.nio.charset.StandardCharsets.UTF_8)
                          .defaultIfEmpty("")
                          .map(s -> new Response(res.status().code(), s)))
              .block(timeout.plusSeconds(10));
    } catch (RuntimeException e) {
      throw notAnswering(e);
    }
    if (r == null) {
      throw failure.apply(serverName + " at " + base + " sent no response", null);
    }
    if (r.status() >= 400) {
      String message;
      try {
        message = Json.MAPPER.readValue(r.body(), Json.ErrorBody.class).error();
      } catch (IOException e) {
        message = null;
      }
      if (message == null) {
        message = r.body().isBlank() ? "HTTP " + r.status() : r.body().strip();
      }
      throw new ApiError(r.status(), message.replaceAll("\\s*\\R\\s*", " "));
    }
    try {
      return Json.MAPPER.readValue(r.body(), type);
    } catch (IOException e) {
      throw failure.apply(
          "unexpected answer from "
              + serverName
              + " to "
              + method
              + " "
              + path
              + ": "
              + e.getMessage().replaceAll("\\s*\\R\\s*", " "),
          e);
    }
  }

  private RuntimeException notAnswering(RuntimeException e) {
    Throwable c = e;
    while (c.getCause() != null && !(c instanceof ConnectException)) {
      c = c.getCause();
    }
    if (c instanceof ConnectException
        || String.valueOf(e.getMessage()).contains("Connection refused")) {
      return failure.apply(
          serverName
              + " is not running (nothing answers at "
              + base
              + ")"
              + (startHint == null ? "" : "; " + startHint),
          null);
    }
    return failure.apply(serverName + " at " + base + " did not answer: " + e.getMessage(), e);
  }
}
