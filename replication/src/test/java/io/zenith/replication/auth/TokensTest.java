package io.zenith.replication.auth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.TenantId;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Base64;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokensTest {
  @TempDir Path dir;
  private Tokens.Issuer issuer;
  private Tokens.Verifier verifier;
  private final TenantId tenant = TenantId.generate();

  @BeforeEach
  void keys() throws IOException {
    AuthKeys.generate(dir.resolve("auth_private_key.pem"), dir.resolve("auth_public_key.pem"));
    issuer =
        Tokens.issuer(AuthKeys.loadPrivate(dir.resolve("auth_private_key.pem")), Clock.systemUTC());
    verifier =
        Tokens.verifier(AuthKeys.loadPublic(dir.resolve("auth_public_key.pem")), Clock.systemUTC());
  }

  @Test
  void thePrivateKeyIsOnlyTheOwnersAndBothAreStandardPem() throws Exception {
    assertThat(Files.getPosixFilePermissions(dir.resolve("auth_private_key.pem")))
        .isEqualTo(PosixFilePermissions.fromString("rw-------"));
    assertThat(Files.readString(dir.resolve("auth_public_key.pem")))
        .startsWith("-----BEGIN PUBLIC KEY-----\n");
    // what openssl makes, we read; what we make, openssl reads
    Path sslKey = dir.resolve("openssl.pem");
    Process p =
        new ProcessBuilder("openssl", "genpkey", "-algorithm", "ed25519", "-out", sslKey.toString())
            .redirectErrorStream(true)
            .start();
    assertThat(p.waitFor()).isZero();
    assertThat(AuthKeys.loadPrivate(sslKey).getAlgorithm()).isIn("Ed25519", "EdDSA");
    Process q =
        new ProcessBuilder(
                "openssl", "pkey", "-in", dir.resolve("auth_private_key.pem").toString(), "-noout")
            .redirectErrorStream(true)
            .start();
    assertThat(q.waitFor()).isZero();
  }

  @Test
  void whatIsIssuedVerifiesWithItsClaims() {
    assertThat(verifier.verify(issuer.issue(Claims.admin(), Duration.ofHours(1))))
        .isEqualTo(Claims.admin());
    assertThat(verifier.verify(issuer.issue(Claims.safekeeperData(), null)))
        .isEqualTo(Claims.safekeeperData());
    assertThat(verifier.verify(issuer.issue(Claims.tenant(tenant), Duration.ofMinutes(5))))
        .isEqualTo(Claims.tenant(tenant));
  }

  @Test
  void missingGarbageForeignTamperedAndExpiredTokensAreRefusedWithoutRepeatingThem()
      throws IOException {
    assertKind(null, AuthException.Kind.MISSING);
    assertKind(" ", AuthException.Kind.MISSING);
    assertKind("not-a-token", AuthException.Kind.INVALID);
    // signed by another key
    Path other = Files.createDirectory(dir.resolve("other"));
    AuthKeys.generate(other.resolve("k"), other.resolve("k.pub"));
    String foreign =
        Tokens.issuer(AuthKeys.loadPrivate(other.resolve("k")), Clock.systemUTC())
            .issue(Claims.admin(), null);
    assertKind(foreign, AuthException.Kind.INVALID);
    // a tenant token whose payload was changed to say admin
    String t = issuer.issue(Claims.tenant(tenant), null);
    String[] parts = t.split("\\.");
    String admin =
        Base64.getUrlEncoder()
            .withoutPadding()
            .encodeToString("{\"scope\":\"admin\"}".getBytes(StandardCharsets.UTF_8));
    assertKind(parts[0] + "." + admin + "." + parts[2], AuthException.Kind.INVALID);
    // "alg": "none", and a token with no signature
    String none =
        Base64.getUrlEncoder()
            .withoutPadding()
            .encodeToString("{\"alg\":\"none\"}".getBytes(StandardCharsets.UTF_8));
    assertKind(none + "." + admin + ".", AuthException.Kind.INVALID);
    assertKind(parts[0] + "." + parts[1] + ".", AuthException.Kind.INVALID);
    // expired: issued two hours ago for one
    Tokens.Issuer past =
        Tokens.issuer(
            AuthKeys.loadPrivate(dir.resolve("auth_private_key.pem")),
            Clock.fixed(Instant.now().minus(Duration.ofHours(2)), ZoneOffset.UTC));
    String expired = past.issue(Claims.admin(), Duration.ofHours(1));
    assertThatThrownBy(() -> verifier.verify(expired))
        .isInstanceOfSatisfying(
            AuthException.class, e -> assertThat(e.kind()).isEqualTo(AuthException.Kind.EXPIRED))
        .hasMessageStartingWith("the token expired at ");
  }

  @Test
  void scopesAllowWhatTheySayAndTenantTokensOnlyTheirTenant() {
    TenantId other = TenantId.generate();
    Claims.admin().require(tenant, Scope.ADMIN, Scope.TENANT);
    Claims.tenant(tenant).require(tenant, Scope.ADMIN, Scope.TENANT);
    Claims.safekeeperData().require(null, Scope.SAFEKEEPER_DATA);
    assertForbidden(
        () -> Claims.tenant(other).require(tenant, Scope.ADMIN, Scope.TENANT), "another tenant");
    assertForbidden(
        () -> Claims.tenant(tenant).require(null, Scope.ADMIN, Scope.TENANT), "tenant token");
    assertForbidden(() -> Claims.tenant(tenant).require(tenant, Scope.ADMIN), "scope 'tenant'");
    assertForbidden(
        () -> Claims.safekeeperData().require(null, Scope.ADMIN), "scope 'safekeeperdata'");
    assertForbidden(() -> Claims.admin().require(null, Scope.SAFEKEEPER_DATA), "scope 'admin'");
  }

  private void assertKind(String token, AuthException.Kind kind) {
    assertThatThrownBy(() -> verifier.verify(token))
        .isInstanceOfSatisfying(AuthException.class, e -> assertThat(e.kind()).isEqualTo(kind))
        .satisfies(
            e -> {
              if (token != null && token.length() > 3) {
                assertThat(e.getMessage()).doesNotContain(token);
              }
            });
  }

  private static void assertForbidden(Runnable r, String says) {
    assertThatThrownBy(r::run)
        .isInstanceOfSatisfying(
            AuthException.class, e -> assertThat(e.kind()).isEqualTo(AuthException.Kind.FORBIDDEN))
        .hasMessageContaining(says);
  }
}
