package io.zenith.replication.auth;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.JWSSigner;
import com.nimbusds.jose.JWSVerifier;
import com.nimbusds.jose.jca.JCAContext;
import com.nimbusds.jose.util.Base64URL;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.util.Set;

/**
 * EdDSA (Ed25519) JWS signing and verification on the JDK's own provider. Nimbus' {@code
 * Ed25519Signer} needs Google Tink (and protobuf) on the classpath; the JDK has had Ed25519 since
 * 15, so these two small adapters spare the jar both. A {@link Signature} is made per call, so
 * instances are thread-safe.
 */
final class JdkEd25519 {
  private static final Set<JWSAlgorithm> ALGORITHMS = Set.of(JWSAlgorithm.EdDSA);

  private JdkEd25519() {}

  static JWSSigner signer(PrivateKey key) {
    return new JWSSigner() {
      private final JCAContext jca = new JCAContext();

      @Override
      public Base64URL sign(JWSHeader header, byte[] signingInput) throws JOSEException {
        checkAlgorithm(header);
        try {
          Signature s = Signature.getInstance("Ed25519");
          s.initSign(key);
          s.update(signingInput);
          return Base64URL.encode(s.sign());
        } catch (GeneralSecurityException e) {
          throw new JOSEException("Ed25519 signing failed: " + e.getMessage(), e);
        }
      }

      @Override
      public Set<JWSAlgorithm> supportedJWSAlgorithms() {
        return ALGORITHMS;
      }

      @Override
      public JCAContext getJCAContext() {
        return jca;
      }
    };
  }

  static JWSVerifier verifier(PublicKey key) {
    return new JWSVerifier() {
      private final JCAContext jca = new JCAContext();

      @Override
      public boolean verify(JWSHeader header, byte[] signingInput, Base64URL signature)
          throws JOSEException {
        checkAlgorithm(header);
        try {
          Signature s = Signature.getInstance("Ed25519");
          s.initVerify(key);
          s.update(signingInput);
          return s.verify(signature.decode());
        } catch (java.security.SignatureException e) {
          return false; // a malformed signature is a wrong one
        } catch (GeneralSecurityException e) {
          throw new JOSEException("Ed25519 verification failed: " + e.getMessage(), e);
        }
      }

      @Override
      public Set<JWSAlgorithm> supportedJWSAlgorithms() {
        return ALGORITHMS;
      }

      @Override
      public JCAContext getJCAContext() {
        return jca;
      }
    };
  }

  private static void checkAlgorithm(JWSHeader header) throws JOSEException {
    if (!ALGORITHMS.contains(header.getAlgorithm())) {
      throw new JOSEException("unsupported JWS algorithm " + header.getAlgorithm());
    }
  }
}
