package io.zenith.replication.client;

import io.zenith.replication.pgwire.PgWire;
import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * Where and how to connect to a PostgreSQL server. Build with {@link #builder()}; defaults are
 * documented on the builder's setters. Immutable and thread-safe.
 *
 * @param host server host name or address
 * @param port server TCP port
 * @param user role to log in as (startup parameter {@code user})
 * @param database database (startup parameter {@code database}); ignored by the server for physical
 *     replication connections
 * @param password password for {@code password} or {@code md5} authentication, or {@code null}
 * @param applicationName startup parameter {@code application_name}; for a replication connection
 *     this is the standby name {@code synchronous_standby_names} refers to
 * @param replication whether to open a physical replication connection ({@code replication=true})
 * @param connectTimeout limit for TCP connect, authentication and startup together
 * @param maxMessageSize largest server message accepted (see {@link PgWire})
 * @param extraParameters further startup parameters (GUCs such as {@code statement_timeout}), sent
 *     after the ones above
 */
public record PgConnectOptions(
    String host,
    int port,
    String user,
    String database,
    @Nullable String password,
    String applicationName,
    boolean replication,
    Duration connectTimeout,
    int maxMessageSize,
    Map<String, String> extraParameters) {

  public PgConnectOptions {
    Objects.requireNonNull(host, "host");
    Objects.requireNonNull(user, "user");
    Objects.requireNonNull(database, "database");
    Objects.requireNonNull(applicationName, "applicationName");
    Objects.requireNonNull(connectTimeout, "connectTimeout");
    extraParameters = Collections.unmodifiableMap(new LinkedHashMap<>(extraParameters));
  }

  public static Builder builder() {
    return new Builder();
  }

  /** A builder with this record's values. */
  public Builder toBuilder() {
    Builder b = new Builder();
    b.host = host;
    b.port = port;
    b.user = user;
    b.database = database;
    b.password = password;
    b.applicationName = applicationName;
    b.replication = replication;
    b.connectTimeout = connectTimeout;
    b.maxMessageSize = maxMessageSize;
    b.extraParameters.putAll(extraParameters);
    return b;
  }

  /** The same options for a physical replication connection. */
  public PgConnectOptions withReplication() {
    return toBuilder().replication(true).build();
  }

  /** {@code host:port}. */
  public String address() {
    return host.contains(":") ? "[" + host + "]:" + port : host + ":" + port;
  }

  /** The startup parameters these options send, in order. */
  Map<String, String> startupParameters() {
    Map<String, String> p = new LinkedHashMap<>();
    p.put("user", user);
    p.put("database", database);
    p.put("application_name", applicationName);
    p.put("client_encoding", "UTF8");
    if (replication) {
      p.put("replication", "true");
    }
    p.putAll(extraParameters);
    return p;
  }

  @Override
  public String toString() {
    return "PgConnectOptions["
        + user
        + "@"
        + address()
        + "/"
        + database
        + ", application_name="
        + applicationName
        + (replication ? ", replication" : "")
        + (password != null ? ", password=***" : "")
        + "]";
  }

  /** Collects options; {@link #build()} checks them. Not thread-safe. */
  public static final class Builder {
    private String host = "127.0.0.1";
    private int port = 5432;
    private @Nullable String user;
    private @Nullable String database;
    private @Nullable String password;
    private String applicationName = "zenith";
    private boolean replication;
    private Duration connectTimeout = Duration.ofSeconds(10);
    private int maxMessageSize = PgWire.DEFAULT_MAX_MESSAGE_SIZE;
    private final Map<String, String> extraParameters = new LinkedHashMap<>();

    private Builder() {}

    /** Default {@code 127.0.0.1}. */
    public Builder host(String host) {
      this.host = host;
      return this;
    }

    /** Default 5432. */
    public Builder port(int port) {
      this.port = port;
      return this;
    }

    /** Required. */
    public Builder user(String user) {
      this.user = user;
      return this;
    }

    /** Default: the user name, as libpq does. */
    public Builder database(String database) {
      this.database = database;
      return this;
    }

    /** Default none; needed only for password or md5 authentication. */
    public Builder password(@Nullable String password) {
      this.password = password;
      return this;
    }

    /** Default {@code zenith}. */
    public Builder applicationName(String applicationName) {
      this.applicationName = applicationName;
      return this;
    }

    /** Default false. */
    public Builder replication(boolean replication) {
      this.replication = replication;
      return this;
    }

    /** Default 10 s; covers TCP connect, authentication and startup. */
    public Builder connectTimeout(Duration connectTimeout) {
      this.connectTimeout = connectTimeout;
      return this;
    }

    /** Default {@link PgWire#DEFAULT_MAX_MESSAGE_SIZE}. */
    public Builder maxMessageSize(int maxMessageSize) {
      this.maxMessageSize = maxMessageSize;
      return this;
    }

    /** Adds a startup parameter (a GUC such as {@code statement_timeout}). */
    public Builder parameter(String name, String value) {
      extraParameters.put(name, value);
      return this;
    }

    public PgConnectOptions build() {
      if (user == null || user.isEmpty()) {
        throw new IllegalArgumentException("a user name is required");
      }
      if (port < 1 || port > 65535) {
        throw new IllegalArgumentException("port must be 1 to 65535, got " + port);
      }
      if (connectTimeout.isNegative() || connectTimeout.isZero()) {
        throw new IllegalArgumentException("connectTimeout must be positive: " + connectTimeout);
      }
      if (maxMessageSize < PgWire.MIN_MAX_MESSAGE_SIZE) {
        throw new IllegalArgumentException(
            "maxMessageSize must be at least "
                + PgWire.MIN_MAX_MESSAGE_SIZE
                + ": "
                + maxMessageSize);
      }
      for (String reserved :
          new String[] {"user", "database", "application_name", "replication", "client_encoding"}) {
        if (extraParameters.containsKey(reserved)) {
          throw new IllegalArgumentException(
              "startup parameter " + reserved + " is set by its own option, not parameter()");
        }
      }
      return new PgConnectOptions(
          host,
          port,
          user,
          database != null ? database : user,
          password,
          applicationName,
          replication,
          connectTimeout,
          maxMessageSize,
          extraParameters);
    }
  }
}
