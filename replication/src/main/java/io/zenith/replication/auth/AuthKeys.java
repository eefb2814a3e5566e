package io.zenith.replication.auth;

import io.zenith.wal.DurableFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;

/**
 * The Ed25519 key pair tokens are signed with, as PEM files (PKCS#8 {@code PRIVATE KEY}, X.509
 * {@code PUBLIC KEY}: what {@code openssl genpkey -algorithm ed25519} writes and reads). Only the
 * control plane holds the private key; the pageserver and the safekeepers read the public one.
 * Stateless.
 */
public final class AuthKeys {
  private static final String ALGORITHM = "Ed25519";
  private static final String PRIVATE = "PRIVATE KEY";
  private static final String PUBLIC = "PUBLIC KEY";

  private AuthKeys() {}

  /**
   * Generates a key pair and writes it durably: the private key 0600 (from its creation on), the
   * public key 0644.
   */
  public static KeyPair generate(Path privateKeyFile, Path publicKeyFile) throws IOException {
    KeyPair pair;
    try {
      pair = KeyPairGenerator.getInstance(ALGORITHM).generateKeyPair();
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("the JDK has no " + ALGORITHM + " key generator", e);
    }
    DurableFiles.writeOwnerOnly(privateKeyFile, pem(PRIVATE, pair.getPrivate().getEncoded()));
    DurableFiles.write(publicKeyFile, pem(PUBLIC, pair.getPublic().getEncoded()));
    return pair;
  }

  /**
   * Reads a private key written by {@link #generate} (or openssl).
   *
   * @throws IllegalArgumentException naming the file when it is not an Ed25519 private key
   */
  public static PrivateKey loadPrivate(Path file) throws IOException {
    try {
      return KeyFactory.getInstance(ALGORITHM)
          .generatePrivate(new PKCS8EncodedKeySpec(unpem(file, PRIVATE)));
    } catch (GeneralSecurityException e) {
      throw new IllegalArgumentException(
          file + " is not an Ed25519 private key: " + e.getMessage());
    }
  }

  /**
   * Reads a public key written by {@link #generate} (or openssl).
   *
   * @throws IllegalArgumentException naming the file when it is not an Ed25519 public key
   */
  public static PublicKey loadPublic(Path file) throws IOException {
    try {
      return KeyFactory.getInstance(ALGORITHM)
          .generatePublic(new X509EncodedKeySpec(unpem(file, PUBLIC)));
    } catch (GeneralSecurityException e) {
      throw new IllegalArgumentException(file + " is not an Ed25519 public key: " + e.getMessage());
    }
  }

  private static byte[] pem(String label, byte[] der) {
    return ("-----BEGIN "
            + label
            + "-----\n"
            + Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(der)
            + "\n-----END "
            + label
            + "-----\n")
        .getBytes(StandardCharsets.US_ASCII);
  }

  private static byte[] unpem(Path file, String label) throws IOException {
    String text = Files.readString(file, StandardCharsets.US_ASCII);
    String begin = "-----BEGIN " + label + "-----";
    String end = "-----END " + label + "-----";
    int from = text.indexOf(begin);
    int to = text.indexOf(end);
    if (from < 0 || to < from) {
      throw new IllegalArgumentException(file + " is not a PEM file with a " + label);
    }
    try {
      return Base64.getMimeDecoder().decode(text.substring(from + begin.length(), to));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(file + " has a damaged " + label + ": " + e.getMessage());
    }
  }
}
