package io.zenith.replication.server;

import io.zenith.replication.auth.AuthException;
import io.zenith.replication.auth.Claims;
import io.zenith.replication.auth.Scope;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.wal.TenantId;
import java.net.SocketAddress;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

/**
 * A client session as its StartupMessage described it. Immutable and thread-safe.
 *
 * @param id connection id ({@code s1}, {@code s2}, ...) used in logs
 * @param user startup parameter {@code user}
 * @param database startup parameter {@code database} (defaults to the user, as in PostgreSQL)
 * @param applicationName startup parameter {@code application_name}, empty if not given
 * @param parameters every startup parameter as sent
 * @param remoteAddress the client's address
 * @param claims what the session's token grants, when the server asks for one ({@link
 *     Authenticator#jwt}); empty on a server that trusts everyone
 */
public record PgSession(
    String id,
    String user,
    String database,
    String applicationName,
    Map<String, String> parameters,
    SocketAddress remoteAddress,
    Optional<Claims> claims) {

  public PgSession {
    Objects.requireNonNull(id);
    Objects.requireNonNull(claims);
    Objects.requireNonNull(user);
    Objects.requireNonNull(database);
    Objects.requireNonNull(applicationName);
    parameters = Collections.unmodifiableMap(new LinkedHashMap<>(parameters));
  }

  /** A session before authentication: no claims yet. */
  public PgSession(
      String id,
      String user,
      String database,
      String applicationName,
      Map<String, String> parameters,
      SocketAddress remoteAddress) {
    this(id, user, database, applicationName, parameters, remoteAddress, Optional.empty());
  }

  /** This session, authenticated with {@code claims}. */
  public PgSession withClaims(Claims claims) {
    return new PgSession(
        id, user, database, applicationName, parameters, remoteAddress, Optional.of(claims));
  }

  /**
   * Checks that the session's token allows work on {@code tenant} that needs one of {@code allowed}
   * ({@link Claims#require}); a session without claims (a server that does not authenticate) is
   * allowed everything.
   *
   * @param tenant the tenant the work is about, or null when it names none
   * @throws PgServerException with SQLSTATE 28000 when the token does not allow it
   */
  public void authorize(@Nullable TenantId tenant, Scope... allowed) {
    if (claims.isEmpty()) {
      return;
    }
    try {
      claims.get().require(tenant, allowed);
    } catch (AuthException e) {
      throw new PgServerException(
          "session " + id,
          PgNotice.error(SqlState.INVALID_AUTHORIZATION_SPECIFICATION, e.getMessage()));
    }
  }

  /**
   * Whether the session's token has {@code scope} (false on a server that does not authenticate).
   */
  public boolean hasScope(Scope scope) {
    return claims.map(c -> c.scope() == scope).orElse(false);
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
