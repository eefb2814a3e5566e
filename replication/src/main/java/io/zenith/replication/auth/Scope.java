package io.zenith.replication.auth;

import java.util.Arrays;
import java.util.Optional;

/**
 * What a token lets its bearer do (the JWT's {@code scope} claim). See docs/security.md for the
 * endpoints each one opens.
 */
public enum Scope {
  /** The management APIs of the pageserver and the safekeepers, for any tenant. */
  ADMIN("admin"),
  /** One tenant's data: its basebackups, pagestream, WAL and timeline APIs; its id is required. */
  TENANT("tenant"),
  /**
   * Traffic between the services: safekeeper to safekeeper (peer recovery, gossip) and pageserver
   * to safekeeper (the WAL it ingests, and the feedback that lets safekeepers delete WAL).
   */
  SAFEKEEPER_DATA("safekeeperdata");

  private final String claim;

  Scope(String claim) {
    this.claim = claim;
  }

  /** The value of the {@code scope} claim. */
  public String claim() {
    return claim;
  }

  /** The scope a claim value names, if any. */
  public static Optional<Scope> fromClaim(String claim) {
    return Arrays.stream(values()).filter(s -> s.claim.equals(claim)).findFirst();
  }
}
