package io.zenith.page.fuse;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.time.Duration;
import java.util.Objects;

/**
 * What a lazy relation filesystem reads from and how it presents its files.
 *
 * @param host the pageserver's libpq host
 * @param port the pageserver's libpq port ({@code listen_pg})
 * @param user the libpq user
 * @param password for cleartext password authentication; null if the pageserver trusts
 * @param lsn the compute's start LSN: every page the compute has not written is as it was at this
 *     LSN
 * @param primary whether the compute is its timeline's primary (its only writer): then nothing it
 *     did not write changed since {@code lsn}, and pages and listings are read at the pageserver's
 *     latest LSN with {@code lsn} as not-modified-since, which GC never invalidates. A read-only
 *     compute reads at {@code lsn} itself, and each of its pagestream connections holds {@code lsn}
 *     readable on the pageserver (GC does not pass it) while it is open
 * @param timeout bounds every pagestream connection and read; after it a read fails with EIO
 * @param connections most pagestream connections open at once
 * @param threads most FUSE worker threads (libfuse's {@code max_threads})
 * @param uid owner of every file and directory (the compute's OS user)
 * @param gid group of every file and directory
 */
public record LazyFsConfig(
    String host,
    int port,
    String user,
    String password,
    TenantId tenant,
    TimelineId timeline,
    Lsn lsn,
    boolean primary,
    Duration timeout,
    int connections,
    int threads,
    int uid,
    int gid) {
  public LazyFsConfig {
    Objects.requireNonNull(host);
    Objects.requireNonNull(user);
    Objects.requireNonNull(tenant);
    Objects.requireNonNull(timeline);
    Objects.requireNonNull(lsn);
    Objects.requireNonNull(timeout);
    if (timeout.isNegative() || timeout.isZero() || timeout.toMillis() > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("timeout must be positive and fit in ms: " + timeout);
    }
    if (connections < 1 || threads < 1) {
      throw new IllegalArgumentException(
          "connections and threads must be at least 1: " + connections + ", " + threads);
    }
  }
}
