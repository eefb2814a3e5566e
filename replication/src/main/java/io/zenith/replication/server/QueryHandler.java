package io.zenith.replication.server;

import reactor.core.publisher.Mono;

/**
 * Answers the simple queries of a {@link PgWireServer}'s sessions.
 *
 * <p>Called on the connection's event loop, once per Query message, never concurrently for one
 * session (the next query waits for the previous response to finish). Must not block; return a
 * {@link Mono} and do slow work elsewhere. An error signal, an exception thrown, or an empty Mono
 * answer the client with an ErrorResponse (SQLSTATE from a {@link
 * io.zenith.replication.pgwire.PgServerException}, else XX000); the session stays usable.
 */
@FunctionalInterface
public interface QueryHandler {
  Mono<QueryResponse> handle(PgSession session, String query);

  /**
   * Decides whether a session may start: called on the event loop once the client authenticated,
   * before AuthenticationOk. Throw a {@link io.zenith.replication.pgwire.PgServerException} to
   * refuse it: the client gets its SQLSTATE and message as a FATAL ErrorResponse (as PostgreSQL
   * refuses an unknown database) and the connection is closed; other sessions are not affected.
   * Must not block. The default accepts every session.
   */
  default void accept(PgSession session) {}
}
