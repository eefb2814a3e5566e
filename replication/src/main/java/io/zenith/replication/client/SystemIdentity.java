package io.zenith.replication.client;

import io.zenith.wal.Lsn;
import org.jspecify.annotations.Nullable;

/**
 * The answer to IDENTIFY_SYSTEM.
 *
 * @param systemId the cluster's system identifier (unsigned; print with {@link
 *     Long#toUnsignedString})
 * @param timeline the current timeline
 * @param xlogPos the current WAL flush position
 * @param dbName the connected database, or null for a physical replication connection
 */
public record SystemIdentity(long systemId, int timeline, Lsn xlogPos, @Nullable String dbName) {
  @Override
  public String toString() {
    return "SystemIdentity[systemId="
        + Long.toUnsignedString(systemId)
        + ", timeline="
        + timeline
        + ", xlogPos="
        + xlogPos
        + ", dbName="
        + dbName
        + "]";
  }
}
