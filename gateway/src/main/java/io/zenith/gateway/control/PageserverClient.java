package io.zenith.gateway.control;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectWriter;
import io.netty.handler.codec.http.HttpMethod;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.Serial;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import reactor.core.publisher.Mono;
import reactor.netty.ByteBufFlux;
import reactor.netty.http.client.HttpClient;

/**
 * The pageserver's management API ({@code docs/api/pageserver.yaml}) over reactor-netty's {@link
 * HttpClient}, for the CLI: blocking calls (never call them on an event loop). An error response
 * becomes an {@link ApiError} with the server's one-line message; a pageserver that does not answer
 * becomes a {@link ControlPlaneException} saying how to start it. Thread-safe.
 */
public final class PageserverClient {
  private static final Duration TIMEOUT = Duration.ofMinutes(5);

  /** The API refuses {@code null}s in requests: an absent optional field is left out. */
  private static final ObjectWriter REQUESTS =
      ApiModel.JSON.copy().setDefaultPropertyInclusion(JsonInclude.Include.NON_NULL).writer();

  private final String base;
  private HttpClient http; // made on first use: commands that do not call it start faster

  /** The API answered with an error status. */
  public static final class ApiError extends RuntimeException {
    @Serial private static final long serialVersionUID = 1L;
    private final int status;

    ApiError(int status, String message) {
      super(message);
      this.status = status;
    }

    public int status() {
      return status;
    }
  }

  public PageserverClient(InetSocketAddress address) {
    this.base = "http://" + address.getHostString() + ":" + address.getPort();
  }

  private synchronized HttpClient http() {
    if (http == null) {
      http =
          HttpClient.create()
              .baseUrl(base)
              .responseTimeout(TIMEOUT)
              .option(io.netty.channel.ChannelOption.CONNECT_TIMEOUT_MILLIS, 5000);
    }
    return http;
  }

  public String baseUrl() {
    return base;
  }

  public ApiModel.Status status() {
    return call(HttpMethod.GET, "/v1/status", null, new TypeReference<ApiModel.Status>() {});
  }

  /** True if a pageserver answers {@code /v1/status}; never throws. */
  public boolean isUp() {
    try {
      status();
      return true;
    } catch (RuntimeException e) {
      return false;
    }
  }

  public List<ApiModel.TenantInfo> tenants() {
    return call(HttpMethod.GET, "/v1/tenant", null, new TypeReference<>() {});
  }

  public List<ApiModel.TimelineInfo> timelines(TenantId tenant) {
    return call(
        HttpMethod.GET, "/v1/tenant/" + tenant + "/timeline", null, new TypeReference<>() {});
  }

  public ApiModel.TimelineInfo timeline(TenantId tenant, TimelineId timeline) {
    return call(
        HttpMethod.GET,
        "/v1/tenant/" + tenant + "/timeline/" + timeline,
        null,
        new TypeReference<>() {});
  }

  public ApiModel.TimelineInfo branch(TenantId tenant, ApiModel.TimelineCreateRequest request) {
    return call(
        HttpMethod.POST, "/v1/tenant/" + tenant + "/timeline", request, new TypeReference<>() {});
  }

  public ApiModel.TimelineInfo checkpoint(TenantId tenant, TimelineId timeline) {
    return call(
        HttpMethod.POST,
        "/v1/tenant/" + tenant + "/timeline/" + timeline + "/checkpoint",
        null,
        new TypeReference<>() {});
  }

  public ApiModel.TimelineInfo setWalSource(
      TenantId tenant, TimelineId timeline, ApiModel.WalSource source) {
    return call(
        HttpMethod.PUT,
        "/v1/tenant/" + tenant + "/timeline/" + timeline + "/wal_source",
        source,
        new TypeReference<>() {});
  }

  public ApiModel.TimelineInfo removeWalSource(TenantId tenant, TimelineId timeline) {
    return call(
        HttpMethod.DELETE,
        "/v1/tenant/" + tenant + "/timeline/" + timeline + "/wal_source",
        null,
        new TypeReference<>() {});
  }

  private record Response(int status, String body) {}

  private <T> T call(HttpMethod method, String path, Object body, TypeReference<T> type) {
    byte[] json;
    try {
      json = body == null ? null : REQUESTS.writeValueAsBytes(body);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
    Response r;
    try {
      HttpClient client =
          json == null ? http() : http().headers(h -> h.set("content-type", "application/json"));
      r =
          client
              .request(method)
              .uri(path)
              .send(
                  json == null
                      ? ByteBufFlux.empty()
                      : ByteBufFlux.fromString(Mono.just(new String(json, StandardCharsets.UTF_8))))
              .responseSingle(
                  (res, content) ->
                      content
                          .asString(StandardCharsets.UTF_8)
                          .defaultIfEmpty("")
                          .map(s -> new Response(res.status().code(), s)))
              .block(TIMEOUT.plusSeconds(10));
    } catch (RuntimeException e) {
      throw notAnswering(e);
    }
    if (r == null) {
      throw new ControlPlaneException("the pageserver at " + base + " sent no response");
    }
    if (r.status() >= 400) {
      String message;
      try {
        message = ApiModel.JSON.readValue(r.body(), ApiModel.ErrorBody.class).error();
      } catch (IOException e) {
        message = r.body().isBlank() ? "HTTP " + r.status() : r.body().strip();
      }
      throw new ApiError(r.status(), message);
    }
    try {
      return ApiModel.JSON.readValue(r.body(), type);
    } catch (IOException e) {
      throw new ControlPlaneException(
          "unexpected answer from the pageserver to "
              + method
              + " "
              + path
              + ": "
              + e.getMessage());
    }
  }

  private ControlPlaneException notAnswering(RuntimeException e) {
    Throwable c = e;
    while (c.getCause() != null && !(c instanceof ConnectException)) {
      c = c.getCause();
    }
    if (c instanceof ConnectException
        || String.valueOf(e.getMessage()).contains("Connection refused")) {
      return new ControlPlaneException(
          "the pageserver is not running (nothing answers at "
              + base
              + "); start it with `zenith start`");
    }
    return new ControlPlaneException(
        "the pageserver at " + base + " did not answer: " + e.getMessage(), e);
  }
}
