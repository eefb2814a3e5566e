package io.zenith.gateway.config;

import io.zenith.replication.auth.AuthKeys;
import io.zenith.replication.auth.Tokens;
import io.zenith.replication.server.Authenticator;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;

/**
 * A service's authentication settings (ADR 0016), the same three keys in {@code pageserver.toml}
 * and {@code safekeeper.toml}:
 *
 * <pre>
 * auth = true                                  # verify a token on every HTTP and libpq request
 * auth_public_key_path = "../auth_public_key.pem"  # the key tokens are checked with
 * auth_token_path = "auth_token"               # this service's own token, for the services it
 *                                              # calls (written by the control plane)
 * </pre>
 *
 * Paths are relative to the service's data directory. {@code auth} left out is {@code false}:
 * configurations written before authentication existed keep working, with a warning at start;
 * {@code zenith init} writes {@code true}. Immutable and thread-safe.
 *
 * @param enabled whether requests need a token
 * @param publicKey the public key file, absolute; required when enabled
 * @param tokenFile the service's own token, absolute, or null when it calls others without one
 */
public record ServiceAuth(boolean enabled, @Nullable Path publicKey, @Nullable Path tokenFile) {

  /** Nothing checked, nothing sent. */
  public static final ServiceAuth OFF = new ServiceAuth(false, null, null);

  /**
   * The settings as the TOML keys give them.
   *
   * @throws IllegalArgumentException naming the key when {@code auth = true} has no public key
   */
  public static ServiceAuth of(
      Path dataDir,
      @Nullable Boolean auth,
      @Nullable String publicKeyPath,
      @Nullable String tokenPath) {
    publicKeyPath = publicKeyPath == null || publicKeyPath.isBlank() ? null : publicKeyPath;
    tokenPath = tokenPath == null || tokenPath.isBlank() ? null : tokenPath;
    boolean on = auth != null && auth;
    if (on && publicKeyPath == null) {
      throw new IllegalArgumentException("auth = true needs auth_public_key_path");
    }
    return new ServiceAuth(
        on,
        publicKeyPath == null ? null : dataDir.resolve(publicKeyPath).toAbsolutePath().normalize(),
        tokenPath == null ? null : dataDir.resolve(tokenPath).toAbsolutePath().normalize());
  }

  /**
   * The verifier of incoming tokens, or null when auth is off.
   *
   * @throws IllegalArgumentException with one line when the key cannot be read
   */
  public Tokens.@Nullable Verifier verifier() {
    if (!enabled) {
      return null;
    }
    try {
      return Tokens.verifier(AuthKeys.loadPublic(publicKey), Clock.systemUTC());
    } catch (IOException | RuntimeException e) {
      throw new IllegalArgumentException(
          "auth_public_key_path: cannot read the public key " + publicKey + ": " + e.getMessage(),
          e);
    }
  }

  /** How the service's libpq endpoint authenticates sessions. */
  public Authenticator authenticator(Tokens.@Nullable Verifier verifier) {
    return verifier == null ? Authenticator.trust() : Authenticator.jwt(verifier);
  }

  /**
   * The service's own token for the services it calls, or null when it has none. Read once, at
   * start (blocking file I/O; the control plane writes the file before each start, never while the
   * service runs), so that connections made on event loops do no I/O for it.
   *
   * @throws IllegalStateException with one line when the configured file cannot be read
   */
  public @Nullable String readToken() {
    if (tokenFile == null) {
      return null;
    }
    try {
      String t = Files.readString(tokenFile, StandardCharsets.US_ASCII).strip();
      return t.isEmpty() ? null : t;
    } catch (NoSuchFileException e) {
      return null;
    } catch (IOException e) {
      throw new IllegalStateException(
          "auth_token_path: cannot read " + tokenFile + ": " + e.getMessage(), e);
    }
  }

  /**
   * Says at start what a reader of the log must know: that anyone who reaches the service may use
   * it, more loudly when it listens beyond this machine.
   */
  public void warnIfOff(Logger log, String service, List<InetSocketAddress> listening) {
    if (enabled) {
      return;
    }
    log.warn(
        "{}: auth is off (auth = false): anyone who can connect may read and change its data",
        service);
    for (InetSocketAddress a : listening) {
      if (a.getAddress() == null || !a.getAddress().isLoopbackAddress()) {
        log.warn(
            "{}: auth is off and it listens on {}, which is not a loopback address: every host"
                + " that reaches it may read and change its data",
            service,
            a.getHostString() + ":" + a.getPort());
      }
    }
  }
}
