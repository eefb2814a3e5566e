package io.zenith.gateway.pageserver;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.zenith.gateway.http.Json;
import java.util.List;

/**
 * The JSON bodies of the pageserver's HTTP API ({@code docs/api/pageserver.yaml}): snake_case
 * names, LSNs as PostgreSQL prints them. Requests are read strictly by {@link Json#parseRequest}.
 */
public final class ApiModel {
  private ApiModel() {}

  /** The API's mapper for answers and files ({@link Json#MAPPER}). */
  public static final ObjectMapper JSON = Json.MAPPER;

  public record Status(String id, String version, int pgVersion) {}

  public record TenantInfo(String id, int timelines) {}

  public record TenantCreateRequest(String newTenantId) {}

  /** The answer to a timeline's deletion. */
  public record TimelineDeleted(String tenantId, String timelineId) {}

  public record TimelineCreateRequest(
      String newTimelineId, String ancestorTimelineId, String ancestorStartLsn) {}

  /**
   * Where a timeline's WAL comes from: a compute's walsender ({@code host}, {@code port}, optional
   * {@code user}, {@code slot}, {@code applicationName}) or its safekeepers' libpq WAL services
   * ({@code safekeepers}, non-empty), never both ({@code HttpApi.checkSource}).
   */
  public record WalSource(
      String host,
      Integer port,
      String user,
      String slot,
      String applicationName,
      @JsonInclude(JsonInclude.Include.NON_NULL) List<SafekeeperEndpoint> safekeepers) {

    /** A source of safekeepers only (the control plane's shape). */
    public static WalSource fromSafekeepers(List<SafekeeperEndpoint> safekeepers) {
      return new WalSource(null, null, null, null, null, List.copyOf(safekeepers));
    }

    /** A compute's walsender. */
    public static WalSource fromCompute(
        String host, int port, String user, String slot, String applicationName) {
      return new WalSource(host, port, user, slot, applicationName, null);
    }

    /** Whether the WAL comes from safekeepers. */
    public boolean usesSafekeepers() {
      return safekeepers != null;
    }
  }

  /** A safekeeper's libpq WAL service. */
  public record SafekeeperEndpoint(Integer id, String host, Integer port) {}

  /**
   * @param host the compute's host, or the safekeeper's streamed from (tried last)
   * @param safekeeperId that safekeeper's id; null for a compute
   */
  public record WalReceiverInfo(
      String host, int port, Integer safekeeperId, String state, String lastError) {}

  public record TimelineInfo(
      String tenantId,
      String timelineId,
      String ancestorTimelineId,
      String ancestorLsn,
      String initdbLsn,
      String lastRecordLsn,
      String prevRecordLsn,
      String diskConsistentLsn,
      String remoteConsistentLsn,
      @JsonInclude(JsonInclude.Include.NON_NULL) Long logicalSize,
      String state,
      String brokenReason,
      String flushError,
      WalReceiverInfo walReceiver) {}
}
