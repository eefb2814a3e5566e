package io.zenith.gateway.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.zenith.replication.auth.AuthException;
import java.io.ByteArrayOutputStream;
import java.net.InetSocketAddress;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.netty.DisposableServer;
import reactor.netty.http.server.HttpServer;
import reactor.netty.http.server.HttpServerRequest;
import reactor.netty.http.server.HttpServerResponse;
import reactor.netty.http.server.HttpServerRoutes;

/**
 * What Zenith's JSON management APIs share: routes bound on reactor-netty's {@link HttpServer},
 * work run on a blocking scheduler (never on an event loop), JSON answers, request bodies read
 * strictly ({@link Json#parseRequest}, at most {@link Json#MAX_BODY} bytes), every error as {@code
 * {"error": "<one line>"}}, {@code /metrics} in Prometheus' text format, a 404 for anything no
 * route takes, and, when it authenticates, 401/403 for requests whose bearer token does not allow
 * them ({@link HttpAuth}). Thread-safe.
 */
public final class JsonApiServer {
  private static final Logger log = LoggerFactory.getLogger(JsonApiServer.class);

  private final Scheduler blocking;
  private final Function<Throwable, @Nullable ApiException> domainErrors;
  private final Supplier<String> metrics;
  private final @Nullable HttpAuth auth;

  /**
   * @param blocking where handlers' work runs
   * @param domainErrors the status of an exception of the server's own kind, or null when it is not
   *     one (then: {@link ApiException} as is, {@link IllegalArgumentException} 400, else 500)
   * @param metrics the Prometheus scrape (called on {@code blocking})
   * @param auth which tokens each request needs, or null when the server authenticates no one
   */
  public JsonApiServer(
      Scheduler blocking,
      Function<Throwable, @Nullable ApiException> domainErrors,
      Supplier<String> metrics,
      @Nullable HttpAuth auth) {
    this.blocking = blocking;
    this.domainErrors = domainErrors;
    this.metrics = metrics;
    this.auth = auth;
  }

  /**
   * Binds, in this order: the refusal of requests whose token does not allow them (when {@code
   * auth} is set; before anything else, so that without a token not even a 404 says which paths
   * exist), {@code routes}, {@code GET /metrics}, the 404 fallback.
   */
  public DisposableServer bind(InetSocketAddress address, Consumer<HttpServerRoutes> routes) {
    return HttpServer.create()
        // reactor.netty.http.server.* in the global registry (ProcessMeters), uri tags bounded
        .metrics(true, ProcessMeters.uriTags())
        .host(address.getHostString())
        .port(address.getPort())
        .route(
            r -> {
              if (auth != null) {
                // The predicate and the handler both verify (one Ed25519 check each, on the
                // event loop): only refused requests pay twice; the handler logs them.
                r.route(
                    req -> refusal(auth, req).isPresent(),
                    (req, res) -> {
                      AuthException e = refusal(auth, req).orElseThrow();
                      log.info(
                          "refused {} {} from {}: {}",
                          req.method(),
                          req.uri(),
                          req.remoteAddress(),
                          e.getMessage());
                      return error(res, e);
                    });
              }
              // A path with an empty segment ("/v1/tenant/", "/v1//x") names no endpoint, even
              // where a template's parameter would match the empty string.
              r.route(
                  req -> hasEmptySegment(req.uri()),
                  (req, res) ->
                      error(
                          res,
                          new ApiException(
                              404, "no such endpoint: " + req.method() + " " + req.uri())));
              routes.accept(r);
              r.get(
                      "/metrics",
                      (req, res) ->
                          call(metrics::get)
                              .flatMap(
                                  text ->
                                      res.status(200)
                                          .header(
                                              "content-type",
                                              "text/plain; version=0.0.4; charset=utf-8")
                                          .sendString(Mono.just(text))
                                          .then()))
                  .route(
                      req -> true,
                      (req, res) ->
                          error(
                              res,
                              new ApiException(
                                  404, "no such endpoint: " + req.method() + " " + req.uri())));
            })
        .bindNow();
  }

