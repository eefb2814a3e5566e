package io.zenith.replication.auth;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.JWSVerifier;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.SignedJWT;
import io.zenith.wal.TenantId;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.text.ParseException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

/**
 * Zenith's JWTs: compact JWS, algorithm EdDSA (Ed25519), claims {@code scope} ({@link
 * Scope#claim()}), {@code tenant_id} (32 hex digits, with the tenant scope only), {@code iat} and,
 * for tokens that expire, {@code exp}. {@link #issuer} mints them (the control plane, which holds
 * the private key); {@link #verifier} checks them (every service, with the public key). Both are
 * immutable and thread-safe.
 */
public final class Tokens {
  static final String SCOPE = "scope";
  static final String TENANT_ID = "tenant_id";

  private Tokens() {}

  /** Mints tokens signed with {@code key}. */
  public static Issuer issuer(PrivateKey key, Clock clock) {
    return new Issuer(key, clock);
  }

  /** Checks tokens against {@code key}. */
  public static Verifier verifier(PublicKey key, Clock clock) {
    return new Verifier(JdkEd25519.verifier(key), clock);
  }

  /** Signs tokens. */
  public static final class Issuer {
    private final PrivateKey key;
    private final Clock clock;

    private Issuer(PrivateKey key, Clock clock) {
      this.key = key;
      this.clock = clock;
    }

    /**
     * A token granting {@code claims}, valid for {@code ttl} from now, or for ever when it is null
     * (the tokens the control plane gives the services it starts).
     */
    public String issue(Claims claims, @Nullable Duration ttl) {
      Instant now = clock.instant();
      JWTClaimsSet.Builder b =
          new JWTClaimsSet.Builder().claim(SCOPE, claims.scope().claim()).issueTime(Date.from(now));
      claims.tenant().ifPresent(t -> b.claim(TENANT_ID, t.toString()));
      if (ttl != null) {
        b.expirationTime(Date.from(now.plus(ttl)));
      }
      SignedJWT jwt =
          new SignedJWT(
              new JWSHeader.Builder(JWSAlgorithm.EdDSA).type(JOSEObjectType.JWT).build(),
              b.build());
      try {
        jwt.sign(JdkEd25519.signer(key));
      } catch (JOSEException e) {
        throw new IllegalStateException("cannot sign a token: " + e.getMessage(), e);
      }
      return jwt.serialize();
    }
  }

  /** Verifies tokens. */
  public static final class Verifier {
    private final JWSVerifier signature;
    private final Clock clock;

    private Verifier(JWSVerifier signature, Clock clock) {
      this.signature = signature;
      this.clock = clock;
    }

    /**
     * The claims of {@code token} when it is ours, intact and not expired.
     *
     * @param token the compact JWS, or null/blank when the client sent none
     * @throws AuthException {@link AuthException.Kind#MISSING}, {@link AuthException.Kind#INVALID}
     *     or {@link AuthException.Kind#EXPIRED}, with a message that never repeats the token
     */
    public Claims verify(@Nullable String token) {
      if (token == null || token.isBlank()) {
        throw new AuthException(AuthException.Kind.MISSING, "a token is required");
      }
      SignedJWT jwt;
      JWTClaimsSet set;
      try {
        jwt = SignedJWT.parse(token.strip());
        set = jwt.getJWTClaimsSet();
      } catch (ParseException e) {
        throw new AuthException(AuthException.Kind.INVALID, "the token is not a JWT");
      }
      if (!JWSAlgorithm.EdDSA.equals(jwt.getHeader().getAlgorithm())) {
        throw new AuthException(
            AuthException.Kind.INVALID,
            "the token is signed with " + jwt.getHeader().getAlgorithm() + ", not EdDSA");
      }
      try {
        if (!jwt.verify(signature)) {
          throw new AuthException(
              AuthException.Kind.INVALID, "the token's signature does not match this key");
        }
      } catch (JOSEException e) {
        throw new AuthException(AuthException.Kind.INVALID, "the token cannot be verified");
      }
      Date exp = set.getExpirationTime();
      if (exp != null && !clock.instant().isBefore(exp.toInstant())) {
        throw new AuthException(
            AuthException.Kind.EXPIRED, "the token expired at " + exp.toInstant());
      }
      return claims(set);
    }

    private static Claims claims(JWTClaimsSet set) {
      Object scopeClaim = set.getClaim(SCOPE);
      Scope scope =
          scopeClaim instanceof String s
              ? Scope.fromClaim(s)
                  .orElseThrow(
                      () ->
                          new AuthException(
                              AuthException.Kind.INVALID, "unknown scope '" + s + "'"))
              : null;
      if (scope == null) {
        throw new AuthException(AuthException.Kind.INVALID, "the token has no scope");
      }
      Object tenantClaim = set.getClaim(TENANT_ID);
      Optional<TenantId> tenant = Optional.empty();
      if (tenantClaim != null) {
        try {
          tenant = Optional.of(TenantId.parse(String.valueOf(tenantClaim)));
        } catch (RuntimeException e) {
          throw new AuthException(
              AuthException.Kind.INVALID, "the token's tenant_id is not a tenant id");
        }
      }
      try {
        return new Claims(scope, tenant);
      } catch (IllegalArgumentException e) {
        throw new AuthException(AuthException.Kind.INVALID, e.getMessage());
      }
    }
  }
}
