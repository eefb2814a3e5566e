package io.zenith.replication.safekeeper.peers;

import io.netty.buffer.Unpooled;
import io.zenith.replication.client.PgConnectOptions;
import io.zenith.replication.client.ReplicationClient;
import io.zenith.replication.client.ReplicationOptions;
import io.zenith.replication.safekeeper.SafekeeperException;
import io.zenith.replication.safekeeper.WalFetcher;
import io.zenith.replication.safekeeper.serving.WalService;
import io.zenith.replication.server.WalPiece;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.Identity;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.function.IntFunction;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;
import reactor.core.publisher.Flux;

/**
 * Reads WAL from a peer safekeeper's libpq WAL service ({@link WalService}) as a physical
 * replication standby: the startup parameter {@code options} names the timeline and marks the
 * connection as a peer's ({@code -c zenith.tenant_id=… -c zenith.timeline_id=… -c
 * zenith.peer_id=<own id> -c zenith.up_to=X/Y}), so the peer serves its flushed WAL (not only the
 * committed part) up to {@code up_to}. The stream is cut at {@code upTo} here too and the
 * connection closed when the subscriber is done.
 *
 * <p>Demand: the replication client reads its socket only while the subscriber has demand (plus its
 * read-ahead), so a slow disk here slows the peer's sending. Thread-safe.
 */
public final class LibpqWalFetcher implements WalFetcher {
  private final int ownId;
  private final IntFunction<@Nullable InetSocketAddress> peers;
  private final Supplier<@Nullable String> token;

  /**
   * @param ownId this safekeeper's id (the peer logs it)
   * @param peers the libpq address of a peer by id, null if there is no such peer
   * @param token the {@code safekeeperdata} token sent as the password (peers that authenticate
   *     need it), asked for at each connection; null sends none
   */
  public LibpqWalFetcher(
      int ownId, IntFunction<@Nullable InetSocketAddress> peers, Supplier<@Nullable String> token) {
    this.ownId = ownId;
    this.peers = peers;
    this.token = token;
  }

  @Override
  public Flux<WalPiece> fetch(int peerId, Identity timeline, Lsn from, Lsn upTo) {
    InetSocketAddress address = peers.apply(peerId);
    if (address == null) {
      return Flux.error(
          new SafekeeperException(
              SafekeeperException.Kind.IO, "safekeeper " + peerId + " is not a configured peer"));
    }
    if (!from.isBefore(upTo)) {
      return Flux.empty();
    }
    PgConnectOptions opts =
        PgConnectOptions.builder()
            .host(address.getHostString())
            .port(address.getPort())
            .user("safekeeper")
            .password(token.get())
            .database("postgres")
            .applicationName("sk_" + ownId)
            .replication(true)
            .connectTimeout(Duration.ofSeconds(5))
            .parameter(
                "options",
                WalService.startupOptions(timeline.tenant(), timeline.timeline())
                    + " -c "
                    + WalService.PEER
                    + "="
                    + ownId
                    + " -c "
                    + WalService.UP_TO
                    + "="
                    + upTo)
            .build();
    return Flux.usingWhen(
        ReplicationClient.connect(opts, ReplicationOptions.DEFAULT),
        c ->
            c.startReplication(null, from, 0)
                .doOnNext(chunk -> c.reportProgress(chunk.end(), chunk.end(), chunk.end()))
                .takeUntil(chunk -> !chunk.end().isBefore(upTo))
                .map(
                    chunk -> {
                      ByteBuffer data = chunk.data();
                      if (chunk.end().isAfter(upTo)) {
                        data.limit((int) upTo.minus(chunk.start()));
                      }
                      // The chunk's array is the subscriber's (a copy out of the socket buffer).
                      return new WalPiece(chunk.start(), Unpooled.wrappedBuffer(data));
                    }),
        c -> c.close().onErrorComplete(),
        (c, e) -> c.close().onErrorComplete(),
        c -> c.close().onErrorComplete());
  }
}
