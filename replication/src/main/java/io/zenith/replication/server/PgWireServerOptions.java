package io.zenith.replication.server;

import io.zenith.replication.pgwire.PgWire;
import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * Configuration of a {@link PgWireServer}. Build with {@link #builder()}; defaults are on the
 * builder's setters. Immutable and thread-safe.
 *
 * @param host address to listen on
 * @param port TCP port; 0 picks a free one (see {@link PgWireServer#port()})
 * @param authenticator how sessions authenticate
 * @param serverParameters ParameterStatus values sent after authentication
 * @param maxMessageSize largest Query or CopyData message accepted from clients
 * @param keepaliveInterval a replication stream sends a PrimaryKeepalive when it sent nothing for
 *     this long; zero: never
 * @param walSenderTimeout PostgreSQL's {@code wal_sender_timeout}: a replication client that sent
 *     nothing for half of it is asked for a reply, and for all of it is disconnected; zero: never
 */
public record PgWireServerOptions(
    String host,
    int port,
    Authenticator authenticator,
    Map<String, String> serverParameters,
    int maxMessageSize,
    Duration keepaliveInterval,
    Duration walSenderTimeout) {

  /**
   * What the server reports by default: enough for psql and libpq to treat it as a PostgreSQL 15
   * server speaking UTF-8 with ISO dates.
   */
  public static final Map<String, String> DEFAULT_SERVER_PARAMETERS;

  static {
    Map<String, String> p = new LinkedHashMap<>();
    p.put("server_version", "15.0 (Zenith)");
    p.put("server_encoding", "UTF8");
    p.put("client_encoding", "UTF8");
    p.put("DateStyle", "ISO, MDY");
    p.put("IntervalStyle", "postgres");
    p.put("TimeZone", "UTC");
    p.put("integer_datetimes", "on");
    p.put("standard_conforming_strings", "on");
    p.put("is_superuser", "off");
    p.put("default_transaction_read_only", "off");
    p.put("in_hot_standby", "off");
    DEFAULT_SERVER_PARAMETERS = Collections.unmodifiableMap(p);
  }

  public PgWireServerOptions {
    Objects.requireNonNull(host);
    Objects.requireNonNull(authenticator);
    serverParameters = Collections.unmodifiableMap(new LinkedHashMap<>(serverParameters));
    requireNotNegative("keepaliveInterval", keepaliveInterval);
    requireNotNegative("walSenderTimeout", walSenderTimeout);
  }

  private static void requireNotNegative(String name, Duration d) {
    Objects.requireNonNull(d, name);
    if (d.isNegative()) {
      throw new IllegalArgumentException(name + " must not be negative: " + d);
    }
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Collects options; {@link #build()} checks them. Not thread-safe. */
  public static final class Builder {
    private String host = "127.0.0.1";
    private int port;
    private Authenticator authenticator = Authenticator.trust();
    private final Map<String, String> serverParameters =
        new LinkedHashMap<>(DEFAULT_SERVER_PARAMETERS);
    private int maxMessageSize = PgWire.DEFAULT_MAX_MESSAGE_SIZE;
    private Duration keepaliveInterval = Duration.ofSeconds(10);
    private Duration walSenderTimeout = Duration.ofSeconds(60);

    private Builder() {}

    /** Default {@code 127.0.0.1}. */
    public Builder host(String host) {
      this.host = host;
      return this;
    }

    /** Default 0: a free port. */
    public Builder port(int port) {
      this.port = port;
      return this;
    }

    /** Default {@link Authenticator#trust()}. */
    public Builder authenticator(Authenticator authenticator) {
      this.authenticator = authenticator;
      return this;
    }

    /** Sets or overrides one reported parameter (defaults: {@link #DEFAULT_SERVER_PARAMETERS}). */
    public Builder serverParameter(String name, String value) {
      serverParameters.put(name, value);
      return this;
    }

    /** Default {@link PgWire#DEFAULT_MAX_MESSAGE_SIZE}. */
    public Builder maxMessageSize(int maxMessageSize) {
      this.maxMessageSize = maxMessageSize;
      return this;
    }

    /**
     * Default 10 s (PostgreSQL sends none between pings; a safekeeper's clients learn its WAL end).
     */
    public Builder keepaliveInterval(Duration keepaliveInterval) {
      this.keepaliveInterval = keepaliveInterval;
      return this;
    }

    /** Default 60 s, as PostgreSQL's {@code wal_sender_timeout}. */
    public Builder walSenderTimeout(Duration walSenderTimeout) {
      this.walSenderTimeout = walSenderTimeout;
      return this;
    }

    public PgWireServerOptions build() {
      if (port < 0 || port > 65535) {
        throw new IllegalArgumentException("port must be 0 to 65535, got " + port);
      }
      if (maxMessageSize < PgWire.MIN_MAX_MESSAGE_SIZE) {
        throw new IllegalArgumentException(
            "maxMessageSize must be at least "
                + PgWire.MIN_MAX_MESSAGE_SIZE
                + ": "
                + maxMessageSize);
      }
      return new PgWireServerOptions(
          host,
          port,
          authenticator,
          serverParameters,
          maxMessageSize,
          keepaliveInterval,
          walSenderTimeout);
    }
  }
}
