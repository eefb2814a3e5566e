package io.zenith.gateway.control;

import com.fasterxml.jackson.core.type.TypeReference;
import io.netty.handler.codec.http.HttpMethod;
import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.net.InetSocketAddress;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.function.Supplier;
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

  /** A client without a token. */
  public PageserverClient(InetSocketAddress address) {
    this(address, () -> null);
  }

  /**
   * @param token the bearer token of each call (ADR 0016), or null for none
   */
  public PageserverClient(InetSocketAddress address, Supplier<@Nullable String> token) {
    this.http =
        new JsonHttpClient(
            address,
            "the pageserver",
            "start it with `zenith start`",
            TIMEOUT,
            ControlPlaneException::new,
            token);
  }

  public String baseUrl() {
    return http.baseUrl();
  }

  public ApiModel.Status status() {
    return call(HttpMethod.GET, "/v1/status", null, new TypeReference<ApiModel.Status>() {});
  }

  /**
   * True if a pageserver answers {@code /v1/status}, even with an error (one that refuses this
   * token still listens there); never throws.
   */
  public boolean isUp() {
    return http.answers("/v1/status");
  }

  public List<ApiModel.TenantInfo> tenants() {
    return call(HttpMethod.GET, "/v1/tenant", null, new TypeReference<>() {});
  }

  /** Creates a tenant (with a root timeline from a fresh initdb when the request names one). */
  public ApiModel.TenantInfo createTenant(ApiModel.TenantCreateRequest request) {
    return call(HttpMethod.POST, "/v1/tenant", request, new TypeReference<>() {});
  }

  /** Attaches a tenant in {@code generation}, which {@link Generations#issue} issued. */
  public ApiModel.TenantInfo attachTenant(TenantId tenant, int generation) {
    return call(
        HttpMethod.POST,
        "/v1/tenant/" + tenant + "/attach",
        new ApiModel.TenantAttachRequest(generation),
        new TypeReference<>() {});
  }

  /** Deletes a tenant with all its timelines (404 for an unknown one). */
  public ApiModel.TenantDeleted deleteTenant(TenantId tenant) {
    return call(HttpMethod.DELETE, "/v1/tenant/" + tenant, null, new TypeReference<>() {});
  }

  /** A tenant's state on the pageserver (ADR 0027). */
  public ApiModel.TenantDetail tenant(TenantId tenant) {
    return call(HttpMethod.GET, "/v1/tenant/" + tenant, null, new TypeReference<>() {});
  }

  /** Detaches a tenant (its uploads caught up first); its remote objects stay. */
  public ApiModel.TenantDetached detachTenant(TenantId tenant) {
    return call(
        HttpMethod.POST, "/v1/tenant/" + tenant + "/detach", null, new TypeReference<>() {});
  }

  public List<ApiModel.TimelineInfo> timelines(TenantId tenant) {
    return call(
        HttpMethod.GET, "/v1/tenant/" + tenant + "/timeline", null, new TypeReference<>() {});
  }

  /** The timeline's positions and state, without its logical size (cheap enough to poll). */
  public ApiModel.TimelineInfo timeline(TenantId tenant, TimelineId timeline) {
    return timeline(tenant, timeline, false);
  }

  /** The timeline; with its logical size if {@code withSize} (a walk of every relation). */
  public ApiModel.TimelineInfo timeline(TenantId tenant, TimelineId timeline, boolean withSize) {
    return call(
        HttpMethod.GET,
        "/v1/tenant/" + tenant + "/timeline/" + timeline + (withSize ? "?include-size=true" : ""),
        null,
        new TypeReference<>() {});
  }

  public ApiModel.TimelineInfo branch(TenantId tenant, ApiModel.TimelineCreateRequest request) {
    return call(
        HttpMethod.POST, "/v1/tenant/" + tenant + "/timeline", request, new TypeReference<>() {});
  }

  /** Pushes a snapshot of a timeline to the location the request names (ADR 0028). */
  public ApiModel.SnapshotPushed pushSnapshot(
      TenantId tenant, TimelineId timeline, ApiModel.SnapshotPushRequest request) {
    return call(
        HttpMethod.POST,
        "/v1/tenant/" + tenant + "/timeline/" + timeline + "/snapshot",
        request,
        new TypeReference<>() {});
  }

  /** Imports a snapshot as a new root timeline (ADR 0028). */
  public ApiModel.TimelineInfo pullSnapshot(TenantId tenant, ApiModel.SnapshotPullRequest request) {
    return call(
        HttpMethod.POST, "/v1/tenant/" + tenant + "/snapshot", request, new TypeReference<>() {});
  }

  /** Deletes a timeline (409 while child timelines branch from it, 404 for an unknown one). */
  public ApiModel.TimelineDeleted deleteTimeline(TenantId tenant, TimelineId timeline) {
    return call(
        HttpMethod.DELETE,
        "/v1/tenant/" + tenant + "/timeline/" + timeline,
        null,
        new TypeReference<>() {});
  }

  public ApiModel.TimelineInfo checkpoint(TenantId tenant, TimelineId timeline) {
    return call(
        HttpMethod.POST,
        "/v1/tenant/" + tenant + "/timeline/" + timeline + "/checkpoint",
        null,
        new TypeReference<>() {});
  }

  /** Ingests the timeline's offloaded WAL after its last record (restore, ADR 0029). */
  public ApiModel.TimelineInfo restoreOffloadedWal(TenantId tenant, TimelineId timeline) {
    return call(
        HttpMethod.POST,
        "/v1/tenant/" + tenant + "/timeline/" + timeline + "/restore_offloaded_wal",
        null,
        new TypeReference<>() {});
  }

  public ApiModel.CompactionInfo compact(TenantId tenant, TimelineId timeline) {
    return call(
        HttpMethod.POST,
        "/v1/tenant/" + tenant + "/timeline/" + timeline + "/compact",
        null,
        new TypeReference<>() {});
  }

  public ApiModel.GcInfo gc(TenantId tenant, TimelineId timeline) {
    return call(
        HttpMethod.POST,
        "/v1/tenant/" + tenant + "/timeline/" + timeline + "/do_gc",
        null,
        new TypeReference<>() {});
  }

  /** The timeline's own registered layer files ({@code GET …/layer}). */
  public ApiModel.LayerList layers(TenantId tenant, TimelineId timeline) {
    return call(
        HttpMethod.GET,
        "/v1/tenant/" + tenant + "/timeline/" + timeline + "/layer",
        null,
        new TypeReference<>() {});
  }

  /** Where the timeline shows its state at {@code time} ({@code lsn_by_timestamp}). */
  public ApiModel.LsnByTimestamp lsnByTimestamp(
      TenantId tenant, TimelineId timeline, Instant time) {
    return call(
        HttpMethod.GET,
        "/v1/tenant/"
            + tenant
            + "/timeline/"
            + timeline
            + "/lsn_by_timestamp?timestamp="
            + URLEncoder.encode(time.toString(), StandardCharsets.UTF_8),
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

  /**
   * The pageserver's view of {@code branch} (its {@code timeline}); a timeline it does not have is
   * a {@link ControlPlaneException} naming the branch.
   */
  ApiModel.TimelineInfo branchTimeline(TenantId tenant, String branch, TimelineId timeline) {
    try {
      return timeline(tenant, timeline);
    } catch (JsonHttpClient.ApiError e) {
      if (e.status() == 404) {
        throw new ControlPlaneException(
            "branch '"
                + branch
                + "' (timeline "
                + timeline
                + ") does not exist on the pageserver: "
                + e.getMessage());
      }
      throw new ControlPlaneException("the pageserver: " + e.getMessage());
    }
  }

  /**
   * Checks {@code initdb_lsn <= lsn <= last_record_lsn} of the timeline; {@code what} names the
   * operation in the error ("cannot <what> <branch> at <lsn>: ...").
   */
  void checkLsnOnTimeline(
      TenantId tenant, String branch, TimelineId timeline, Lsn lsn, String what) {
    ApiModel.TimelineInfo info = branchTimeline(tenant, branch, timeline);
    Lsn first = Lsn.parse(info.initdbLsn());
    Lsn last = Lsn.parse(info.lastRecordLsn());
    String cannot = "cannot " + what + " " + branch + " at " + lsn + ": ";
    if (lsn.isBefore(first)) {
      throw new ControlPlaneException(
          cannot + "that is before its history starts at " + first + " (initdb)");
    }
    if (lsn.isAfter(last)) {
      throw new ControlPlaneException(cannot + branch + " has WAL only up to " + last);
    }
  }

  private <T> T call(HttpMethod method, String path, @Nullable Object body, TypeReference<T> type) {
    return http.call(method, path, body, type);
  }
}
