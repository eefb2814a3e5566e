package io.zenith.ingest.wal.records;

import io.zenith.wal.Lsn;
import java.time.Instant;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads pg_waldump's default output and pulls field values out of its {@code desc:} text with
 * regular expressions written from PostgreSQL's {@code *desc.c} format strings, independently of
 * our {@code describe()} code. Stateless and thread-safe.
 */
final class PgWaldumpOracle {
  private PgWaldumpOracle() {}

  /** A block reference as pg_waldump prints it: {@code spc/db/rel[ fork f] blk n[ FPW]}. */
  record BlockText(int id, String rel, String fork, long blk, boolean image) {}

  /** One line of pg_waldump output. */
  record Line(
      String rmgr,
      int recLen,
      int totLen,
      long xid,
      Lsn lsn,
      Lsn prev,
      String type,
      String desc,
      List<BlockText> blocks) {

    BlockText block(int id) {
      for (BlockText b : blocks) {
        if (b.id() == id) {
          return b;
        }
      }
      return null;
    }
  }

  private static final Pattern LINE =
      Pattern.compile(
          "^rmgr: (\\S+)\\s+len \\(rec/tot\\):\\s*(\\d+)/\\s*(\\d+), tx:\\s*(\\d+), lsn: (\\S+),"
              + " prev (\\S+), desc: (\\S+) ?(.*)$");

  private static final Pattern BLOCK =
      Pattern.compile(
          ", blkref #(\\d+): rel (\\d+/\\d+/\\d+)(?: fork (\\w+))? blk (\\d+)"
              + "( FPW(?: for WAL verification)?)?");

  static List<Line> parse(String output) {
    List<Line> out = new ArrayList<>();
    for (String s : output.split("\n")) {
      if (s.isBlank()) {
        continue;
      }
      Matcher m = LINE.matcher(s);
      if (!m.matches()) {
        throw new IllegalArgumentException("not a pg_waldump record line: " + s);
      }
      String rest = m.group(8);
      int cut = rest.indexOf(", blkref #");
      String desc = (cut >= 0 ? rest.substring(0, cut) : rest).strip();
      List<BlockText> blocks = new ArrayList<>();
      if (cut >= 0) {
        Matcher b = BLOCK.matcher(rest.substring(cut));
        while (b.find()) {
          blocks.add(
              new BlockText(
                  Integer.parseInt(b.group(1)),
                  b.group(2),
                  b.group(3) == null ? "main" : b.group(3),
                  Long.parseLong(b.group(4)),
                  b.group(5) != null));
        }
      }
      out.add(
          new Line(
              m.group(1),
              Integer.parseInt(m.group(2)),
              Integer.parseInt(m.group(3)),
              Long.parseLong(m.group(4)),
              Lsn.parse(m.group(5)),
              Lsn.parse(m.group(6)),
              m.group(7),
              desc,
              List.copyOf(blocks)));
    }
    return out;
  }

  private static final DateTimeFormatter TIME =
      DateTimeFormatter.ofPattern("uuuu-MM-dd HH:mm:ss.SSSSSS z", Locale.ROOT);

  /** A {@code timestamptz_to_str} string back to an instant. */
  static Instant time(String text) {
    return ZonedDateTime.parse(text, TIME).toInstant();
  }

  /** {@code relpathperm} output back to {@code spc/db/rel} and the fork name. */
  static String[] relPath(String path) {
    Matcher m =
        Pattern.compile(
                "(?:global/(\\d+)|base/(\\d+)/(\\d+)|pg_tblspc/(\\d+)/PG_15_\\d+/(\\d+)/(\\d+))"
                    + "(?:_(\\w+))?")
            .matcher(path);
    if (!m.matches()) {
      throw new IllegalArgumentException("not a relation path: " + path);
    }
    String rel;
    if (m.group(1) != null) {
      rel = "1664/0/" + m.group(1);
    } else if (m.group(2) != null) {
      rel = "1663/" + m.group(2) + "/" + m.group(3);
    } else {
      rel = m.group(4) + "/" + m.group(5) + "/" + m.group(6);
    }
    return new String[] {rel, m.group(7) == null ? "main" : m.group(7)};
  }

