package io.zenith.gateway.pageserver;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.json.JsonMapper;

/**
 * The JSON bodies of the pageserver's HTTP API ({@code docs/api/pageserver.yaml}): snake_case
 * names, unknown request fields rejected, LSNs as PostgreSQL prints them.
 */
public final class ApiModel {
  private ApiModel() {}

  /** The one mapper of the API: thread-safe once configured. */
  public static final ObjectMapper JSON =
      JsonMapper.builder()
          .propertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
          .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
          .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
          .build();

  public record Status(String id, String version, int pgVersion) {}

  public record ErrorBody(String error) {}

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
