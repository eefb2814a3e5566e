package io.zenith.replication.pgwire;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * The fields of an ErrorResponse or NoticeResponse, one component per field type PostgreSQL 15
 * defines (protocol.sgml, "Error and Notice Message Fields"). Absent fields are {@code null}; field
 * types this class does not know are dropped when decoding, as the protocol asks.
 *
 * <p>Immutable and thread-safe.
 *
 * @param severity {@code S}: ERROR, FATAL, PANIC, WARNING, NOTICE, DEBUG, INFO or LOG (possibly
 *     localized); always present
 * @param severityNonLocalized {@code V}: the same, never localized
 * @param sqlState {@code C}: the SQLSTATE code (see {@link SqlState}); always present
 * @param message {@code M}: the primary message; always present
 * @param detail {@code D}
 * @param hint {@code H}
 * @param position {@code P}: cursor position in the query string, decimal, 1-based
 * @param internalPosition {@code p}
 * @param internalQuery {@code q}
 * @param where {@code W}: the context (call stack)
 * @param schema {@code s}
 * @param table {@code t}
 * @param column {@code c}
 * @param dataType {@code d}
 * @param constraint {@code n}
 * @param file {@code F}: the server source file
 * @param line {@code L}: the server source line
 * @param routine {@code R}: the server source routine
 */
public record PgNotice(
    String severity,
    @Nullable String severityNonLocalized,
    String sqlState,
    String message,
    @Nullable String detail,
    @Nullable String hint,
    @Nullable String position,
    @Nullable String internalPosition,
    @Nullable String internalQuery,
    @Nullable String where,
    @Nullable String schema,
    @Nullable String table,
    @Nullable String column,
    @Nullable String dataType,
    @Nullable String constraint,
    @Nullable String file,
    @Nullable String line,
    @Nullable String routine)
    implements Serializable {

  public PgNotice {
    Objects.requireNonNull(severity, "severity");
    Objects.requireNonNull(sqlState, "sqlState");
    Objects.requireNonNull(message, "message");
  }

  /** An ERROR with the given SQLSTATE and message. */
  public static PgNotice error(String sqlState, String message) {
    return of("ERROR", sqlState, message);
  }

  /** A FATAL error: the server ends the connection after sending it. */
  public static PgNotice fatal(String sqlState, String message) {
    return of("FATAL", sqlState, message);
  }

  /** A notice of the given severity (NOTICE, WARNING, ...). */
  public static PgNotice of(String severity, String sqlState, String message) {
    return new PgNotice(
        severity, severity, sqlState, message, null, null, null, null, null, null, null, null, null,
        null, null, null, null, null);
  }

  public PgNotice withDetail(@Nullable String newDetail) {
    Map<Character, String> f = fields();
    put(f, 'D', newDetail);
    return fromFields(f);
  }

  public PgNotice withHint(@Nullable String newHint) {
    Map<Character, String> f = fields();
    put(f, 'H', newHint);
    return fromFields(f);
  }

  /**
   * With a cursor position: the 1-based character index in the query string where the error is, as
   * PostgreSQL's parser reports it (psql then points at it).
   */
  public PgNotice withPosition(int newPosition) {
    if (newPosition < 1) {
      throw new IllegalArgumentException("position is 1-based, got " + newPosition);
    }
    Map<Character, String> f = fields();
    put(f, 'P', Integer.toString(newPosition));
    return fromFields(f);
  }

  /** True for ERROR, FATAL and PANIC (by the non-localized severity when present). */
  public boolean isError() {
    String s = severityNonLocalized != null ? severityNonLocalized : severity;
    return s.equals("ERROR") || s.equals("FATAL") || s.equals("PANIC");
  }

  /**
   * The present fields by their protocol type byte, in the order PostgreSQL sends them.
   *
   * @return a new mutable map
   */
  public Map<Character, String> fields() {
    Map<Character, String> m = new LinkedHashMap<>();
    put(m, 'S', severity);
    put(m, 'V', severityNonLocalized);
    put(m, 'C', sqlState);
    put(m, 'M', message);
    put(m, 'D', detail);
    put(m, 'H', hint);
    put(m, 'P', position);
    put(m, 'p', internalPosition);
    put(m, 'q', internalQuery);
    put(m, 'W', where);
    put(m, 's', schema);
    put(m, 't', table);
    put(m, 'c', column);
    put(m, 'd', dataType);
    put(m, 'n', constraint);
    put(m, 'F', file);
    put(m, 'L', line);
    put(m, 'R', routine);
    return m;
  }

  /**
   * Builds a notice from fields by type byte. Unknown types are ignored; a missing severity, code
   * or message becomes {@code "ERROR"}, {@code "XX000"} or {@code ""} (a server that leaves them
   * out breaks the protocol, but the rest of what it said is still worth reporting).
   */
  public static PgNotice fromFields(Map<Character, String> f) {
    return new PgNotice(
        f.getOrDefault('S', f.getOrDefault('V', "ERROR")),
        f.get('V'),
        f.getOrDefault('C', SqlState.INTERNAL_ERROR),
        f.getOrDefault('M', ""),
        f.get('D'),
        f.get('H'),
        f.get('P'),
        f.get('p'),
        f.get('q'),
        f.get('W'),
        f.get('s'),
        f.get('t'),
        f.get('c'),
        f.get('d'),
        f.get('n'),
        f.get('F'),
        f.get('L'),
        f.get('R'));
  }

  private static void put(Map<Character, String> m, char type, @Nullable String value) {
    if (value != null) {
      m.put(type, value);
    } else {
      m.remove(type);
    }
  }

  /** {@code SEVERITY SQLSTATE: message} plus detail and hint when present, on one line. */
  @Override
  public String toString() {
    StringBuilder sb = new StringBuilder();
    sb.append(severity).append(' ').append(sqlState).append(": ").append(message);
    if (detail != null) {
      sb.append(" (detail: ").append(detail).append(')');
    }
    if (hint != null) {
      sb.append(" (hint: ").append(hint).append(')');
    }
    return sb.toString();
  }
}