  private static final String N = "(\\d+)";
  private static final String HEX = "0x([0-9A-F]{2})";
  private static final String INFOBITS = " ?([A-Z_ ]*)";
  private static final String TS = "(\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{6} [^\\s;]+)";

  /** Regular expressions per {@code rmgr/type}, with the names of their groups in order. */
  private record Form(Pattern pattern, String[] names) {}

  private static final Map<String, Form> FORMS = new LinkedHashMap<>();

  private static void form(String key, String regex, String... names) {
    FORMS.put(key, new Form(Pattern.compile(regex), names));
  }

  static {
    String checkpoint =
        "redo (\\S+); tli N; prev tli N; fpw (true|false); xid N:N; oid N; multi N; offset N;"
            + " oldest xid N in DB N; oldest multi N in DB N;"
            + " oldest/newest commit timestamp xid: N/N; oldest running xid N; (shutdown|online)";
    String[] cpNames = {
      "redo",
      "tli",
      "prevTli",
      "fpw",
      "epoch",
      "xid",
      "oid",
      "multi",
      "offset",
      "oldestXid",
      "oldestXidDb",
      "oldestMulti",
      "oldestMultiDb",
      "oldestCommitTsXid",
      "newestCommitTsXid",
      "oldestActiveXid",
      "kind"
    };
    form("XLOG/CHECKPOINT_SHUTDOWN", checkpoint.replace("N", N), cpNames);
    form("XLOG/CHECKPOINT_ONLINE", checkpoint.replace("N", N), cpNames);
    form("XLOG/NEXTOID", N, "oid");
    form(
        "XLOG/PARAMETER_CHANGE",
        ("max_connections=N max_worker_processes=N max_wal_senders=N max_prepared_xacts=N"
                + " max_locks_per_xact=N wal_level=(\\S+) wal_log_hints=(on|off)"
                + " track_commit_timestamp=(on|off)")
            .replace("N", N),
        "maxConnections",
        "maxWorkerProcesses",
        "maxWalSenders",
        "maxPreparedXacts",
        "maxLocksPerXact",
        "walLevel",
        "walLogHints",
        "trackCommitTimestamp");
    form(
        "XLOG/END_OF_RECOVERY",
        "tli N; prev tli N; time ".replace("N", N) + TS,
        "tli",
        "prevTli",
        "time");
    form("XLOG/FPI", "");
    form("XLOG/FPI_FOR_HINT", "");
    form("XLOG/SWITCH", "");
    form("Transaction/COMMIT", "(?:(\\d+): )?" + TS + "(.*)", "twophaseXid", "time", "sections");
    form(
        "Transaction/COMMIT_PREPARED",
        "(?:(\\d+): )?" + TS + "(.*)",
        "twophaseXid",
        "time",
        "sections");
    form("Transaction/ABORT", "(?:(\\d+): )?" + TS + "(.*)", "twophaseXid", "time", "sections");
    form(
        "Transaction/ABORT_PREPARED",
        "(?:(\\d+): )?" + TS + "(.*)",
        "twophaseXid",
        "time",
        "sections");
    form("Transaction/PREPARE", "gid (.*?): " + TS + "(.*)", "gid", "time", "sections");
    form(
        "Transaction/ASSIGNMENT", "xtop N: subxacts:([\\d ]*)".replace("N", N), "xtop", "subxacts");
    form("Storage/CREATE", "(\\S+)", "path");
    form(
        "Storage/TRUNCATE",
        "(\\S+) to N blocks flags (-?\\d+)".replace("N", N),
        "path",
        "blkno",
        "flags");
    form(
        "Database/CREATE_FILE_COPY",
        "copy dir N/N to N/N".replace("N", N),
        "srcTablespaceId",
        "srcDbId",
        "tablespaceId",
        "dbId");
    form("Database/CREATE_WAL_LOG", "create dir N/N".replace("N", N), "tablespaceId", "dbId");
    form("Database/DROP", "dir((?: \\d+/\\d+)*)", "dirs");
    String insert = "off N flags " + HEX;
    form("Heap/INSERT", insert.replace("N", N), "off", "flags");
    form("Heap/INSERT+INIT", insert.replace("N", N), "off", "flags");
    form(
        "Heap/DELETE",
        ("off N flags " + HEX + INFOBITS).replace("N", N),
        "off",
        "flags",
        "infobits");
    String update = "off N xmax N flags " + HEX + INFOBITS + "; new off N xmax N";
    for (String t : List.of("UPDATE", "UPDATE+INIT", "HOT_UPDATE", "HOT_UPDATE+INIT")) {
      form(
          "Heap/" + t,
          update.replace("N", N),
          "oldOff",
          "oldXmax",
          "flags",
          "infobits",
          "newOff",
          "newXmax");
    }
    form(
        "Heap/LOCK",
        ("off N: xid N: flags " + HEX + INFOBITS).replace("N", N),
        "off",
        "xid",
        "flags",
        "infobits");
    form("Heap/INPLACE", "off N".replace("N", N), "off");
    form("Heap2/MULTI_INSERT", ("N tuples flags " + HEX).replace("N", N), "ntuples", "flags");
    form("Heap2/MULTI_INSERT+INIT", ("N tuples flags " + HEX).replace("N", N), "ntuples", "flags");
    form(
        "Heap2/LOCK_UPDATED",
        ("off N: xmax N: flags " + HEX + INFOBITS).replace("N", N),
        "off",
        "xmax",
        "flags",
        "infobits");
    form("Heap2/VISIBLE", ("cutoff xid N flags " + HEX).replace("N", N), "cutoffXid", "flags");
    form("Heap2/FREEZE_PAGE", "cutoff xid N ntuples N".replace("N", N), "cutoffXid", "ntuples");
    form(
        "Heap2/PRUNE",
        "latestRemovedXid N nredirected N ndead N".replace("N", N),
        "latestRemovedXid",
        "nredirected",
        "ndead");
    form("Heap2/VACUUM", "nunused N".replace("N", N), "nunused");
    form("CLOG/ZEROPAGE", "page (-?\\d+)", "pageno");
    form("CLOG/TRUNCATE", "page (-?\\d+); oldestXact N".replace("N", N), "pageno", "oldestXact");
    form("MultiXact/ZERO_OFF_PAGE", "(-?\\d+)", "pageno");
    form("MultiXact/ZERO_MEM_PAGE", "(-?\\d+)", "pageno");
    form(
        "MultiXact/CREATE_ID",
        "N offset N nmembers (-?\\d+): ?(.*)".replace("N", N),
        "mid",
        "moff",
        "nmembers",
        "members");
    form(
        "MultiXact/TRUNCATE_ID",
        "offsets \\[N, N\\), members \\[N, N\\)".replace("N", N),
        "startTruncOff",
        "endTruncOff",
        "startTruncMemb",
        "endTruncMemb");
    form(
        "RelMap/UPDATE",
        "database N tablespace N size (-?\\d+)".replace("N", N),
        "dbId",
        "tsId",
        "nbytes");
    form(
        "Standby/RUNNING_XACTS",
        ("nextXid N latestCompletedXid N oldestRunningXid N(?:; (\\d+) xacts:([\\d ]*))?"
                + "(; subxid ovf)?")
            .replace("N", N),
        "nextXid",
        "latestCompletedXid",
        "oldestRunningXid",
        "xcnt",
        "xids",
        "overflow");
  }

