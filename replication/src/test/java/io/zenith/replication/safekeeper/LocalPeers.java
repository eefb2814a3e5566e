package io.zenith.replication.safekeeper;

import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import java.io.IOException;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.function.IntFunction;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Schedulers;

/** For tests whose safekeeper timelines live in the test itself, peers of each other. */
final class LocalPeers {
  private LocalPeers() {}

  /**
   * A fetcher that reads a donor's WAL straight from the timeline {@code peers} names for it; a
   * peer without one (null) is down.
   */
  static WalFetcher fetcher(IntFunction<SafekeeperTimeline> peers) {
    return (peer, ident, from, upTo) -> {
      SafekeeperTimeline d = peers.apply(peer);
      return d == null
          ? Flux.error(new IOException("safekeeper " + peer + " is down"))
          : d.readFlushed(from, upTo, Schedulers.boundedElastic());
    };
  }

  /** Size and SHA-256 of what {@code t} holds flushed in [from, upTo). */
  static String digest(SafekeeperTimeline t, Lsn from, Lsn upTo) {
    MessageDigest md = PgWal.sha256();
    t.readFlushed(from, upTo, Schedulers.boundedElastic())
        .toIterable()
        .forEach(
            p -> {
              md.update(p.data().nioBuffer());
              p.release();
            });
    return upTo.minus(from) + " bytes " + HexFormat.of().formatHex(md.digest());
  }
}
