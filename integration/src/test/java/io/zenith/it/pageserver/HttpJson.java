package io.zenith.it.pageserver;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.netty.handler.codec.http.HttpMethod;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.jspecify.annotations.Nullable;
import reactor.core.publisher.Mono;
import reactor.netty.http.client.HttpClient;

/**
 * A client of the pageserver's HTTP API over real HTTP (reactor-netty), one connection per request,
 * answers as status, content type and body. Thread-safe.
 */
public final class HttpJson {
  public static final ObjectMapper JSON = new ObjectMapper();

  /** An answer. */
  public record Response(String method, String path, int status, String contentType, String body) {
    public JsonNode json() {
      try {
        return JSON.readTree(body);
      } catch (IOException e) {
        throw new UncheckedIOException(method + " " + path + " answered no JSON: " + body, e);
      }
    }

    /** The {@code error} message of an error answer. */
    public String error() {
      return json().path("error").asText();
    }

    @Override
    public String toString() {
      return method + " " + path + " -> " + status + " " + contentType + " " + body;
    }
  }

  private final HttpClient client;
  private final @Nullable String authorization;

  public HttpJson(int port) {
    this(
        HttpClient.newConnection()
            .host("127.0.0.1")
            .port(port)
            .responseTimeout(Duration.ofSeconds(60)),
        null);
  }

  private HttpJson(HttpClient client, @Nullable String authorization) {
    this.client = client;
    this.authorization = authorization;
  }

  /** This client with {@code header} as every request's {@code Authorization} (null: none). */
  public HttpJson withAuthorization(@Nullable String header) {
    return new HttpJson(client, header);
  }

  /** This client with {@code Authorization: Bearer <token>}. */
  public HttpJson withToken(String token) {
    return withAuthorization("Bearer " + token);
  }

  public Response get(String path) {
    return call("GET", path, (byte[]) null);
  }

  public Response call(String method, String path, String body) {
    return call(method, path, body == null ? null : body.getBytes(StandardCharsets.UTF_8));
  }

  /** Sends {@code body} (none if null) as {@code application/json}. */
  public Response call(String method, String path, byte[] body) {
    return client
        .headers(
            h -> {
              h.set("content-type", "application/json");
              if (authorization != null) {
                h.set("authorization", authorization);
              }
            })
        .request(HttpMethod.valueOf(method))
        .uri(path)
        .send((req, out) -> body == null ? out : out.sendByteArray(Mono.just(body)))
        .responseSingle(
            (res, content) ->
                content
                    .asString(StandardCharsets.UTF_8)
                    .defaultIfEmpty("")
                    .map(
                        s ->
                            new Response(
                                method,
                                path,
                                res.status().code(),
                                res.responseHeaders().get("content-type"),
                                s)))
        .block(Duration.ofSeconds(90));
  }
}
