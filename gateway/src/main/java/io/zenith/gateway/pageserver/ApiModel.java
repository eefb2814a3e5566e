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

  public record TimelineCreateRequest(
      String newTimelineId, String ancestorTimelineId, String ancestorStartLsn) {}

  /**
   * Where a timeline's WAL comes from: a compute's walsender ({@code host}, {@code port}, ...) or
   * the safekeepers ({@code safekeepers}, see {@link #fromSafekeepers}).
   */
  public record WalSource(
      String host,
      Integer port,
      String user,
      String slot,
      String applicationName,
      List<SafekeeperEndpoint> safekeepers) {

    /** A compute's walsender. */
    public WalSource(String host, Integer port, String user, String slot, String applicationName) {
      this(host, port, user, slot, applicationName, null);
    }

    /** The safekeepers of the timeline (their libpq endpoints). */
    public static WalSource fromSafekeepers(List<SafekeeperEndpoint> safekeepers) {
      return new WalSource(null, null, null, null, null, List.copyOf(safekeepers));
    }
  }

  /** One safekeeper's libpq endpoint. */
  public record SafekeeperEndpoint(int id, String host, int port) {}

  public record WalReceiverInfo(String host, int port, String state, String lastError) {}

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
      WalReceiverInfo walReceiver) {}
}
