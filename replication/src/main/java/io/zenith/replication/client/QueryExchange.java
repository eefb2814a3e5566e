package io.zenith.replication.client;

import io.zenith.replication.pgwire.BackendMessage;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.CopyBothResponse;
import io.zenith.replication.pgwire.BackendMessage.CopyInResponse;
import io.zenith.replication.pgwire.BackendMessage.CopyOutResponse;
import io.zenith.replication.pgwire.BackendMessage.DataRow;
import io.zenith.replication.pgwire.BackendMessage.EmptyQueryResponse;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.Field;
import io.zenith.replication.pgwire.BackendMessage.ReadyForQuery;
import io.zenith.replication.pgwire.BackendMessage.RowDescription;
import io.zenith.replication.pgwire.CopyData;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.pgwire.QueryText;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;
import reactor.core.publisher.MonoSink;

/**
 * A simple query: Query, then per statement RowDescription / DataRow* / CommandComplete (or
 * EmptyQueryResponse, or a CopyOut stream), up to ReadyForQuery. An ErrorResponse fails the whole
 * query with a {@link PgServerException} once ReadyForQuery arrives (the connection stays usable).
 * COPY FROM STDIN is refused with CopyFail; CopyBoth (START_REPLICATION) is a protocol error here
 * and closes the connection.
 *
 * <p>Results are held in memory until ReadyForQuery: meant for small results.
 */
final class QueryExchange implements Exchange {
  private final String sql;
  private final MonoSink<List<QueryResult>> sink;
  private final List<QueryResult> results = new ArrayList<>();
  private @Nullable ClientHandler handler;
  private List<String> columns = List.of();
  private @Nullable List<QueryResult.Row> rows;
  private @Nullable ByteArrayOutputStream copy;
  private @Nullable PgNotice error;

  QueryExchange(String sql, MonoSink<List<QueryResult>> sink) {
    this.sql = sql;
    this.sink = sink;
  }

  @Override
  public boolean start(ClientHandler h) {
    this.handler = h;
    h.send(new FrontendMessage.Query(sql));
    return false;
  }

  @Override
  public boolean onMessage(BackendMessage m) {
    ClientHandler h = handler;
    if (h == null) {
      throw new IllegalStateException("not started");
    }
    switch (m) {
      case RowDescription d -> {
        columns = d.fields().stream().map(Field::name).toList();
        rows = new ArrayList<>();
      }
      case DataRow d -> {
        List<QueryResult.Row> r = rows;
        if (r == null || d.values().size() != columns.size()) {
          throw PgWireException.protocol(
              h.context()
                  + ": DataRow of "
                  + d.values().size()
                  + " values does not match the "
                  + columns.size()
                  + " columns described");
        }
        List<String> values = new ArrayList<>(d.values().size());
        for (byte[] v : d.values()) {
          values.add(v == null ? null : new String(v, StandardCharsets.UTF_8));
        }
        r.add(new QueryResult.Row(columns, values));
      }
      case CommandComplete c -> finishStatement(c.tag());
      case EmptyQueryResponse e -> finishStatement("");
      case ErrorResponse e -> error = e.notice();
      case CopyOutResponse c -> copy = new ByteArrayOutputStream();
      case CopyData d -> {
        ByteArrayOutputStream out = copy;
        if (out == null) {
          throw PgWireException.protocol(h.context() + ": CopyData outside a COPY");
        }
        out.writeBytes(d.data());
      }
      case CopyDone d -> {
        // the CommandComplete that follows ends the statement
      }
      case CopyInResponse c ->
          h.send(new FrontendMessage.CopyFail("COPY FROM STDIN is not supported by this client"));
      case CopyBothResponse c ->
          throw PgWireException.protocol(
              h.context()
                  + ": query "
                  + abbreviated(sql)
                  + " started a CopyBoth stream; use ReplicationClient.startReplication");
      case ReadyForQuery r -> {
        PgNotice e = error;
        if (e != null) {
          sink.error(new PgServerException(h.context() + ": query " + abbreviated(sql), e));
        } else {
          sink.success(List.copyOf(results));
        }
        return true;
      }
      default ->
          throw PgWireException.protocol(
              h.context() + ": unexpected message during a simple query: " + m);
    }
    return false;
  }

  private void finishStatement(String tag) {
    List<QueryResult.Row> r = rows;
    ByteArrayOutputStream c = copy;
    results.add(
        new QueryResult(
            tag,
            r == null ? List.of() : columns,
            r == null ? List.of() : r,
            c == null ? new byte[0] : c.toByteArray()));
    columns = List.of();
    rows = null;
    copy = null;
  }

  @Override
  public void fail(PgWireException e) {
    sink.error(e);
  }

  static String abbreviated(String sql) {
    return QueryText.abbreviate(sql);
  }
}
