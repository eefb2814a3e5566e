package io.zenith.replication.server;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.QueryText;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyMessage;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.wal.Lsn;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Flux;

/** What a {@link QueryHandler} answers a query with. */
public sealed interface QueryResponse
    permits QueryResponse.Rows,
        QueryResponse.Command,
        QueryResponse.Error,
        QueryResponse.CopyOut,
        QueryResponse.CopyBoth,
        QueryResponse.Replication {

  /**
   * A result set in text format (every column of type {@code text}): RowDescription, one DataRow
   * per row, CommandComplete. Written at once: for large outputs use {@link CopyOut}.
   *
   * @param columns column names
   * @param rows rows of values in column order; {@code null} is SQL NULL
   * @param commandTag e.g. {@code SELECT 2}; defaults to {@code SELECT n}
   */
  record Rows(List<String> columns, List<List<@Nullable String>> rows, String commandTag)
      implements QueryResponse {
    public Rows {
      columns = List.copyOf(columns);
      List<List<String>> copy = new ArrayList<>(rows.size());
      for (List<String> r : rows) {
        if (r.size() != columns.size()) {
          throw new IllegalArgumentException(
              "row of " + r.size() + " values for " + columns.size() + " columns");
        }
        copy.add(Collections.unmodifiableList(new ArrayList<>(r)));
      }
      rows = Collections.unmodifiableList(copy);
      Objects.requireNonNull(commandTag);
    }

    public Rows(List<String> columns, List<List<@Nullable String>> rows) {
      this(columns, rows, "SELECT " + rows.size());
    }
  }

  /** CommandComplete with this tag and no rows (e.g. {@code SET}). */
  record Command(String tag) implements QueryResponse {
    public Command {
      Objects.requireNonNull(tag);
    }
  }

  /** An ErrorResponse (severity ERROR); the session goes on. */
  record Error(PgNotice notice) implements QueryResponse {
    public Error {
      Objects.requireNonNull(notice);
    }
  }

  /**
   * A CopyOut stream: CopyOutResponse, one CopyData per buffer of {@code data}, CopyDone,
   * CommandComplete.
   *
   * <p><b>Backpressure:</b> the server requests one buffer at a time and only while the channel is
   * writable, so memory stays within Netty's write-buffer high-water mark plus one buffer.
   * <b>Ownership:</b> every {@code ByteBuf} emitted becomes the server's, which releases it after
   * writing it (or when it arrives after the session ended, or is discarded by an operator of
   * {@code data} when the server cancels). If {@code data} fails, the client gets an ErrorResponse
   * instead of CopyDone, as PostgreSQL does (the SQLSTATE of a {@link
   * io.zenith.replication.pgwire.PgServerException}, else XX000); if the client goes away, the
   * subscription is cancelled.
   *
   * @param data the payload; one CopyData message per buffer
   * @param binary overall format: false = text (psql writes text copy data to its output), true =
   *     binary
   * @param columns number of columns announced (their formats follow {@code binary})
   * @param commandTag CommandComplete tag after CopyDone, e.g. {@code COPY 0}
   */
  record CopyOut(Publisher<ByteBuf> data, boolean binary, int columns, String commandTag)
      implements QueryResponse {
    public CopyOut {
      Objects.requireNonNull(data);
      Objects.requireNonNull(commandTag);
      if (columns < 0 || columns > Short.MAX_VALUE) {
        throw new IllegalArgumentException("columns out of range: " + columns);
      }
    }
  }

  /**
   * A CopyBoth exchange of binary payloads (a request/response sub-protocol such as the
   * pageserver's pagestream): CopyBothResponse, then the client's CopyData payloads go to the
   * handler and each buffer it emits goes out as one CopyData.
   *
   * <ul>
   *   <li><b>Demand:</b> the server reads the client only while {@code exchange}'s inbound flux has
   *       outstanding demand (beyond it, at most one socket read of messages is buffered), and asks
   *       for one outbound buffer at a time while the channel is writable. So a handler that bounds
   *       its own concurrency (e.g. {@code flatMapSequential(…, n, 1)}) bounds the connection's
   *       memory, and a client that stops reading stops being read.
   *   <li><b>Ownership:</b> inbound arrays are the handler's; outbound buffers become the server's,
   *       as for {@link CopyOut}.
   *   <li><b>Thread:</b> inbound payloads are emitted on the connection's event loop: the handler
   *       must not block there.
   *   <li><b>Ending:</b> the client's CopyDone completes the inbound flux; when the outbound
   *       publisher completes, the server sends CopyDone and, once the client's CopyDone has come,
   *       CommandComplete {@code COPY 0} and ReadyForQuery. An outbound failure with a FATAL {@link
   *       io.zenith.replication.pgwire.PgServerException} sends that notice and closes the
   *       connection; any other failure is an ErrorResponse (its SQLSTATE, else XX000) and the
   *       session goes on. A client that disconnects cancels the exchange.
   * </ul>
   *
   * @param exchange given the client's payloads, the server's
   */
  record CopyBoth(Function<Flux<byte[]>, Publisher<ByteBuf>> exchange) implements QueryResponse {
    public CopyBoth {
      Objects.requireNonNull(exchange);
    }
  }

  /**
   * The answer to START_REPLICATION: a physical replication stream, as PostgreSQL's walsender sends
   * it. Only replication sessions ({@link PgSession#replication()}) get one; on another session the
   * server answers with the syntax error PostgreSQL gives there, and {@code wal} is not subscribed.
   *
   * <p>The server sends CopyBothResponse, then one XLogData message per at most {@link
   * #MAX_XLOG_DATA} bytes of each piece of {@code wal}, and PrimaryKeepalives: one whenever nothing
   * was sent for {@link PgWireServerOptions#keepaliveInterval()}, and one asking for a reply when
   * the client has sent nothing for half of {@link PgWireServerOptions#walSenderTimeout()}; a
   * client silent for the whole timeout is disconnected (logged; no error is sent, as in
   * PostgreSQL).
   *
   * <ul>
   *   <li><b>Demand:</b> {@code wal} is asked for one piece at a time and only while the channel is
   *       writable, so a client that stops reading stops the source; the server holds at most
   *       Netty's write-buffer high-water mark plus one piece.
   *   <li><b>Ownership:</b> each {@link WalPiece} emitted becomes the server's (see there).
   *   <li><b>Order:</b> pieces must be contiguous from {@code start}; a piece that is not fails the
   *       stream (XX000).
   *   <li><b>Thread:</b> {@code walEnd} and {@code feedback} are called on the connection's event
   *       loop and must not block.
   *   <li><b>Ending:</b> the client's CopyDone cancels {@code wal}; the server answers CopyDone,
   *       then (with {@code nextTimeline}) the next-timeline row, CommandComplete {@code
   *       START_STREAMING} and {@code START_REPLICATION}, ReadyForQuery, as PostgreSQL 15 does.
   *       When {@code wal} completes (an end point reached), the server sends CopyDone, goes on
   *       reading the client's messages until its CopyDone, then ends the same way. When {@code
   *       wal} fails, the client gets an ErrorResponse (the SQLSTATE of a {@link
   *       io.zenith.replication.pgwire.PgServerException}, else XX000) and ReadyForQuery: the
   *       session goes on. A client that disconnects, or breaks the protocol (FATAL 08P01), cancels
   *       {@code wal} at once.
   * </ul>
   *
   * @param start where the stream begins: the first piece must start here
   * @param wal the WAL
   * @param walEnd the server's end of WAL (for a safekeeper its commit LSN), sent in every message;
   *     the server sends at least the end of what it has sent
   * @param feedback receives each StandbyStatusUpdate and HotStandbyFeedback, in order
   * @param nextTimeline for a historic timeline: where the next one starts, reported after the
   *     stream ends; null for the current timeline
   */
  record Replication(
      Lsn start,
      Publisher<WalPiece> wal,
      Supplier<Lsn> walEnd,
      Consumer<? super StandbyMessage> feedback,
      @Nullable NextTimeline nextTimeline)
      implements QueryResponse {

    /** PostgreSQL's {@code MAX_SEND_SIZE}: the most WAL one XLogData message carries. */
    public static final int MAX_XLOG_DATA = 128 * 1024;

    public Replication {
      Objects.requireNonNull(start);
      Objects.requireNonNull(wal);
      Objects.requireNonNull(walEnd);
      Objects.requireNonNull(feedback);
    }

    /** The same stream, ending with a switch to {@code timeline} at {@code at}. */
    public Replication withNextTimeline(int timeline, Lsn at) {
      return new Replication(start, wal, walEnd, feedback, new NextTimeline(timeline, at));
    }

    /**
     * The timeline after a historic one.
     *
     * @param timeline its number (unsigned)
     * @param start where it forks off: the end of the streamed timeline
     */
    public record NextTimeline(int timeline, Lsn start) {
      public NextTimeline {
        Objects.requireNonNull(start);
      }
    }
  }

  /** A text CopyOut of one column with tag {@code COPY 0}. */
  static CopyOut copyOut(Publisher<ByteBuf> data) {
    return new CopyOut(data, false, 1, "COPY 0");
  }

  /** As {@link #copyOut}, from heap or direct {@link ByteBuffer}s (wrapped, not copied). */
  static CopyOut copyOutOfBuffers(Publisher<ByteBuffer> data) {
    return copyOut(Flux.from(data).map(Unpooled::wrappedBuffer));
  }

  static Error error(String sqlState, String message) {
    return new Error(PgNotice.error(sqlState, message));
  }

  /** 42601: the command is not one this server knows. */
  static Error syntaxError(String query) {
    return error(
        SqlState.SYNTAX_ERROR, "syntax error: unknown command " + QueryText.abbreviate(query));
  }

  /** 0A000: the command is known but not supported here. */
  static Error notSupported(String query) {
    return error(SqlState.FEATURE_NOT_SUPPORTED, "not supported: " + QueryText.abbreviate(query));
  }
}