  /** The path of {@code uri} (before any '?') ends with '/' or has "//". */
  static boolean hasEmptySegment(String uri) {
    int q = uri.indexOf('?');
    String path = q < 0 ? uri : uri.substring(0, q);
    return path.endsWith("/") || path.contains("//");
  }

  private static Optional<AuthException> refusal(HttpAuth auth, HttpServerRequest req) {
    return auth.refusal(req.method(), req.uri(), req.requestHeaders().get("authorization"));
  }

  /** {@code work} on the blocking scheduler. */
  public <T> Mono<T> call(Callable<T> work) {
    return Mono.fromCallable(work).subscribeOn(blocking);
  }

  /** Answers {@code status} with {@code work}'s result as JSON, or its error. */
  public <T> Mono<Void> json(HttpServerResponse res, int status, Callable<T> work) {
    return respond(res, status, call(work));
  }

  /** Reads the body as {@code type}, then answers {@code status} with {@code work}'s result. */
  public <B, T> Mono<Void> withBody(
      HttpServerRequest req,
      HttpServerResponse res,
      Class<B> type,
      int status,
      BodyHandler<B, T> work) {
    return respond(res, status, body(req, type).flatMap(b -> call(() -> work.handle(b))));
  }

  /** Work on a request body; may block. */
  @FunctionalInterface
  public interface BodyHandler<B, T> {
    T handle(B body) throws Exception;
  }

  /** Answers {@code status} with the value of {@code result} as JSON, or its error. */
  public <T> Mono<Void> respond(HttpServerResponse res, int status, Mono<T> result) {
    return result.flatMap(v -> send(res, status, v)).onErrorResume(e -> error(res, e));
  }

  private static Mono<Void> send(HttpServerResponse res, int status, Object body) {
    byte[] bytes;
    try {
      bytes = Json.MAPPER.writeValueAsBytes(body);
    } catch (JsonProcessingException e) {
      return Mono.error(e);
    }
    return Mono.from(
        res.status(HttpResponseStatus.valueOf(status))
            .header("content-type", "application/json")
            .sendByteArray(Mono.just(bytes)));
  }

  /** Answers the error {@code e} deserves: its status and {@code {"error": "..."}}. */
  public Mono<Void> error(HttpServerResponse res, Throwable e) {
    if (e instanceof AuthException a) {
      if (a.kind().httpStatus() == 401) {
        res.header("www-authenticate", "Bearer");
      }
      return send(res, a.kind().httpStatus(), new Json.ErrorBody(oneLine(a.getMessage())));
    }
    ApiException mapped = e instanceof ApiException a ? a : domainErrors.apply(e);
    ApiException api =
        mapped != null
            ? mapped
            : switch (e) {
              case IllegalArgumentException i -> ApiException.badRequest(i.getMessage());
              default -> {
                log.error("request failed", e);
                yield new ApiException(500, "internal error: " + e);
              }
            };
    if (api.status() >= 500) {
      log.warn("API error {}: {}", api.status(), api.getMessage());
    }
    return send(res, api.status(), new Json.ErrorBody(oneLine(api.getMessage())));
  }

  private static String oneLine(@Nullable String message) {
    return message == null ? "" : message.strip().replaceAll("\\s*\\R\\s*", " ");
  }

  /**
   * Reads a JSON object of at most {@link Json#MAX_BODY} bytes into {@code type}; every way it can
   * be wrong is an {@link ApiException} with a one-line message (413 when too large, 400
   * otherwise).
   */
  public static <T> Mono<T> body(HttpServerRequest req, Class<T> type) {
    return req.receive()
        .asByteArray()
        .collect(
            ByteArrayOutputStream::new,
            (out, chunk) -> {
              if (out.size() + chunk.length > Json.MAX_BODY) {
                throw new ApiException(413, "request body larger than " + Json.MAX_BODY + " bytes");
              }
              out.writeBytes(chunk);
            })
        .map(out -> Json.parseRequest(out.toByteArray(), type));
  }
}
