package io.zenith.replication.pgwire;

import java.io.Serial;

/**
 * A PostgreSQL connection failed or a peer broke the protocol: the one exception type callers of
 * this module's network code handle. Callers switch on {@link #kind()}; the message is one sentence
 * naming the connection (its id and address) and what happened.
 *
 * <p>An ErrorResponse sent by a server is the subclass {@link PgServerException}, which carries the
 * SQLSTATE and the server's fields.
 */
public sealed class PgWireException extends RuntimeException permits PgServerException {
  @Serial private static final long serialVersionUID = 1L;

  /** What went wrong. */
  public enum Kind {
    /** The TCP connection could not be made: refused, unresolvable host, or timed out. */
    CONNECT,
    /** The connection ended while in use: closed by the peer, reset, or closed by us. */
    CONNECTION_LOST,
    /**
     * The peer sent bytes that are not valid protocol at this point: a malformed or oversized
     * message, an unknown message type, a message that is not allowed in the current state.
     */
    PROTOCOL,
    /**
     * Authentication could not proceed on our side: the server asked for a method this client does
     * not implement, or for a password that was not given.
     */
    AUTHENTICATION,
    /** The server answered with an ErrorResponse; see {@link PgServerException}. */
    SERVER,
    /** An operation did not complete in its time limit. */
    TIMEOUT
  }

  private final Kind kind;

  public PgWireException(Kind kind, String message) {
    this(kind, message, null);
  }

  public PgWireException(Kind kind, String message, Throwable cause) {
    super(message, cause);
    this.kind = kind;
  }

  public Kind kind() {
    return kind;
  }

  /** A {@link Kind#PROTOCOL} error. */
  public static PgWireException protocol(String message) {
    return new PgWireException(Kind.PROTOCOL, message);
  }
}
