package io.zenith.gateway.http;

import io.netty.handler.codec.http.HttpMethod;
import io.zenith.replication.auth.AuthException;
import io.zenith.replication.auth.Scope;
import io.zenith.replication.auth.Tokens;
import io.zenith.wal.TenantId;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * Which tokens an HTTP API takes (ADR 0016): {@code Authorization: Bearer <token>} on every
 * request, {@code /metrics} included; the first {@link Rule} whose method and path match says which
 * scopes may call, and a request no rule matches needs {@link Scope#ADMIN}. A tenant token is
 * allowed only on paths under {@code /v1/tenant/<its id>/}. Immutable and thread-safe.
 *
 * @param verifier checks the tokens against the repository's public key
 * @param rules the exceptions to "admin only", most specific first
 */
public record HttpAuth(Tokens.Verifier verifier, List<Rule> rules) {
  private static final Pattern BEARER = Pattern.compile("(?i)bearer\\s+(\\S+)\\s*");
  private static final Pattern TENANT_PATH = Pattern.compile("^/v1/tenant/([^/?]+)");

  public HttpAuth {
    rules = List.copyOf(rules);
  }

  /**
   * Requests of {@code method} (null: any) whose path matches {@code path} may be made with one of
   * {@code scopes}.
   */
  public record Rule(@Nullable HttpMethod method, Pattern path, List<Scope> scopes) {
    public Rule {
      scopes = List.copyOf(scopes);
    }

    public static Rule of(@Nullable HttpMethod method, String pathRegex, Scope... scopes) {
      return new Rule(method, Pattern.compile(pathRegex), List.of(scopes));
    }

    boolean matches(HttpMethod m, String p) {
      return (method == null || method.equals(m)) && path.matcher(p).matches();
    }
  }

  /**
   * Why a request is refused, or empty when its token allows it.
   *
   * @param authorization the request's {@code Authorization} header, if any
   */
  public Optional<AuthException> refusal(
      HttpMethod method, String uri, @Nullable String authorization) {
    String path = path(uri);
    try {
      List<Scope> allowed =
          rules.stream()
              .filter(r -> r.matches(method, path))
              .findFirst()
              .map(Rule::scopes)
              .orElse(List.of(Scope.ADMIN));
      verifier.verify(token(authorization)).require(tenant(path), allowed.toArray(Scope[]::new));
      return Optional.empty();
    } catch (AuthException e) {
      return Optional.of(e);
    }
  }

  private static @Nullable String token(@Nullable String authorization) {
    if (authorization == null || authorization.isBlank()) {
      return null;
    }
    Matcher m = BEARER.matcher(authorization);
    if (!m.matches()) {
      throw new AuthException(
          AuthException.Kind.INVALID, "the Authorization header is not \"Bearer <token>\"");
    }
    return m.group(1);
  }

  /** The tenant a path is about, or null: a tenant token never opens a path that names none. */
  private static @Nullable TenantId tenant(String path) {
    Matcher m = TENANT_PATH.matcher(path);
    if (!m.find()) {
      return null;
    }
    try {
      return TenantId.parse(m.group(1));
    } catch (IllegalArgumentException e) {
      return null;
    }
  }

  private static String path(String uri) {
    int q = uri.indexOf('?');
    return q < 0 ? uri : uri.substring(0, q);
  }
}
