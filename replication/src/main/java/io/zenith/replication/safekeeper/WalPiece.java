package io.zenith.replication.safekeeper;

import io.zenith.wal.Lsn;
import java.nio.ByteBuffer;

/**
 * WAL bytes starting at {@code start}. The receiver owns {@code data} (a heap buffer it may keep);
 * pieces of one stream are contiguous.
 */
public record WalPiece(Lsn start, ByteBuffer data) {
  public Lsn end() {
    return start.plus(data.remaining());
  }
}
