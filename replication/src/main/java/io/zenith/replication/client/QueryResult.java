package io.zenith.replication.client;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * The outcome of one statement of a simple query: its command tag and, for statements that return
 * rows, the column names and the rows in text form. Immutable and thread-safe (the copy data array
 * excepted: do not modify it).
 *
 * @param commandTag e.g. {@code SELECT 2}, {@code CREATE TABLE}; empty for an empty query
 * @param columns column names; empty for statements without a result set
 * @param rows the rows, in order
 * @param copyData the bytes of a COPY TO STDOUT (CopyOut) result; empty otherwise
 */
public record QueryResult(
    String commandTag, List<String> columns, List<Row> rows, byte[] copyData) {

  public QueryResult {
    Objects.requireNonNull(commandTag);
    columns = List.copyOf(columns);
    rows = List.copyOf(rows);
    Objects.requireNonNull(copyData);
  }

  /** The single value of a one-row, one-column result. */
  public @Nullable String singleValue() {
    if (rows.size() != 1 || columns.size() != 1) {
      throw new IllegalStateException(
          "expected one row of one column, got " + rows.size() + " rows of " + columns.size());
    }
    return rows.get(0).get(0);
  }

  @Override
  public String toString() {
    return "QueryResult["
        + commandTag
        + ", columns="
        + columns
        + ", "
        + rows.size()
        + " rows"
        + (copyData.length > 0 ? ", " + copyData.length + " bytes of copy data" : "")
        + "]";
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof QueryResult q
        && commandTag.equals(q.commandTag)
        && columns.equals(q.columns)
        && rows.equals(q.rows)
        && Arrays.equals(copyData, q.copyData);
  }

  @Override
  public int hashCode() {
    return Objects.hash(commandTag, columns, rows, Arrays.hashCode(copyData));
  }

  /**
   * One row: text values in column order, {@code null} for SQL NULL.
   *
   * @param columns the result's column names (shared by all rows)
   * @param values the values; unmodifiable, may hold nulls
   */
  public record Row(List<String> columns, List<@Nullable String> values) {
    public Row {
      columns = List.copyOf(columns);
      values = Collections.unmodifiableList(new ArrayList<>(values));
      if (columns.size() != values.size()) {
        throw new IllegalArgumentException(
            columns.size() + " columns but " + values.size() + " values");
      }
    }

    public @Nullable String get(int index) {
      return values.get(index);
    }

    /** The value of the first column with this name. */
    public @Nullable String get(String column) {
      int i = columns.indexOf(column);
      if (i < 0) {
        throw new IllegalArgumentException("no column " + column + " in " + columns);
      }
      return values.get(i);
    }

    @Override
    public String toString() {
      return values.toString();
    }
  }
}
