package io.zenith.gateway.pageserver;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.zenith.layer.LayerStoreException;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.netty.DisposableServer;
import reactor.netty.NettyOutbound;
import reactor.netty.http.server.HttpServer;
import reactor.netty.http.server.HttpServerRequest;
import reactor.netty.http.server.HttpServerResponse;

/**
 * The pageserver's management API over HTTP ({@code docs/api/pageserver.yaml}) and {@code
 * /metrics}. Request handling never blocks an event loop: every operation on the store runs on the
 * pageserver's blocking scheduler. Errors are JSON {@code {"error": "..."}} with a 4xx status for
 * the client's mistakes and 5xx for the server's.
 */
public final class HttpApi {
  private static final Logger log = LoggerFactory.getLogger(HttpApi.class);

  /** Largest request body accepted. */
  static final int MAX_BODY = 64 * 1024;

  /** What the API asks of the pageserver. Implementations may block. */
  public interface Operations {
    ApiModel.Status status();

    List<ApiModel.TenantInfo> tenants();

    ApiModel.TenantInfo createTenant(Optional<TenantId> id);

    List<ApiModel.TimelineInfo> timelines(TenantId tenant);

    ApiModel.TimelineInfo timeline(TenantId tenant, TimelineId timeline, boolean withSize);

    ApiModel.TimelineInfo branch(TenantId tenant, ApiModel.TimelineCreateRequest request);

    ApiModel.TimelineInfo checkpoint(TenantId tenant, TimelineId timeline);

    ApiModel.TimelineInfo startWalReceiver(
        TenantId tenant, TimelineId timeline, ApiModel.WalSource source);

    ApiModel.TimelineInfo stopWalReceiver(TenantId tenant, TimelineId timeline);

    String scrapeMetrics();

    Scheduler blocking();
  }

  private final Operations ops;

  public HttpApi(Operations ops) {
    this.ops = ops;
  }

