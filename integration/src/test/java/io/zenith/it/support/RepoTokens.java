package io.zenith.it.support;

import io.zenith.replication.auth.AuthKeys;
import io.zenith.replication.auth.Claims;
import io.zenith.replication.auth.Tokens;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;

/**
 * Tokens of a repository made by {@code zenith init}, signed with its private key as the CLI signs
 * them (ADR 0016): what tests send the services, which check a token on every request. Stateless.
 */
public final class RepoTokens {
  private RepoTokens() {}

  /** A token granting {@code claims} for an hour, signed with {@code repoDir}'s key. */
  public static String issue(Path repoDir, Claims claims) {
    return issue(repoDir, claims, Duration.ofHours(1));
  }

  /** A token granting {@code claims} for {@code ttl} (negative: expired already). */
  public static String issue(Path repoDir, Claims claims, Duration ttl) {
    try {
      return Tokens.issuer(
              AuthKeys.loadPrivate(repoDir.resolve("auth_private_key.pem")), Clock.systemUTC())
          .issue(claims, ttl);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** An admin token of {@code repoDir}. */
  public static String admin(Path repoDir) {
    return issue(repoDir, Claims.admin());
  }
}
