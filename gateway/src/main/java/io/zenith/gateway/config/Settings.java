package io.zenith.gateway.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * Reading the TOML files of Zenith's processes and the values in them (addresses, sizes,
 * durations). Every problem is an {@link IllegalArgumentException} with one line naming the file or
 * the key.
 */
public final class Settings {
  private Settings() {}

  /**
   * Reads {@code file} as {@code type}; unknown keys are an error (a typo must not silently fall
   * back to a default).
   *
   * @return null for an empty file
   */
  public static <T> @Nullable T read(Path file, Class<T> type) {
    try {
      return TomlMapper.builder()
          .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
          .build()
          .readValue(file.toFile(), type);
    } catch (UnrecognizedPropertyException e) {
      throw new IllegalArgumentException(file + ": unknown setting '" + e.getPropertyName() + "'");
    } catch (JsonMappingException e) {
      throw new IllegalArgumentException(file + ": " + e.getOriginalMessage());
    } catch (IOException e) {
      throw new IllegalArgumentException(file + ": " + e.getMessage());
    }
  }

  /** Converts settings records to trees and back for {@link #with}; unknown keys fail. */
  private static final ObjectMapper TREE =
      JsonMapper.builder().enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES).build();

  /**
   * A copy of the settings record {@code settings} with {@code edit} applied to its keys (as in its
   * TOML file; a null value unsets one): the withers of records with a dozen and more components
   * change their few keys here instead of each calling the canonical constructor with all of them.
   */
  public static <T extends Record> T with(
      T settings, Class<T> type, java.util.function.Consumer<ObjectNode> edit) {
    ObjectNode t = TREE.valueToTree(settings);
    edit.accept(t);
    try {
      return TREE.treeToValue(t, type);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("cannot copy " + type.getSimpleName() + ": " + e, e);
    }
  }

  /** {@code value} as a tree for {@link #with} (null: unset). */
  public static JsonNode tree(@Nullable Object value) {
    return TREE.valueToTree(value);
  }

  /** Parses {@code host:port}; throws IllegalArgumentException naming the key. */
  public static InetSocketAddress address(String key, String value) {
    int colon = value.lastIndexOf(':');
    try {
      int port = Integer.parseInt(value.substring(colon + 1));
      if (colon < 1 || port < 0 || port > 65535) {
        throw new NumberFormatException();
      }
      return new InetSocketAddress(value.substring(0, colon), port);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException(key + " = \"" + value + "\" is not host:port");
    }
  }

  private static final Pattern BYTES = Pattern.compile("(\\d+)\\s*(B|kB|KiB|MB|MiB|GB|GiB)?");
  private static final Pattern DURATION = Pattern.compile("(\\d+)\\s*(ms|s|m|h|d)");

  /** A positive size ("256MiB", "8kB", "4096"); kB, MB and GB are binary, as in PostgreSQL. */
  public static long bytes(String key, String value) {
    long n = size(key, value);
    if (n <= 0) {
      throw new IllegalArgumentException(key + " must be positive");
    }
    return n;
  }

  /** A size that may be {@code 0} ("off"). */
  public static long bytesOrZero(String key, String value) {
    return size(key, value);
  }

  private static long size(String key, String value) {
    Matcher m = BYTES.matcher(value.trim());
    if (!m.matches()) {
      throw new IllegalArgumentException(key + " = \"" + value + "\" is not a size (e.g. 256MiB)");
    }
    long mult =
        switch (m.group(2) == null ? "B" : m.group(2)) {
          case "kB", "KiB" -> 1024L;
          case "MB", "MiB" -> 1024L * 1024;
          case "GB", "GiB" -> 1024L * 1024 * 1024;
          default -> 1L;
        };
    try {
      return Math.multiplyExact(Long.parseLong(m.group(1)), mult);
    } catch (ArithmeticException | NumberFormatException e) {
      throw new IllegalArgumentException(key + " = \"" + value + "\" is too large");
    }
  }

  /** A positive duration ("10s", "5m", "250ms", "1h"). */
  public static Duration duration(String key, String value) {
    Duration d = durationOrZero(key, value);
    if (d.isZero()) {
      throw new IllegalArgumentException(
          key + " = \"" + value + "\" is not a duration (e.g. 10s, 5m)");
    }
    return d;
  }

  /** Like {@link #duration}, and "0s" (or 0 of any unit) is zero: for "never" or "none". */
  public static Duration durationOrZero(String key, String value) {
    Matcher m = DURATION.matcher(value.trim().toLowerCase(Locale.ROOT));
    if (!m.matches()) {
      throw new IllegalArgumentException(
          key + " = \"" + value + "\" is not a duration (e.g. 10s, 5m, 7d)");
    }
    long n = Long.parseLong(m.group(1));
    return switch (m.group(2)) {
      case "ms" -> Duration.ofMillis(n);
      case "s" -> Duration.ofSeconds(n);
      case "m" -> Duration.ofMinutes(n);
      case "h" -> Duration.ofHours(n);
      default -> Duration.ofDays(n);
    };
  }
}