  public DisposableServer bind(InetSocketAddress address) {
    return HttpServer.create()
        .host(address.getHostString())
        .port(address.getPort())
        .route(
            r ->
                r.get("/v1/status", (req, res) -> json(res, 200, () -> ops.status()))
                    .get("/v1/tenant", (req, res) -> json(res, 200, ops::tenants))
                    .post(
                        "/v1/tenant",
                        (req, res) ->
                            body(req, ApiModel.TenantCreateRequest.class)
                                .flatMap(
                                    b ->
                                        call(
                                            () ->
                                                ops.createTenant(
                                                    Optional.ofNullable(b.newTenantId())
                                                        .map(HttpApi::tenantId))))
                                .transform(m -> respond(res, 201, m)))
                    .get(
                        "/v1/tenant/{tenant}/timeline",
                        (req, res) ->
                            json(res, 200, () -> ops.timelines(tenantId(req.param("tenant")))))
                    .post(
                        "/v1/tenant/{tenant}/timeline",
                        (req, res) ->
                            body(req, ApiModel.TimelineCreateRequest.class)
                                .flatMap(
                                    b -> call(() -> ops.branch(tenantId(req.param("tenant")), b)))
                                .transform(m -> respond(res, 201, m)))
                    .get(
                        "/v1/tenant/{tenant}/timeline/{timeline}",
                        (req, res) ->
                            json(
                                res,
                                200,
                                () ->
                                    ops.timeline(
                                        tenantId(req.param("tenant")),
                                        timelineId(req.param("timeline")),
                                        true)))
                    .post(
                        "/v1/tenant/{tenant}/timeline/{timeline}/checkpoint",
                        (req, res) ->
                            json(
                                res,
                                200,
                                () ->
                                    ops.checkpoint(
                                        tenantId(req.param("tenant")),
                                        timelineId(req.param("timeline")))))
                    .put(
                        "/v1/tenant/{tenant}/timeline/{timeline}/wal_source",
                        (req, res) ->
                            body(req, ApiModel.WalSource.class)
                                .flatMap(
                                    b ->
                                        call(
                                            () ->
                                                ops.startWalReceiver(
                                                    tenantId(req.param("tenant")),
                                                    timelineId(req.param("timeline")),
                                                    checkSource(b))))
                                .transform(m -> respond(res, 200, m)))
                    .delete(
                        "/v1/tenant/{tenant}/timeline/{timeline}/wal_source",
                        (req, res) ->
                            json(
                                res,
                                200,
                                () ->
                                    ops.stopWalReceiver(
                                        tenantId(req.param("tenant")),
                                        timelineId(req.param("timeline")))))
                    .get(
                        "/metrics",
                        (req, res) ->
                            call(ops::scrapeMetrics)
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
                                    404, "no such endpoint: " + req.method() + " " + req.uri()))))
        .bindNow();
  }

  static TenantId tenantId(String s) {
    try {
      return TenantId.parse(s);
    } catch (IllegalArgumentException e) {
      throw ApiException.badRequest(e.getMessage());
    }
  }

  static TimelineId timelineId(String s) {
    try {
      return TimelineId.parse(s);
    } catch (IllegalArgumentException e) {
      throw ApiException.badRequest(e.getMessage());
    }
  }

  /** Replication slot names PostgreSQL accepts. */
  private static final Pattern SLOT_NAME = Pattern.compile("[a-z0-9_]{1,63}");

  /** Refuses a WAL source the receiver could never use: it would retry it forever. */
  static ApiModel.WalSource checkSource(ApiModel.WalSource s) {
    if (s.host() == null || s.host().isBlank()) {
      throw ApiException.badRequest("wal_source needs a host");
    }
    if (s.port() == null || s.port() < 1 || s.port() > 65535) {
      throw ApiException.badRequest(
          "wal_source needs a port between 1 and 65535"
              + (s.port() == null ? "" : ", got " + s.port()));
    }
    if (s.user() != null && s.user().isEmpty()) {
      throw ApiException.badRequest("wal_source user must not be empty");
    }
    if (s.applicationName() != null && s.applicationName().isEmpty()) {
      throw ApiException.badRequest("wal_source application_name must not be empty");
    }
    if (s.slot() != null && !SLOT_NAME.matcher(s.slot()).matches()) {
      throw ApiException.badRequest(
          "invalid slot name \""
              + s.slot()
              + "\": lower-case letters, digits and underscores, at most 63");
    }
    return s;
  }

  private <T> Mono<T> call(Callable<T> work) {
    return Mono.fromCallable(work).subscribeOn(ops.blocking());
  }

  private <T> Mono<Void> json(HttpServerResponse res, int status, Callable<T> work) {
    return respond(res, status, call(work));
  }

  private static <T> Mono<Void> respond(HttpServerResponse res, int status, Mono<T> result) {
    return result.flatMap(v -> send(res, status, v)).onErrorResume(e -> error(res, e));
  }

  private static Mono<Void> send(HttpServerResponse res, int status, Object body) {
    byte[] bytes;
    try {
      bytes = ApiModel.JSON.writeValueAsBytes(body);
    } catch (JsonProcessingException e) {
      return Mono.error(e);
    }
    NettyOutbound out =
        res.status(HttpResponseStatus.valueOf(status))
            .header("content-type", "application/json")
            .sendByteArray(Mono.just(bytes));
    return Mono.from(out);
  }

  private static Mono<Void> error(HttpServerResponse res, Throwable e) {
    ApiException api =
        switch (e) {
          case ApiException a -> a;
          case LayerStoreException l -> ApiException.of(l);
          case IllegalArgumentException i -> ApiException.badRequest(i.getMessage());
          default -> {
            log.error("request failed", e);
            yield new ApiException(500, "internal error: " + e);
          }
        };
    if (api.status() >= 500) {
      log.warn("API error {}: {}", api.status(), api.getMessage());
    }
    return send(res, api.status(), new ApiModel.ErrorBody(api.getMessage()));
  }

  /**
   * Reads a JSON object of at most {@link #MAX_BODY} bytes into {@code type} with {@link
   * ApiModel#REQUESTS}; every way it can be wrong is an {@link ApiException} with a one-line
   * message (413 when too large, 400 otherwise).
   */
  private static <T> Mono<T> body(HttpServerRequest req, Class<T> type) {
    return req.receive()
        .asByteArray()
        .collect(
            ByteArrayOutputStream::new,
            (out, chunk) -> {
              if (out.size() + chunk.length > MAX_BODY) {
                throw new ApiException(413, "request body larger than " + MAX_BODY + " bytes");
              }
              out.writeBytes(chunk);
            })
        .map(out -> parse(out.toByteArray(), type));
  }

  static <T> T parse(byte[] b, Class<T> type) {
    if (b.length == 0) {
      throw ApiException.badRequest("a JSON body is required");
    }
    JsonNode tree;
    try {
      tree = ApiModel.REQUESTS.readTree(b);
    } catch (MismatchedInputException e) {
      // The only mismatch reading a tree: FAIL_ON_TRAILING_TOKENS.
      throw ApiException.badRequest("invalid JSON: more content after the JSON object");
    } catch (JsonProcessingException e) {
      throw ApiException.badRequest("invalid JSON: " + e.getOriginalMessage());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    if (tree == null || tree.isMissingNode()) {
      throw ApiException.badRequest("a JSON body is required");
    }
    if (!tree.isObject()) {
      throw ApiException.badRequest(
          "the body must be a JSON object, not "
              + tree.getNodeType().name().toLowerCase(Locale.ROOT));
    }
    T value;
    try {
      value = ApiModel.REQUESTS.treeToValue(tree, type);
    } catch (UnrecognizedPropertyException e) {
      throw ApiException.badRequest("unknown field '" + e.getPropertyName() + "'");
    } catch (MismatchedInputException e) {
      Class<?> t = e.getTargetType();
      String expected =
          t == String.class
              ? "a string"
              : t == Integer.class || t == int.class || t == Long.class || t == long.class
                  ? "an integer"
                  : t == Boolean.class || t == boolean.class ? "a boolean" : "of another type";
      throw ApiException.badRequest("field '" + field(e) + "' must be " + expected);
    } catch (JsonProcessingException e) {
      throw ApiException.badRequest("invalid JSON: " + e.getOriginalMessage());
    }
    tree.properties()
        .forEach(
            f -> {
              if (f.getValue().isNull()) {
                throw ApiException.badRequest(
                    "field '" + f.getKey() + "' must not be null (leave an optional field out)");
              }
            });
    return value;
  }

  /** The JSON path of a mapping problem ({@code port}, {@code a.b}, {@code a[0]}). */
  private static String field(MismatchedInputException e) {
    StringBuilder sb = new StringBuilder();
    for (JsonMappingException.Reference r : e.getPath()) {
      if (r.getFieldName() != null) {
        sb.append(sb.isEmpty() ? "" : ".").append(r.getFieldName());
      } else if (r.getIndex() >= 0) {
        sb.append('[').append(r.getIndex()).append(']');
      }
    }
    return sb.toString();
  }
}
