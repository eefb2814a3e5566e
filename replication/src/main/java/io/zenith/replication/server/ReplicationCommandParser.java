package io.zenith.replication.server;

import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.replication.server.ReplicationCommand.CreateReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.DropReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.IdentifySystem;
import io.zenith.replication.server.ReplicationCommand.ReadReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.Show;
import io.zenith.replication.server.ReplicationCommand.StartReplication;
import io.zenith.replication.server.ReplicationCommand.TimelineHistory;
import io.zenith.wal.Lsn;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import org.jspecify.annotations.Nullable;

/**
 * Recursive descent over PostgreSQL 15's replication grammar ({@code repl_gram.y}, {@code
 * repl_scanner.l}), physical commands only. Tokens are scanned on demand, so that the first error
 * reported is the first one in the text. Not thread-safe: one instance per parse.
 */
final class ReplicationCommandParser {
  /** NAMEDATALEN - 1: the longest slot name, in bytes. */
  private static final int MAX_SLOT_NAME_BYTES = 63;

  private static final String COMMANDS =
      "IDENTIFY_SYSTEM, START_REPLICATION, TIMELINE_HISTORY, CREATE_REPLICATION_SLOT,"
          + " DROP_REPLICATION_SLOT, READ_REPLICATION_SLOT or SHOW";

  private enum Kind {
    /** An unquoted identifier or keyword. */
    WORD,
    /** A double-quoted identifier. */
    QUOTED,
    /** A single-quoted string. */
    STRING,
    /** Decimal digits. */
    NUMBER,
    /** Hex digits, a slash, hex digits. */
    LSN,
    /** Any other single character. */
    SYMBOL,
    END
  }

  /**
   * @param value the identifier (lower-cased if unquoted) or string contents; the raw text else
   * @param raw the token as written, for messages
   * @param start index of its first character in the text
   */
  private record Token(Kind kind, String value, String raw, int start) {
    boolean isKeyword(String keyword) {
      return kind == Kind.WORD && raw.equalsIgnoreCase(keyword);
    }

    boolean isSymbol(char c) {
      return kind == Kind.SYMBOL && raw.charAt(0) == c;
    }

    boolean isIdentifier() {
      return kind == Kind.WORD || kind == Kind.QUOTED;
    }
  }

  private final String text;
  private int pos;
  private @Nullable Token peeked;

  ReplicationCommandParser(String text) {
    this.text = text;
  }

  /**
   * The error PostgreSQL's SQL parser gives a replication command sent on a connection that is not
   * a replication connection: it does not know the word.
   */
  static PgNotice notInReplicationSession(String sql) {
    Token first = new ReplicationCommandParser(sql).peekLenient();
    return syntaxNotice(first, null, sql);
  }

  ReplicationCommand parse() {
    Token first = next();
    if (first.kind() != Kind.WORD) {
      throw unknownCommand(first);
    }
    ReplicationCommand command =
        switch (first.raw().toUpperCase(Locale.ROOT)) {
          case "IDENTIFY_SYSTEM" -> new IdentifySystem();
          case "START_REPLICATION" -> startReplication();
          case "TIMELINE_HISTORY" -> new TimelineHistory(timeline());
          case "CREATE_REPLICATION_SLOT" -> createSlot();
          case "DROP_REPLICATION_SLOT" -> dropSlot();
          case "READ_REPLICATION_SLOT" -> new ReadReplicationSlot(slotName());
          case "SHOW" -> new Show(settingName());
          case "BASE_BACKUP" ->
              throw error(
                  SqlState.FEATURE_NOT_SUPPORTED,
                  "BASE_BACKUP is not supported by this server",
                  first);
          default -> throw unknownCommand(first);
        };
    Token t = next();
    if (t.isSymbol(';')) {
      t = next();
    }
    if (t.kind() != Kind.END) {
      throw syntaxError(t, "the end of " + command.tag());
    }
    return command;
  }

