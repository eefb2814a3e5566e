package io.zenith.gateway.control;

import io.zenith.replication.auth.AuthKeys;
import io.zenith.replication.auth.Claims;
import io.zenith.replication.auth.Tokens;
import io.zenith.wal.DurableFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import org.jspecify.annotations.Nullable;

/**
 * The control plane's side of authentication (ADR 0016): the repository's key pair, the tokens it
 * mints for the CLI's own calls and for the services it starts. A repository without {@link
 * #PRIVATE_KEY} (made with {@code zenith init --no-auth}, or before authentication existed) mints
 * nothing and sends no tokens. Not thread-safe: one CLI command uses it at a time.
 */
public final class RepoAuth {
  /** The private key, 0600: only the control plane reads it. */
  public static final String PRIVATE_KEY = "auth_private_key.pem";

  /** The public key the pageserver and the safekeepers verify tokens with. */
  public static final String PUBLIC_KEY = "auth_public_key.pem";

  /** A service's own token, 0600, in its data directory ({@code auth_token_path}). */
  public static final String SERVICE_TOKEN = "auth_token";

  /** How long the token of one CLI command is valid: longer than any command runs. */
  static final Duration COMMAND_TOKEN_TTL = Duration.ofHours(1);

  private final Path repoDir;
  private Tokens.@Nullable Issuer issuer;
  private @Nullable String adminToken;

  RepoAuth(Path repoDir) {
    this.repoDir = repoDir;
  }

  /** Whether the repository has a key pair, so its services check tokens. */
  public boolean enabled() {
    return Files.exists(repoDir.resolve(PRIVATE_KEY));
  }

  /** Generates the repository's key pair ({@code zenith init}). */
  static void generate(Path repoDir) throws IOException {
    AuthKeys.generate(repoDir.resolve(PRIVATE_KEY), repoDir.resolve(PUBLIC_KEY));
  }

  /** The public key's path as a service in {@code serviceDir} names it in its TOML. */
  static String publicKeyPathFrom(Path repoDir, Path serviceDir) {
    return serviceDir.relativize(repoDir.resolve(PUBLIC_KEY)).toString();
  }

  /**
   * A token granting {@code claims} for {@code ttl} (null: no expiry).
   *
   * @throws ControlPlaneException when the repository has no private key
   */
  public String issue(Claims claims, @Nullable Duration ttl) {
    return issuer().issue(claims, ttl);
  }

  /** The admin token of this command (one hour), or null when the repository has no keys. */
  public @Nullable String adminToken() {
    if (adminToken == null && enabled()) {
      adminToken = issue(Claims.admin(), COMMAND_TOKEN_TTL);
    }
    return adminToken;
  }

  /**
   * Writes the {@code safekeeperdata} token of the service whose data directory is {@code dir}
   * (0600, durably), renewed at each start; nothing when the repository has no keys.
   */
  void writeServiceToken(Path dir) {
    if (!enabled()) {
      return;
    }
    try {
      DurableFiles.writeOwnerOnly(
          dir.resolve(SERVICE_TOKEN),
          issue(Claims.safekeeperData(), null).getBytes(StandardCharsets.US_ASCII));
    } catch (IOException e) {
      throw new ControlPlaneException(
          "cannot write the token of " + dir + ": " + e.getMessage(), e);
    }
  }

  private Tokens.Issuer issuer() {
    if (issuer == null) {
      Path key = repoDir.resolve(PRIVATE_KEY);
      if (!Files.exists(key)) {
        throw new ControlPlaneException(
            "the repository at " + repoDir + " has no key pair: authentication is off");
      }
      try {
        issuer = Tokens.issuer(AuthKeys.loadPrivate(key), Clock.systemUTC());
      } catch (IOException | IllegalArgumentException e) {
        throw new ControlPlaneException("cannot read " + key + ": " + e.getMessage(), e);
      }
    }
    return issuer;
  }
}
