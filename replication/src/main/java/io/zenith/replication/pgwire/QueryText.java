package io.zenith.replication.pgwire;

/** Query strings in messages: one line, at most 80 characters, quoted. */
public final class QueryText {
  private QueryText() {}

  public static String abbreviate(String sql) {
    String oneLine = sql.strip().replaceAll("\\s+", " ");
    return "\"" + (oneLine.length() > 80 ? oneLine.substring(0, 77) + "..." : oneLine) + "\"";
  }
}
