package io.zenith.layer;

import io.zenith.wal.TenantId;

/**
 * Asks the control plane whether a tenant's generation on this pageserver is still its current one
 * (ADR 0026): before an upload pass writes an index, before it lets {@code remote_consistent_lsn}
 * advance to that index, and before a deletion list executes. The uploads ask {@link
 * RemoteGenerations} in remote storage; tests substitute their own.
 */
@FunctionalInterface
interface GenerationCheck {
  /**
   * True while no newer generation than {@code generation} was issued for {@code tenant}.
   *
   * @throws io.zenith.wal.remote.RemoteStorageException if the record cannot be read (the caller
   *     retries; it never assumes either answer)
   */
  boolean current(TenantId tenant, int generation);

  /** Every generation is current: a store whose tenants are never attached elsewhere (tests). */
  GenerationCheck ALWAYS = (t, g) -> true;
}
