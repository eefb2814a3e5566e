package io.zenith.replication.client;

import io.zenith.replication.client.ReplicationClient.Progress;
import io.zenith.wal.Lsn;
import java.util.Objects;
import java.util.function.Consumer;
import org.jspecify.annotations.Nullable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Follows a walsender as a physical standby, once: connect, {@code IDENTIFY_SYSTEM}, check that the
 * server is the expected database system, ensure the slot (created if missing, WAL reserved), then
 * hand the connection to the caller, who starts replication ({@link Connection#startReplication})
 * and consumes the WAL chunks, reporting its positions with {@link
 * ReplicationClient#reportProgress} (the standby status updates). The connection is closed however
 * the follow ends. The steps every follower of a walsender repeats live here: the safekeeper's
 * intake from a compute and the pageserver's WAL receiver from a compute or a safekeeper use it;
 * their reconnect policies (backoff, source switches, stall detection) stay theirs, around {@link
 * #follow}.
 *
 * <p>Reactive contract of {@link #follow}: a cold {@link Mono}, one connection per subscription.
 *
 * <ul>
 *   <li><b>Thread:</b> the steps run on the connection's event loop; so do the callbacks and the
 *       caller's stream, unless it moves itself elsewhere.
 *   <li><b>Demand and bounds:</b> those of {@link ReplicationClient#startReplication}: the socket
 *       is read while the caller's stream has demand (plus the client's read-ahead).
 *   <li><b>Cancel and errors:</b> a refused system id fails with the exception {@link SystemCheck}
 *       threw, a failed step with its error, {@code IDENTIFY_SYSTEM} or the slot's creation
 *       unanswered within the connect timeout with a {@link java.util.concurrent.TimeoutException};
 *       cancel or any end closes the connection after {@link Session#released} (closing never
 *       fails).
 *   <li><b>Order:</b> connected, identify, check, slot, stream, released.
 * </ul>
 *
 * <p>Thread-safety: an immutable value; {@link #follow} may be called from any thread.
 *
 * @param connect where and as whom to connect ({@code replication=true} is forced)
 * @param replication the client's read-ahead and status-update settings
 * @param slot the physical slot to create (if missing) and stream from; null for none
 * @param check refuses a server that is not the expected database system
 */
public record WalSenderFollower(
    PgConnectOptions connect,
    ReplicationOptions replication,
    @Nullable String slot,
    SystemCheck check) {

  public WalSenderFollower {
    Objects.requireNonNull(connect, "connect");
    Objects.requireNonNull(replication, "replication");
    Objects.requireNonNull(check, "check");
  }

  /** Judges {@code IDENTIFY_SYSTEM}'s answer: throws to refuse the server (the follow fails). */
  @FunctionalInterface
  public interface SystemCheck {
    void check(SystemIdentity identity);
  }

  /** What a follower does with one connection. Callbacks run on the connection's event loop. */
  public interface Session<T> {
    /** The connection is open (before {@code IDENTIFY_SYSTEM}). */
    default void connected(ReplicationClient client) {}

    /**
     * The system was accepted and the slot exists: start replication and follow its WAL. The
     * returned {@link Mono} ends the follow (and the connection) when it terminates.
     */
    Mono<T> stream(Connection connection);

    /** The follow ended (any way): called once, before the connection is closed. */
    default void released(ReplicationClient client) {}
  }

  /**
   * An identified connection with its slot, ready to stream.
   *
   * @param system the server's answer to {@code IDENTIFY_SYSTEM}
   */
  public record Connection(ReplicationClient client, SystemIdentity system, @Nullable String slot) {
    /**
     * {@code START_REPLICATION} on the follower's slot: {@link
     * ReplicationClient#startReplication(String, Lsn, int, Progress)}.
     */
    public Flux<WalChunk> startReplication(Lsn start, int timeline, Progress initial) {
      return client.startReplication(slot, start, timeline, initial);
    }
  }

  /** One connection: connect, identify, check, ensure the slot, then {@code session}'s stream. */
  public <T> Mono<T> follow(Session<T> session) {
    Consumer<ReplicationClient> connected = session::connected;
    return Mono.usingWhen(
        ReplicationClient.connect(connect, replication).doOnNext(connected),
        c ->
            c.identifySystem()
                // A server that accepted but never answers (stopped, wedged) must not hold the
                // follower forever: the handshake has the connect timeout's bound too.
                .timeout(connect.connectTimeout())
                .flatMap(
                    id -> {
                      check.check(id);
                      Mono<?> created =
                          slot == null
                              ? Mono.empty()
                              : c.createPhysicalSlot(slot, true).timeout(connect.connectTimeout());
                      return created.then(
                          Mono.defer(() -> session.stream(new Connection(c, id, slot))));
                    }),
        c -> {
          session.released(c);
          // ReplicationClient.close() completes once the channel is closed; it never fails.
          return c.close().onErrorComplete();
        });
  }
}
