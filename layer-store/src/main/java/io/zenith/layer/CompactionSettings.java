package io.zenith.layer;

/**
 * How a timeline's history is compacted (Neon's names, so that operators recognise them).
 *
 * @param targetSize {@code compaction_target_size}: the size an L1 delta or image layer file aims
 *     at; image layers partition the key space by it (default 128 MiB)
 * @param compactionThreshold {@code compaction_threshold}: merge the L0 delta layers into L1 layers
 *     once this many exist (default 10)
 * @param imageCreationThreshold {@code image_creation_threshold}: materialize a key partition as an
 *     image layer once this many delta layers cover it since its last image (default 3)
 * @param imageParallelism pages materialized at once while an image layer is created (the WAL-redo
 *     pool's size is the useful bound; default 2)
 */
public record CompactionSettings(
    long targetSize, int compactionThreshold, int imageCreationThreshold, int imageParallelism) {

  public static final CompactionSettings DEFAULT = new CompactionSettings(128L << 20, 10, 3, 2);

  public CompactionSettings {
    if (targetSize < 8192) {
      throw new IllegalArgumentException("compaction_target_size must be at least 8 KiB");
    }
    if (compactionThreshold < 2) {
      throw new IllegalArgumentException("compaction_threshold must be at least 2");
    }
    if (imageCreationThreshold < 1) {
      throw new IllegalArgumentException("image_creation_threshold must be at least 1");
    }
    if (imageParallelism < 1) {
      throw new IllegalArgumentException("image parallelism must be at least 1");
    }
  }

  /** The number of keys (8 KiB pages) an image layer of {@link #targetSize} holds. */
  int keysPerImageLayer() {
    return (int) Math.max(1, Math.min(Integer.MAX_VALUE, targetSize / 8192));
  }
}
