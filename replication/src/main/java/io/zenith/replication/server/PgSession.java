package io.zenith.replication.server;

import java.net.SocketAddress;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * A client session as its StartupMessage described it. Immutable and thread-safe.
 *
 * @param id connection id ({@code s1}, {@code s2}, ...) used in logs
 * @param user startup parameter {@code user}
 * @param database startup parameter {@code database} (defaults to the user, as in PostgreSQL)
 * @param applicationName startup parameter {@code application_name}, empty if not given
 * @param parameters every startup parameter as sent
 * @param remoteAddress the client's address
 */
public record PgSession(
    String id,
    String user,
    String database,
    String applicationName,
    Map<String, String> parameters,
    SocketAddress remoteAddress) {

  public PgSession {
    Objects.requireNonNull(id);
    Objects.requireNonNull(user);
    Objects.requireNonNull(database);
    Objects.requireNonNull(applicationName);
    parameters = Collections.unmodifiableMap(new LinkedHashMap<>(parameters));
  }

  /** Whether the client asked for a replication connection ({@code replication=true/database}). */
  public boolean replication() {
    String r = parameters.getOrDefault("replication", "false").toLowerCase(java.util.Locale.ROOT);
    return switch (r) {
      case "true", "on", "yes", "1", "database" -> true;
      default -> false;
    };
  }
}
