package io.zenith.gateway.pageserver;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.json.JsonMapper;

/**
 * The JSON bodies of the pageserver's HTTP API ({@code docs/api/pageserver.yaml}): snake_case
 * names, LSNs as PostgreSQL prints them. Requests are read by {@link #REQUESTS}, which takes the
 * types of the spec literally.
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

  /**
   * The mapper of request bodies: one JSON value and nothing after it, no duplicate fields, no
   * unknown fields, and no conversions between types: {@code "5432"} is not a port, {@code 5432.5}
   * is not an integer, {@code 5} is not an id. ({@code HttpApi} also refuses {@code null}s: an
   * optional field is left out.) Thread-safe once configured.
   */
  public static final ObjectMapper REQUESTS = strictMapper();

  private static ObjectMapper strictMapper() {
    JsonMapper m =
        JsonMapper.builder()
            .propertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT)
            .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
            .build();
    m.coercionConfigDefaults()
        .setAcceptBlankAsEmpty(false)
        .setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
        .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
        .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail)
        .setCoercion(CoercionInputShape.String, CoercionAction.Fail)
        .setCoercion(CoercionInputShape.EmptyString, CoercionAction.Fail);
    return m;
  }

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
