package io.zenith.layer;

import java.time.Duration;

/**
 * Settings of a layer store.
 *
 * @param checkpointDistance freeze the open in-memory layer once it holds this many bytes of values
 *     (default 256 MiB)
 * @param checkpointTimeout freeze it once it is this old and not empty (default 10 minutes), so
 *     that an idle timeline becomes durable and its WAL can be released
 * @param maxFrozenLayers how many frozen layers may wait for their flush before ingest must wait
 *     (the backpressure point of the write path; default 2)
 * @param blockCacheBytes RocksDB block cache (default 64 MiB)
 */
public record LayerStoreConfig(
    long checkpointDistance,
    Duration checkpointTimeout,
    int maxFrozenLayers,
    long blockCacheBytes) {

  public static final LayerStoreConfig DEFAULT =
      new LayerStoreConfig(256L << 20, Duration.ofMinutes(10), 2, 64L << 20);

  public LayerStoreConfig {
    if (checkpointDistance <= 0 || maxFrozenLayers < 1 || blockCacheBytes <= 0) {
      throw new IllegalArgumentException(
          "checkpoint distance, frozen layer limit and block cache must be positive");
    }
    if (checkpointTimeout.isNegative() || checkpointTimeout.isZero()) {
      throw new IllegalArgumentException("checkpoint timeout must be positive");
    }
  }

  public LayerStoreConfig withCheckpointDistance(long bytes) {
    return new LayerStoreConfig(bytes, checkpointTimeout, maxFrozenLayers, blockCacheBytes);
  }

  public LayerStoreConfig withCheckpointTimeout(Duration d) {
    return new LayerStoreConfig(checkpointDistance, d, maxFrozenLayers, blockCacheBytes);
  }
}
