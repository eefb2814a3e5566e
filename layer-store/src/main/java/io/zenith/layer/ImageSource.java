package io.zenith.layer;

import io.zenith.wal.Lsn;

/**
 * Materializes a key's value at an LSN for an image layer: page reconstruction with WAL redo, which
 * lives above the layer store (the store knows no PostgreSQL). Implementations are thread-safe:
 * image creation calls it for several keys at once.
 */
@FunctionalInterface
public interface ImageSource {
  /** The value of {@code key} as of {@code lsn} on {@code timeline}. Blocking. */
  byte[] image(TimelineView timeline, Key key, Lsn lsn);
}
