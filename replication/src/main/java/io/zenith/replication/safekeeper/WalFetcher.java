package io.zenith.replication.safekeeper;

import io.zenith.replication.server.WalPiece;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.Identity;
import reactor.core.publisher.Flux;

/**
 * Reads a timeline's WAL from another safekeeper (peer recovery, elections). Implementations:
 * physical replication from the peer's libpq endpoint; in tests, another timeline in the process.
 *
 * <p>Implementations are thread-safe.
 */
public interface WalFetcher {
  /**
   * The peer's WAL of {@code timeline} from {@code from} up to {@code upTo} (exclusive), in
   * contiguous pieces, completing at {@code upTo}; an error if the peer cannot serve all of it. The
   * subscriber owns each piece and releases it (the fetcher hands over buffers it does not reuse).
   */
  Flux<WalPiece> fetch(int peerId, Identity timeline, Lsn from, Lsn upTo);
}
