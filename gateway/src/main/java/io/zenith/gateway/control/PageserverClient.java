package io.zenith.gateway.control;

import com.fasterxml.jackson.core.type.TypeReference;
import io.netty.handler.codec.http.HttpMethod;
import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * The pageserver's management API ({@code docs/api/pageserver.yaml}) for the CLI, over {@link
 * JsonHttpClient}: blocking calls (never call them on an event loop). An error response becomes a
 * {@link JsonHttpClient.ApiError} with the server's one-line message; a pageserver that does not
 * answer becomes a {@link ControlPlaneException} saying how to start it. Thread-safe.
 */
public final class PageserverClient {
  private static final Duration TIMEOUT = Duration.ofMinutes(5);

  private final JsonHttpClient http;

  public PageserverClient(InetSocketAddress address) {
    this.http =
        new JsonHttpClient(
            address,
            "the pageserver",
            "start it with `zenith start`",
            TIMEOUT,
            ControlPlaneException::new);
  }

  public String baseUrl() {
    return http.baseUrl();
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

  private <T> T call(HttpMethod method, String path, @Nullable Object body, TypeReference<T> type) {
    return http.call(method, path, body, type);
  }
}
