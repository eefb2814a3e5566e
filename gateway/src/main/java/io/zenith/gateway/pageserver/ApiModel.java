package io.zenith.gateway.pageserver;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.zenith.gateway.http.Json;

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

  public record WalSource(
      String host, Integer port, String user, String slot, String applicationName) {}

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
