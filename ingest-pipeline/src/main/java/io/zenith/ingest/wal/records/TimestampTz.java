package io.zenith.ingest.wal.records;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.Locale;

/**
 * A PostgreSQL {@code TimestampTz} as stored in WAL: microseconds since 2000-01-01 00:00:00 UTC.
 *
 * <p>{@link #toString()} prints it the way {@code pg_waldump}'s {@code timestamptz_to_str} does
 * ({@code 2024-05-01 12:34:56.123456 UTC}), always in UTC so that output does not depend on the
 * machine's time zone; run {@code pg_waldump} with {@code TZ=UTC} to compare. Immutable and
 * thread-safe.
 *
 * @param micros microseconds since the PostgreSQL epoch; 0 is the epoch itself (and what PostgreSQL
 *     stores for "no timestamp")
 */
public record TimestampTz(long micros) {
  /** 2000-01-01 00:00:00 UTC in Unix seconds. */
  public static final long POSTGRES_EPOCH_UNIX_SECONDS = 946_684_800L;

  private static final long USECS_PER_SEC = 1_000_000L;
  private static final DateTimeFormatter FORMAT =
      DateTimeFormatter.ofPattern("uuuu-MM-dd HH:mm:ss", Locale.ROOT).withZone(ZoneOffset.UTC);

  public Instant toInstant() {
    return Instant.ofEpochSecond(POSTGRES_EPOCH_UNIX_SECONDS).plus(micros, ChronoUnit.MICROS);
  }

  @Override
  public String toString() {
    // Truncating division and remainder, as the C code does, so output matches for any value.
    long seconds = micros / USECS_PER_SEC + POSTGRES_EPOCH_UNIX_SECONDS;
    int fraction = (int) (micros % USECS_PER_SEC);
    return FORMAT.format(Instant.ofEpochSecond(seconds))
        + String.format(Locale.ROOT, ".%06d", fraction)
        + " UTC";
  }
}
