package io.zenith.gateway.pageserver;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.zenith.layer.LayerStoreException;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.ByteArrayOutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
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

  private static ApiModel.WalSource checkSource(ApiModel.WalSource s) {
    if (s.host() == null || s.host().isBlank()) {
      throw ApiException.badRequest("wal_source needs a host");
    }
    if (s.port() == null || s.port() < 1 || s.port() > 65535) {
      throw ApiException.badRequest("wal_source needs a port between 1 and 65535");
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
          case UnrecognizedPropertyException u ->
              ApiException.badRequest("unknown field '" + u.getPropertyName() + "'");
          case JsonProcessingException j ->
              ApiException.badRequest("invalid JSON: " + j.getOriginalMessage());
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

  /** Reads a JSON body of at most {@link #MAX_BODY} bytes. */
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
        .map(
            out -> {
              byte[] b = out.toByteArray();
              if (b.length == 0) {
                throw ApiException.badRequest("a JSON body is required");
              }
              try {
                T v = ApiModel.JSON.readValue(b, type);
                if (v == null) {
                  throw ApiException.badRequest("a JSON object is required");
                }
                return v;
              } catch (JsonProcessingException e) {
                throw new RuntimeException(e);
              } catch (java.io.IOException e) {
                throw new RuntimeException(new String(b, StandardCharsets.UTF_8), e);
              }
            })
        .onErrorMap(
            RuntimeException.class, e -> e.getCause() instanceof JsonProcessingException j ? j : e);
  }
}
