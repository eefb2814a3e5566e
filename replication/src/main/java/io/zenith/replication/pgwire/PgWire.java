package io.zenith.replication.pgwire;

import java.time.Instant;
import java.time.temporal.ChronoUnit;

/**
 * Constants of the PostgreSQL frontend/backend protocol version 3.0 as this module speaks it.
 *
 * <p>Every message after the startup phase is a type byte, an int32 length that counts itself and
 * the body but not the type byte, then the body; all integers are big-endian (network order).
 * Startup-phase messages (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage) have no type
 * byte. See {@code doc/src/sgml/protocol.sgml} of the PostgreSQL source.
 */
public final class PgWire {
  private PgWire() {}

  /** Protocol 3.0 as sent in a StartupMessage (major 3 in the high 16 bits, minor 0). */
  public static final int PROTOCOL_3_0 = 3 << 16;

  /** The request code of an SSLRequest (1234.5679). */
  public static final int SSL_REQUEST_CODE = (1234 << 16) | 5679;

  /** The request code of a GSSENCRequest (1234.5680). */
  public static final int GSSENC_REQUEST_CODE = (1234 << 16) | 5680;

  /** The request code of a CancelRequest (1234.5678). */
  public static final int CANCEL_REQUEST_CODE = (1234 << 16) | 5678;

  /**
   * Largest startup-phase packet, length word included; PostgreSQL's {@code
   * MAX_STARTUP_PACKET_LENGTH} plus the length word.
   */
  public static final int MAX_STARTUP_PACKET_SIZE = 10_000 + 4;

  /**
   * Default largest message either side accepts, length word included. WAL arrives in messages of
   * at most 128 KiB plus headers (walsender's {@code MAX_SEND_SIZE}); 16 MiB leaves room for rows
   * and copy data without letting a peer make us allocate without bound.
   */
  public static final int DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;

  /** Smallest value {@code maxMessageSize} may be configured to. */
  public static final int MIN_MAX_MESSAGE_SIZE = 1024;

  /** The PostgreSQL epoch: 2000-01-01T00:00:00Z; protocol timestamps count microseconds from it. */
  public static final Instant PG_EPOCH = Instant.parse("2000-01-01T00:00:00Z");

  /** Microseconds since {@link #PG_EPOCH}, as the replication protocol's timestamps carry. */
  public static long toPgMicros(Instant t) {
    return ChronoUnit.MICROS.between(PG_EPOCH, t);
  }

  /** The instant a replication-protocol timestamp denotes. */
  public static Instant fromPgMicros(long micros) {
    return PG_EPOCH.plus(micros, ChronoUnit.MICROS);
  }

  static void checkMaxMessageSize(int maxMessageSize) {
    if (maxMessageSize < MIN_MAX_MESSAGE_SIZE) {
      throw new IllegalArgumentException(
          "maxMessageSize must be at least " + MIN_MAX_MESSAGE_SIZE + ", got " + maxMessageSize);
    }
  }
}
