package io.zenith.replication.server;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.QueryText;
import io.zenith.replication.pgwire.SqlState;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import org.jspecify.annotations.Nullable;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Flux;

/** What a {@link QueryHandler} answers a query with. */
public sealed interface QueryResponse
    permits QueryResponse.Rows, QueryResponse.Command, QueryResponse.Error, QueryResponse.CopyOut {

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
   * writing it (or when it arrives after the session ended). If {@code data} fails, the client gets
   * an ErrorResponse instead of CopyDone, as PostgreSQL does; if the client goes away, the
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