  /** The record kinds the oracle knows, as {@code rmgr/type}. */
  static java.util.Set<String> kinds() {
    return FORMS.keySet();
  }

  /**
   * Field values of a pg_waldump description, normalized: numbers in decimal, lists as
   * space-separated values, relation paths as {@code spc/db/rel}. Transaction sections are split
   * into their own fields.
   */
  static Map<String, String> fields(Line line) {
    String key = line.rmgr() + "/" + line.type();
    Form f = FORMS.get(key);
    if (f == null) {
      throw new IllegalArgumentException("no oracle for " + key);
    }
    Matcher m = f.pattern().matcher(line.desc());
    if (!m.matches()) {
      throw new AssertionError("pg_waldump desc of " + key + " not understood: " + line.desc());
    }
    Map<String, String> out = new LinkedHashMap<>();
    for (int i = 0; i < f.names().length; i++) {
      String v = m.group(i + 1);
      out.put(f.names()[i], v == null ? "" : v.strip());
    }
    normalize(key, out);
    return out;
  }

  private static void normalize(String key, Map<String, String> f) {
    f.computeIfPresent("flags", (k, v) -> key.startsWith("Heap") ? hex(v) : v);
    f.computeIfPresent("time", (k, v) -> time(v).toString());
    f.computeIfPresent("infobits", (k, v) -> String.join(" ", v.strip().split("\\s+")).strip());
    f.computeIfPresent("subxacts", (k, v) -> v.strip());
    f.computeIfPresent("xids", (k, v) -> v.strip());
    f.computeIfPresent("overflow", (k, v) -> Boolean.toString(!v.isEmpty()));
    f.computeIfPresent("xcnt", (k, v) -> v.isEmpty() ? "0" : v);
    if (f.containsKey("path")) {
      String[] rf = relPath(f.remove("path"));
      f.put("rel", rf[0]);
      if (key.equals("Storage/CREATE")) {
        f.put("fork", rf[1]);
      }
    }
    if (key.equals("Transaction/COMMIT") || key.equals("Transaction/COMMIT_PREPARED")) {
      f.computeIfPresent("twophaseXid", (k, v) -> v.isEmpty() ? "0" : v);
    }
    if (key.equals("Transaction/ABORT") || key.equals("Transaction/ABORT_PREPARED")) {
      f.computeIfPresent("twophaseXid", (k, v) -> v.isEmpty() ? "0" : v);
    }
    String sections = f.remove("sections");
    if (sections != null && !sections.isEmpty()) {
      if (!sections.startsWith("; ")) {
        throw new AssertionError("unexpected text after the timestamp: " + sections);
      }
      for (String s : sections.substring(2).split("; ")) {
        int colon = s.indexOf(':');
        if (s.startsWith("relcache init file inval ")) {
          f.put("relcacheInitFileInval", s.substring("relcache init file inval ".length()));
        } else if (s.equals("sync") || s.equals("apply_feedback")) {
          f.put(s, "true");
        } else if (s.startsWith("origin: ")) {
          Matcher om = Pattern.compile("origin: node (\\d+), lsn (\\S+), at (.+)").matcher(s);
          if (!om.matches()) {
            throw new AssertionError("unexpected origin section: " + s);
          }
          f.put("origin", om.group(1) + " " + om.group(2) + " " + time(om.group(3)));
        } else if (colon > 0) {
          String label = s.substring(0, colon);
          String value = s.substring(colon + 1).strip();
          switch (label) {
            case "rels", "rels(commit)", "rels(abort)" -> {
              List<String> rels = new ArrayList<>();
              for (String p : value.split(" ")) {
                rels.add(relPath(p)[0]);
              }
              f.put(label, String.join(" ", rels));
            }
            case "inval msgs" -> f.put("ninvals", Integer.toString(countInvals(value)));
            default -> f.put(label, value);
          }
        } else {
          throw new AssertionError("unexpected transaction section: " + s);
        }
      }
    }
    if (key.equals("MultiXact/CREATE_ID")) {
      Matcher mm = Pattern.compile("(\\d+) \\((\\w+)\\)").matcher(f.get("members"));
      List<String> members = new ArrayList<>();
      while (mm.find()) {
        members.add(mm.group(1) + ":" + mm.group(2));
      }
      f.put("members", String.join(" ", members));
    }
    if (key.equals("Database/DROP")) {
      f.put("dirs", f.get("dirs").strip());
    }
  }

  private static String hex(String v) {
    return Integer.toString(Integer.parseInt(v, 16));
  }

  private static int countInvals(String text) {
    Matcher m =
        Pattern.compile(
                "catcache -?\\d+|catalog \\d+|relcache \\d+|smgr|relmap db \\d+|snapshot \\d+"
                    + "|unrecognized id -?\\d+")
            .matcher(text);
    int n = 0;
    while (m.find()) {
      n++;
    }
    return n;
  }
}
