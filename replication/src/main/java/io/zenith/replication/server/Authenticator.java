package io.zenith.replication.server;

import io.zenith.replication.auth.Tokens;
import java.util.Objects;
import java.util.function.BiFunction;
import reactor.core.publisher.Mono;

/**
 * How a {@link PgWireServer} authenticates sessions. Implementations are immutable and thread-safe.
 *
 * <p>{@link Trust} lets everyone in. {@link CleartextPassword} asks the client for a password
 * (AuthenticationCleartextPassword) and lets a verifier decide. {@link Jwt} asks for a password
 * too, which must be a token of ours (ADR 0016, as in Neon): its claims become the session's
 * ({@link PgSession#claims}), and every refusal is SQLSTATE 28000 with a message that never
 * contains the token.
 */
public sealed interface Authenticator
    permits Authenticator.Trust, Authenticator.CleartextPassword, Authenticator.Jwt {

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

  /** The password must be a token {@code verifier} accepts (ADR 0016). */
  static Authenticator jwt(Tokens.Verifier verifier) {
    return new Jwt(verifier);
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

  /**
   * The password is a JWT. Verification is one Ed25519 signature check, tens of microseconds of
   * CPU, so it runs on the connection's event loop.
   */
  record Jwt(Tokens.Verifier verifier) implements Authenticator {
    public Jwt {
      Objects.requireNonNull(verifier);
    }
  }
}
