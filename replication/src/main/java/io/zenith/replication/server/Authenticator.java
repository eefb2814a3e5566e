package io.zenith.replication.server;

import java.util.Objects;
import java.util.function.BiFunction;
import reactor.core.publisher.Mono;

/**
 * How a {@link PgWireServer} authenticates sessions. Implementations are immutable and thread-safe.
 *
 * <p>{@link Trust} lets everyone in. {@link CleartextPassword} asks the client for a password
 * (AuthenticationCleartextPassword) and lets a verifier decide; that is how JWT authentication will
 * plug in (the token travels as the password, as in Neon), so the verifier is asynchronous.
 */
public sealed interface Authenticator permits Authenticator.Trust, Authenticator.CleartextPassword {

  static Authenticator trust() {
    return Trust.INSTANCE;
  }

  /**
   * @param verifier given the session and the password, emits true to accept; false, empty or an
   *     error rejects the login with SQLSTATE 28P01
   */
  static Authenticator password(BiFunction<PgSession, String, Mono<Boolean>> verifier) {
    return new CleartextPassword(verifier);
  }

  /** Everyone is accepted. */
  record Trust() implements Authenticator {
    static final Trust INSTANCE = new Trust();
  }

  /** A password is requested in clear text and checked by {@code verifier}. */
  record CleartextPassword(BiFunction<PgSession, String, Mono<Boolean>> verifier)
      implements Authenticator {
    public CleartextPassword {
      Objects.requireNonNull(verifier);
    }
  }
}
