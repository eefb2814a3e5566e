package io.zenith.replication.client;

import io.zenith.replication.pgwire.BackendMessage;
import io.zenith.replication.pgwire.PgWireException;

/**
 * One request/response conversation on a connection: startup, a simple query, a replication stream.
 * Exchanges run one at a time in submission order; every method is called on the connection's event
 * loop.
 */
interface Exchange {
  /**
   * Sends the request.
   *
   * @return true if the exchange is already over without a request (it was cancelled while queued);
   *     the next one starts
   */
  boolean start(ClientHandler handler);

  /**
   * Handles a message from the server that is not asynchronous (ParameterStatus, notices and
   * notifications are handled by the connection).
   *
   * @return true when the exchange is over (normally after ReadyForQuery); the next one starts
   * @throws PgWireException of kind PROTOCOL when the message is not allowed here (the connection
   *     is then closed)
   */
  boolean onMessage(BackendMessage message);

  /** The connection failed or closed before the exchange ended; report {@code error}. */
  void fail(PgWireException error);
}
