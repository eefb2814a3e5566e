package io.zenith.layer;

import java.time.Duration;

/**
 * Settings of a layer store.
 *
 * @param checkpointDistance freeze the open in-memory layer once it holds this many bytes of values
 *     (default 32 MiB)
 * @param checkpointTimeout freeze it once it is this old and not empty (default 10 minutes), so
 *     that an idle timeline becomes durable and its WAL can be released
 * @param blockCacheBytes RocksDB block cache (default 64 MiB)
 */
public record LayerStoreConfig(
    long checkpointDistance, Duration checkpointTimeout, long blockCacheBytes) {

  public static final LayerStoreConfig DEFAULT =
      new LayerStoreConfig(32L << 20, Duration.ofMinutes(10), 64L << 20);

  public LayerStoreConfig {
    if (checkpointDistance <= 0 || blockCacheBytes <= 0) {
      throw new IllegalArgumentException("checkpoint distance and block cache must be positive");
    }
    if (checkpointTimeout.isNegative() || checkpointTimeout.isZero()) {
      throw new IllegalArgumentException("checkpoint timeout must be positive");
    }
  }

  public LayerStoreConfig withCheckpointDistance(long bytes) {
    return new LayerStoreConfig(bytes, checkpointTimeout, blockCacheBytes);
  }

  public LayerStoreConfig withCheckpointTimeout(Duration d) {
    return new LayerStoreConfig(checkpointDistance, d, blockCacheBytes);
  }
}