  private StartReplication startReplication() {
    String slot = nextIfKeyword("SLOT") ? slotName() : null;
    if (peek().isKeyword("LOGICAL")) {
      throw error(
          SqlState.FEATURE_NOT_SUPPORTED,
          "logical replication is not supported by this server",
          peek());
    }
    Lsn start =
        lsn(
            nextIfKeyword("PHYSICAL")
                ? "a WAL location (X/X)"
                : (slot == null ? "SLOT, " : "") + "PHYSICAL or a WAL location (X/X)");
    int timeline = nextIfKeyword("TIMELINE") ? timeline() : 0;
    return new StartReplication(slot, start, timeline);
  }

  private CreateReplicationSlot createSlot() {
    String slot = slotName();
    boolean temporary = nextIfKeyword("TEMPORARY");
    Token kind = next();
    if (kind.isKeyword("LOGICAL")) {
      throw error(
          SqlState.FEATURE_NOT_SUPPORTED,
          "logical replication slots are not supported by this server",
          kind);
    }
    if (!kind.isKeyword("PHYSICAL")) {
      throw syntaxError(kind, temporary ? "PHYSICAL" : "TEMPORARY or PHYSICAL");
    }
    boolean reserveWal = false;
    if (peek().isSymbol('(')) {
      next();
      boolean given = false;
      do {
        Token name = next();
        if (!name.isIdentifier()) {
          throw syntaxError(name, "an option name");
        }
        Token value = null;
        Kind k = peek().kind();
        if (k == Kind.WORD || k == Kind.QUOTED || k == Kind.STRING || k == Kind.NUMBER) {
          value = next();
        }
        switch (name.value()) {
          case "reserve_wal" -> {
            if (given) {
              throw error(SqlState.SYNTAX_ERROR, "conflicting or redundant options", name);
            }
            given = true;
            reserveWal = bool(name, value);
          }
          case "snapshot", "two_phase" -> throw logicalOnly(name);
          default ->
              throw error(
                  SqlState.SYNTAX_ERROR,
                  "unrecognized CREATE_REPLICATION_SLOT option \"" + name.value() + "\"",
                  name);
        }
      } while (nextIf(','));
      Token close = next();
      if (!close.isSymbol(')')) {
        throw syntaxError(close, "\",\" or \")\" in the option list");
      }
    } else {
      // The syntax before PostgreSQL 15: bare keywords.
      while (peek().kind() == Kind.WORD) {
        Token option = peek();
        switch (option.raw().toUpperCase(Locale.ROOT)) {
          case "RESERVE_WAL" -> {
            if (reserveWal) {
              throw error(SqlState.SYNTAX_ERROR, "conflicting or redundant options", option);
            }
            reserveWal = true;
          }
          case "EXPORT_SNAPSHOT", "NOEXPORT_SNAPSHOT", "USE_SNAPSHOT", "TWO_PHASE" ->
              throw logicalOnly(option);
          default -> throw syntaxError(option, "RESERVE_WAL, an option list or the end");
        }
        next();
      }
    }
    return new CreateReplicationSlot(slot, temporary, reserveWal);
  }

  private DropReplicationSlot dropSlot() {
    String slot = slotName();
    return new DropReplicationSlot(slot, nextIfKeyword("WAIT"));
  }

