package io.zenith.layer;

/**
 * What one compaction pass did.
 *
 * @param l0Merged L0 delta layers merged into L1 layers (0: fewer than the threshold)
 * @param l1Written L1 delta layers written
 * @param imageLayers image layers written
 * @param imagePages pages materialized into them
 * @param rewritten layers rewritten because GC had left them mostly dead (their live versions are
 *     in the {@code l1Written} layers)
 * @param layersRemoved layer files deleted because nothing names them any more
 * @param bytesRemoved their size
 */
public record CompactionResult(
    int l0Merged,
    int l1Written,
    int imageLayers,
    long imagePages,
    int rewritten,
    int layersRemoved,
    long bytesRemoved) {
  public static final CompactionResult NOTHING = new CompactionResult(0, 0, 0, 0, 0, 0, 0);

  public boolean didSomething() {
    return !equals(NOTHING);
  }

  CompactionResult plus(CompactionResult o) {
    return new CompactionResult(
        l0Merged + o.l0Merged,
        l1Written + o.l1Written,
        imageLayers + o.imageLayers,
        imagePages + o.imagePages,
        rewritten + o.rewritten,
        layersRemoved + o.layersRemoved,
        bytesRemoved + o.bytesRemoved);
  }
}
