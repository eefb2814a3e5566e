package io.zenith.gateway.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The JSON of Zenith's HTTP APIs: snake_case names, LSNs and ids as strings. Answers are written
 * and read by {@link #MAPPER}, which ignores fields it does not know (a newer server may add some);
 * requests are read by {@link #parseRequest}, which takes the types of the API literally.
 */
public final class Json {
  private Json() {}

  /** Largest request body a server accepts. */
  public static final int MAX_BODY = 64 * 1024;

  /** Writes answers; reads answers and files leniently. Thread-safe once configured. */
  public static final ObjectMapper MAPPER =
      JsonMapper.builder()
          .propertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
          .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
          .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
          .build();

  /**
   * The mapper of request bodies: one JSON value and nothing after it, no duplicate fields, no
   * unknown fields, and no conversions between types: {@code "5432"} is not a port, {@code 5432.5}
   * is not an integer, {@code 5} is not an id. ({@link #parseRequest} also refuses {@code null}s:
   * an optional field is left out.) Thread-safe once configured.
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

  /** The body of every error answer. */
  public record ErrorBody(String error) {}

  /**
   * Reads a request body (one JSON object) into {@code type} with {@link #REQUESTS}; every way it
   * can be wrong is a 400 {@link ApiException} with a one-line message naming the field.
   */
  public static <T> T parseRequest(byte[] b, Class<T> type) {
    if (b.length == 0) {
      throw ApiException.badRequest("a JSON body is required");
    }
    JsonNode tree;
    try {
      tree = REQUESTS.readTree(b);
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
    // Before mapping: a null inside a list or a nested object would otherwise become a null
    // element.
    String nullField = firstNull(tree, "");
    T value;
    try {
      value = REQUESTS.treeToValue(tree, type);
    } catch (UnrecognizedPropertyException e) {
      throw ApiException.badRequest("unknown field '" + e.getPropertyName() + "'");
    } catch (MismatchedInputException e) {
      Class<?> t = e.getTargetType();
      String expected =
          t == String.class
              ? "a string"
              : t == Integer.class || t == int.class || t == Long.class || t == long.class
                  ? "an integer"
                  : t == Boolean.class || t == boolean.class
                      ? "a boolean"
                      : t != null && (List.class.isAssignableFrom(t) || t.isArray())
                          ? "an array"
                          : t != null && t.isRecord() ? "an object" : "of another type";
      throw ApiException.badRequest("field '" + field(e) + "' must be " + expected);
    } catch (JsonProcessingException e) {
      throw ApiException.badRequest("invalid JSON: " + e.getOriginalMessage());
    }
    if (nullField != null) {
      throw ApiException.badRequest(
          "field '" + nullField + "' must not be null (leave an optional field out)");
    }
    return value;
  }

  /** The path of the first {@code null} in a tree, or null if there is none. */
  private static String firstNull(JsonNode n, String path) {
    if (n.isObject()) {
      for (Iterator<Map.Entry<String, JsonNode>> it = n.properties().iterator(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> f = it.next();
        String p = path.isEmpty() ? f.getKey() : path + "." + f.getKey();
        if (f.getValue().isNull()) {
          return p;
        }
        String inner = firstNull(f.getValue(), p);
        if (inner != null) {
          return inner;
        }
      }
    } else if (n.isArray()) {
      for (int i = 0; i < n.size(); i++) {
        String p = path + "[" + i + "]";
        if (n.get(i).isNull()) {
          return p;
        }
        String inner = firstNull(n.get(i), p);
        if (inner != null) {
          return inner;
        }
      }
    }
    return null;
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

  /** A tenant id from a path or a field: 400 naming it when malformed. */
  public static TenantId tenantId(String s) {
    try {
      return TenantId.parse(s);
    } catch (IllegalArgumentException e) {
      throw ApiException.badRequest(e.getMessage());
    }
  }

  public static TimelineId timelineId(String s) {
    try {
      return TimelineId.parse(s);
    } catch (IllegalArgumentException e) {
      throw ApiException.badRequest(e.getMessage());
    }
  }

  /** An LSN field: 400 naming the field when malformed. */
  public static Lsn lsn(String field, String s) {
    try {
      return Lsn.parse(s);
    } catch (IllegalArgumentException e) {
      throw ApiException.badRequest("field '" + field + "': " + e.getMessage());
    }
  }

  /** What the error messages show as the expected form of a time. */
  public static final String TIMESTAMP_EXAMPLE = "2026-12-06T10:00:00Z";

  /**
   * A wall-clock time as the APIs and the CLI take it: ISO-8601 with a zone ({@code
   * 2026-12-06T10:00:00Z}, {@code 2026-12-06T11:00:00.5+01:00}), from 1970 on (a negative Unix time
   * is a mistake, not a point in a database's history) up to the year 9999. Answers print times as
   * {@link Instant#toString()} (UTC).
   *
   * @throws ApiException 400 with a one-line message naming the text and what is expected
   */
  public static Instant timestamp(String text) {
    Instant t;
    try {
      t = OffsetDateTime.parse(text, DateTimeFormatter.ISO_OFFSET_DATE_TIME).toInstant();
    } catch (DateTimeParseException e) {
      throw ApiException.badRequest(
          "invalid timestamp \""
              + text
              + "\": expected ISO-8601 with a zone, e.g. "
              + TIMESTAMP_EXAMPLE
              + " or 2026-12-06T11:00:00+01:00");
    }
    if (t.isBefore(Instant.EPOCH)) {
      throw ApiException.badRequest(
          "invalid timestamp \"" + text + "\": before 1970-01-01T00:00:00Z");
    }
    if (t.atOffset(ZoneOffset.UTC).getYear() > 9999) {
      throw ApiException.badRequest("invalid timestamp \"" + text + "\": after the year 9999");
    }
    return t;
  }
}