  /** A slot name, checked as PostgreSQL's {@code ReplicationSlotValidateName} checks it. */
  private String slotName() {
    Token t = next();
    if (!t.isIdentifier()) {
      throw syntaxError(t, "a replication slot name");
    }
    String name = t.value();
    if (name.getBytes(StandardCharsets.UTF_8).length > MAX_SLOT_NAME_BYTES) {
      throw error(SqlState.NAME_TOO_LONG, "replication slot name \"" + name + "\" is too long", t);
    }
    for (int i = 0; i < name.length(); i++) {
      char c = name.charAt(i);
      if (!(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_')) {
        throw new PgServerException(
            "replication command",
            notice(
                    SqlState.INVALID_NAME,
                    "replication slot name \"" + name + "\" contains invalid character",
                    t)
                .withHint(
                    "Replication slot names may only contain lower case letters, numbers, and"
                        + " the underscore character."));
      }
    }
    return name;
  }

  /** {@code name [. name ...]}: dotted names are custom settings ({@code neon.tenant_id}). */
  private String settingName() {
    StringBuilder name = new StringBuilder();
    do {
      Token t = next();
      if (!t.isIdentifier()) {
        throw syntaxError(t, "a setting name");
      }
      if (!name.isEmpty()) {
        name.append('.');
      }
      name.append(t.value());
    } while (nextIf('.'));
    return name.toString();
  }

  private Lsn lsn(String expected) {
    Token t = next();
    if (t.kind() != Kind.LSN) {
      throw syntaxError(t, expected);
    }
    try {
      return Lsn.parse(t.raw());
    } catch (IllegalArgumentException e) {
      throw error(
          SqlState.SYNTAX_ERROR,
          "invalid WAL location \"" + t.raw() + "\": each half must be 1 to 8 hex digits",
          t);
    }
  }

  private int timeline() {
    Token t = next();
    if (t.kind() != Kind.NUMBER) {
      throw syntaxError(t, "a timeline number");
    }
    // More than 10 digits cannot be a uint32, whatever they are.
    long value = t.raw().length() > 10 ? -1 : Long.parseLong(t.raw());
    if (value < 0 || value > 0xFFFF_FFFFL) {
      throw error(SqlState.SYNTAX_ERROR, "timeline " + t.raw() + " is out of range", t);
    }
    if (value == 0) {
      throw error(SqlState.SYNTAX_ERROR, "invalid timeline 0", t);
    }
    return (int) value;
  }

  /** PostgreSQL's {@code defGetBoolean}: no value, 0, 1, true, false, on, off. */
  private boolean bool(Token name, @Nullable Token value) {
    if (value == null) {
      return true;
    }
    switch (value.value().toLowerCase(Locale.ROOT)) {
      case "1", "true", "on" -> {
        return true;
      }
      case "0", "false", "off" -> {
        return false;
      }
      default -> {
        throw error(SqlState.SYNTAX_ERROR, name.value() + " requires a Boolean value", value);
      }
    }
  }

  private PgServerException logicalOnly(Token option) {
    return error(
        SqlState.SYNTAX_ERROR,
        "option \""
            + option.raw().toLowerCase(Locale.ROOT)
            + "\" is only valid for logical replication slots",
        option);
  }

  private PgServerException unknownCommand(Token t) {
    if (t.kind() == Kind.END) {
      return syntaxError(t, "a replication command: " + COMMANDS);
    }
    return error(
        SqlState.SYNTAX_ERROR,
        "syntax error at or near \"" + t.raw() + "\": not a replication command (" + COMMANDS + ")",
        t);
  }

  private PgServerException syntaxError(Token t, String expected) {
    return new PgServerException("replication command", syntaxNotice(t, expected, text));
  }

  private static PgNotice syntaxNotice(Token t, @Nullable String expected, String text) {
    String where = t.kind() == Kind.END ? "at end of input" : "at or near \"" + t.raw() + "\"";
    return PgNotice.error(
            SqlState.SYNTAX_ERROR,
            "syntax error " + where + (expected == null ? "" : ": expected " + expected))
        .withPosition(position(text, t));
  }

  private PgServerException error(String sqlState, String message, Token at) {
    return new PgServerException("replication command", notice(sqlState, message, at));
  }

  private PgNotice notice(String sqlState, String message, Token at) {
    return PgNotice.error(sqlState, message).withPosition(position(text, at));
  }

  /** PostgreSQL reports positions in characters, 1-based. */
  private static int position(String text, Token t) {
    return text.codePointCount(0, Math.min(t.start(), text.length())) + 1;
  }

  // ---- scanner ----

  private Token peek() {
    Token t = peeked;
    if (t == null) {
      t = scan();
      peeked = t;
    }
    return t;
  }

  private Token next() {
    Token t = peek();
    peeked = null;
    return t;
  }

  private boolean nextIfKeyword(String keyword) {
    if (peek().isKeyword(keyword)) {
      next();
      return true;
    }
    return false;
  }

  private boolean nextIf(char symbol) {
    if (peek().isSymbol(symbol)) {
      next();
      return true;
    }
    return false;
  }

  /** The first token, or for a text that does not scan, its first non-blank character. */
  private Token peekLenient() {
    try {
      return peek();
    } catch (PgServerException e) {
      skipSpace();
      return new Token(
          Kind.SYMBOL, text.substring(pos, pos + 1), text.substring(pos, pos + 1), pos);
    }
  }

  private void skipSpace() {
    while (pos < text.length() && " \t\n\r\f".indexOf(text.charAt(pos)) >= 0) {
      pos++;
    }
  }

  private Token scan() {
    skipSpace();
    int start = pos;
    if (start >= text.length()) {
      return new Token(Kind.END, "", "", start);
    }
    char c = text.charAt(start);
    if (c == '"' || c == '\'') {
      return quoted(c);
    }
    if (isHex(c)) {
      int slash = scanWhile(start, ReplicationCommandParser::isHex);
      if (slash < text.length() && text.charAt(slash) == '/' && slash + 1 < text.length()) {
        if (isHex(text.charAt(slash + 1))) {
          pos = scanWhile(slash + 1, ReplicationCommandParser::isHex);
          String raw = text.substring(start, pos);
          return new Token(Kind.LSN, raw, raw, start);
        }
      }
    }
    if (c >= '0' && c <= '9') {
      pos = scanWhile(start, ch -> ch >= '0' && ch <= '9');
      String raw = text.substring(start, pos);
      return new Token(Kind.NUMBER, raw, raw, start);
    }
    if (isIdentStart(c)) {
      pos = scanWhile(start + 1, ch -> isIdentStart(ch) || ch >= '0' && ch <= '9' || ch == '$');
      String raw = text.substring(start, pos);
      return new Token(Kind.WORD, downcase(raw), raw, start);
    }
    pos = start + Character.charCount(text.codePointAt(start));
    String raw = text.substring(start, pos);
    return new Token(Kind.SYMBOL, raw, raw, start);
  }

  /** A quoted identifier or string; the quote character doubled stands for itself. */
  private Token quoted(char quote) {
    int start = pos;
    StringBuilder value = new StringBuilder();
    int i = start + 1;
    while (true) {
      int close = text.indexOf(quote, i);
      if (close < 0) {
        throw error(
            SqlState.SYNTAX_ERROR,
            quote == '"' ? "unterminated quoted identifier" : "unterminated quoted string",
            new Token(Kind.SYMBOL, String.valueOf(quote), String.valueOf(quote), start));
      }
      value.append(text, i, close);
      if (close + 1 < text.length() && text.charAt(close + 1) == quote) {
        value.append(quote);
        i = close + 2;
      } else {
        pos = close + 1;
        break;
      }
    }
    String raw = text.substring(start, pos);
    if (quote == '"') {
      if (value.isEmpty()) {
        throw error(
            SqlState.SYNTAX_ERROR,
            "zero-length delimited identifier",
            new Token(Kind.QUOTED, "", raw, start));
      }
      return new Token(Kind.QUOTED, value.toString(), raw, start);
    }
    return new Token(Kind.STRING, value.toString(), raw, start);
  }

  private interface CharTest {
    boolean test(char c);
  }

  private int scanWhile(int from, CharTest test) {
    int i = from;
    while (i < text.length() && test.test(text.charAt(i))) {
      i++;
    }
    return i;
  }

  private static boolean isHex(char c) {
    return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F';
  }

  /** As PostgreSQL's scanner: ASCII letters, underscore, and any non-ASCII character. */
  private static boolean isIdentStart(char c) {
    return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80;
  }

  /** PostgreSQL lower-cases only ASCII letters of unquoted identifiers. */
  private static String downcase(String s) {
    StringBuilder sb = new StringBuilder(s.length());
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      sb.append(c >= 'A' && c <= 'Z' ? (char) (c + ('a' - 'A')) : c);
    }
    return sb.toString();
  }
}
