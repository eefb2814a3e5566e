package io.zenith.gateway.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;

/**
 * An aligned text table like PostgreSQL's tools print: a header row of upper-case names, then one
 * row per item, columns left-aligned and separated by two spaces, the last column unpadded. Widths
 * count code points (the branch tree's box characters are one column each). Not thread-safe.
 */
final class Table {
  private final List<String> header;
  private final List<List<String>> rows = new ArrayList<>();

  Table(String... header) {
    this.header = List.of(header);
  }

  Table row(String... values) {
    if (values.length != header.size()) {
      throw new IllegalArgumentException(
          values.length + " values for " + header.size() + " columns");
    }
    List<String> r = new ArrayList<>();
    for (String v : values) {
      r.add(v == null ? "" : v);
    }
    rows.add(r);
    return this;
  }

  void print(PrintWriter out) {
    int[] widths = new int[header.size()];
    for (int i = 0; i < widths.length; i++) {
      widths[i] = width(header.get(i));
      for (List<String> r : rows) {
        widths[i] = Math.max(widths[i], width(r.get(i)));
      }
    }
    line(out, header, widths);
    for (List<String> r : rows) {
      line(out, r, widths);
    }
    out.flush();
  }

  private static void line(PrintWriter out, List<String> values, int[] widths) {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < values.size(); i++) {
      String v = values.get(i);
      sb.append(v);
      if (i < values.size() - 1) {
        sb.append(" ".repeat(widths[i] - width(v) + 2));
      }
    }
    out.println(sb.toString().stripTrailing());
  }

  private static int width(String s) {
    return s.codePointCount(0, s.length());
  }
}
