package io.zenith.gateway.http;

import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;

/**
 * Wall-clock times as the APIs and the CLI take them: ISO-8601 with a zone ({@code
 * 2026-12-06T10:00:00Z}, {@code 2026-12-06T11:00:00.5+01:00}), from 1970 on (a negative Unix time
 * is a mistake, not a point in any database's history), and printed as UTC ISO-8601. Stateless, so
 * thread-safe.
 */
public final class Timestamps {
  private Timestamps() {}

  /** What the error messages show as the expected form. */
  public static final String EXAMPLE = "2026-12-06T10:00:00Z";

  private static final int MAX_YEAR = 9999;

  /**
   * Parses a time.
   *
   * @throws IllegalArgumentException with a one-line message naming the text and what is expected
   */
  public static Instant parse(String text) {
    Instant t;
    try {
      t = OffsetDateTime.parse(text, DateTimeFormatter.ISO_OFFSET_DATE_TIME).toInstant();
    } catch (DateTimeParseException e) {
      throw new IllegalArgumentException(
          "invalid timestamp \""
              + text
              + "\": expected ISO-8601 with a zone, e.g. "
              + EXAMPLE
              + " or 2026-12-06T11:00:00+01:00");
    }
    if (t.isBefore(Instant.EPOCH)) {
      throw new IllegalArgumentException(
          "invalid timestamp \"" + text + "\": before 1970-01-01T00:00:00Z");
    }
    if (t.atOffset(java.time.ZoneOffset.UTC).getYear() > MAX_YEAR) {
      throw new IllegalArgumentException(
          "invalid timestamp \"" + text + "\": after the year " + MAX_YEAR);
    }
    return t;
  }

  /** UTC ISO-8601 ({@code 2026-12-06T10:00:00.123456Z}). */
  public static String format(Instant t) {
    return t.toString();
  }
}
