package io.zenith.layer;

/**
 * A timeline's own layer files (not its ancestors'), for visibility.
 *
 * @param l0 flushed delta layers not yet compacted
 * @param l1 compacted delta layers
 * @param images image layers
 * @param bytes their total size on disk
 */
public record LayerStats(int l0, int l1, int images, long bytes) {}
