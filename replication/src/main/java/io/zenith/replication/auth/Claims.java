package io.zenith.replication.auth;

import io.zenith.wal.TenantId;
import java.util.Objects;
import java.util.Optional;

/**
 * What a verified token grants: a scope and, for {@link Scope#TENANT}, the one tenant. Immutable.
 *
 * @param tenant present exactly when {@code scope} is {@link Scope#TENANT}
 */
public record Claims(Scope scope, Optional<TenantId> tenant) {
  public Claims {
    Objects.requireNonNull(scope);
    Objects.requireNonNull(tenant);
    if ((scope == Scope.TENANT) != tenant.isPresent()) {
      throw new IllegalArgumentException(
          "a token names a tenant exactly when its scope is 'tenant' (scope "
              + scope.claim()
              + ", tenant "
              + tenant.map(TenantId::toString).orElse("none")
              + ")");
    }
  }

  public static Claims admin() {
    return new Claims(Scope.ADMIN, Optional.empty());
  }

  public static Claims safekeeperData() {
    return new Claims(Scope.SAFEKEEPER_DATA, Optional.empty());
  }

  public static Claims tenant(TenantId tenant) {
    return new Claims(Scope.TENANT, Optional.of(tenant));
  }

  /**
   * Checks that these claims allow what needs one of {@code allowed}; a {@link Scope#TENANT} token
   * only for {@code tenant}, and never for work that names no tenant.
   *
   * @param tenant the tenant the request is about, or null when it names none
   * @throws AuthException of kind {@link AuthException.Kind#FORBIDDEN} when they do not
   */
  public void require(TenantId tenant, Scope... allowed) {
    for (Scope s : allowed) {
      if (s != scope) {
        continue;
      }
      if (scope != Scope.TENANT) {
        return;
      }
      if (tenant != null && this.tenant.orElseThrow().equals(tenant)) {
        return;
      }
      throw new AuthException(
          AuthException.Kind.FORBIDDEN,
          tenant == null
              ? "a tenant token does not allow this"
              : "the token is for another tenant than " + tenant);
    }
    throw new AuthException(
        AuthException.Kind.FORBIDDEN, "scope '" + scope.claim() + "' does not allow this");
  }
}
