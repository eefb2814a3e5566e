package io.zenith.gateway.control;

import io.zenith.pg.PgDistribution;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * PostgreSQL settings of a compute (its GUCs): which a user may set ({@code pg create --config},
 * {@code pg config --set}, {@code ALTER SYSTEM}), how they are checked, quoted into a configuration
 * file, and read back from the {@code postgresql.auto.conf} PostgreSQL writes for {@code ALTER
 * SYSTEM} (ADR 0012). Stateless, so thread-safe.
 */
public final class ComputeSettings {
  private ComputeSettings() {}

  /** PostgreSQL's configuration-file lexer: an ID, or ID.ID for an extension's setting. */
  private static final Pattern NAME =
      Pattern.compile("[A-Za-z_][A-Za-z0-9_]{0,62}(\\.[A-Za-z_][A-Za-z0-9_]{0,62})?");

  /** Bound on a value: settings are short (paths, lists of libraries, sizes). */
  private static final int MAX_VALUE_LENGTH = 4096;

  /**
   * What the control plane writes into every compute's {@code postgresql.conf}, or decides by how
   * it runs computes: where they listen, how a primary's WAL becomes durable (replication to the
   * safekeepers or the pageserver), what the page store relies on (docs/pg-pitfalls.md §6), and
   * where PostgreSQL finds its files. A user setting one of them would lose commits or break the
   * compute, so they are refused.
   */
  static final Set<String> OWNED =
      Set.of(
          "listen_addresses",
          "port",
          "unix_socket_directories",
          "data_directory",
          "config_file",
          "hba_file",
          "ident_file",
          "external_pid_file",
          "wal_level",
          "wal_log_hints",
          "full_page_writes",
          "track_commit_timestamp",
          "max_wal_senders",
          "max_replication_slots",
          "synchronous_standby_names",
          "synchronous_commit",
          "fsync",
          "max_slot_wal_keep_size",
          "wal_sender_timeout",
          "hot_standby",
          "primary_conninfo",
          "primary_slot_name",
          "restore_command",
          "recovery_target",
          "recovery_target_lsn",
          "recovery_target_name",
          "recovery_target_time",
          "recovery_target_xid",
          "recovery_target_timeline",
          "recovery_target_action",
          "recovery_target_inclusive");

  /** A setting {@code name=value} as given on the command line, checked. */
  public record Setting(String name, String value) {}

  /**
   * Parses {@code name=value}: the name a PostgreSQL setting's name (case-insensitive, kept
   * lower-case), the value one line of at most 4096 characters. Malformed input is an {@link
   * IllegalArgumentException} (a usage error); whether the setting may be set is {@link
   * #checkSettable}'s.
   */
  public static Setting parse(String assignment) {
    int eq = assignment.indexOf('=');
    if (eq < 0) {
      throw new IllegalArgumentException(
          "invalid setting '" + printable(assignment) + "': expected NAME=VALUE");
    }
    String name = parseName(assignment.substring(0, eq).strip());
    return new Setting(name, checkValue(name, assignment.substring(eq + 1)));
  }

  /**
   * Checks a setting name's syntax (an {@link IllegalArgumentException}); returns it lower-case.
   */
  public static String parseName(String name) {
    if (!NAME.matcher(name).matches()) {
      throw new IllegalArgumentException(
          "invalid setting name '"
              + printable(name)
              + "': expected a PostgreSQL setting such as shared_buffers or"
              + " pg_stat_statements.max");
    }
    return name.toLowerCase(Locale.ROOT);
  }

  /** Refuses a setting the control plane owns ({@link #OWNED}). */
  static void checkSettable(String name) {
    if (OWNED.contains(name)) {
      throw new ControlPlaneException(
          "setting '"
              + name
              + "' is owned by the control plane and cannot be changed (see docs/cli.md,"
              + " `zenith pg config`)");
    }
  }

  private static String checkValue(String name, String value) {
    if (value.length() > MAX_VALUE_LENGTH) {
      throw new IllegalArgumentException(
          "the value of setting '" + name + "' is longer than " + MAX_VALUE_LENGTH + " characters");
    }
    for (int i = 0; i < value.length(); i++) {
      if (Character.isISOControl(value.charAt(i))) {
        throw new IllegalArgumentException(
            "the value of setting '"
                + name
                + "' contains a control character (a line break or tab); values are one line");
      }
    }
    return value;
  }

  /**
   * Checks that every name of {@code names} may be set: not owned, and a setting this PostgreSQL
   * lists in {@code postgres --describe-config} (which leaves out those fixed when it was built,
   * such as {@code block_size}), or an extension's ({@code ext.name}, which PostgreSQL accepts as a
   * placeholder).
   */
  static void checkKnown(PgDistribution pg, Iterable<String> names) {
    Set<String> known = null;
    for (String name : names) {
      checkSettable(name);
      if (name.contains(".")) {
        continue;
      }
      if (known == null) {
        known = describeConfig(pg);
      }
      if (!known.contains(name)) {
        throw new ControlPlaneException(
            "unknown setting '" + name + "' (see `postgres --describe-config`)");
      }
    }
  }

  /** The names of the settings a configuration file may set. */
  private static Set<String> describeConfig(PgDistribution pg) {
    PgPrograms.RunResult r = PgPrograms.run(pg, "postgres", List.of("--describe-config"));
    if (r.exit() != 0) {
      throw new ControlPlaneException(
          "cannot list PostgreSQL's settings: postgres --describe-config: "
              + PgPrograms.lastProblem(r.output()));
    }
    Set<String> names = new HashSet<>();
    for (String line : r.output().lines().toList()) {
      String[] f = line.split("\t", -1);
      if (f.length > 1 && !f[1].equals("internal")) {
        names.add(f[0].toLowerCase(Locale.ROOT));
      }
    }
    return names;
  }

  /**
   * {@code name = 'value'} for a configuration file: always quoted, with {@code '} doubled and
   * {@code \} escaped as PostgreSQL's lexer reads them, so that no value ends the line or adds one
   * (values have no control characters, {@link #parse}).
   */
  static String confLine(String name, String value) {
    return name + " = '" + value.replace("\\", "\\\\").replace("'", "''") + "'\n";
  }

  /** A value as {@code pg config} and {@code pg show} print it: bare if plain, else quoted. */
  public static String display(String value) {
    return value.matches("[A-Za-z0-9_.:/+-]+")
        ? value
        : "'" + value.replace("\\", "\\\\").replace("'", "''") + "'";
  }

  /** The entries of a {@code postgresql.auto.conf}, and the lines that were not entries. */
  record AutoConf(SortedMap<String, String> settings, List<String> unreadable) {}

  private static final Pattern AUTO_LINE =
      Pattern.compile(
          "\\s*([A-Za-z_][A-Za-z0-9_.]*)\\s*=?\\s*'((?:[^'\\\\]|''|\\\\.)*)'\\s*(#.*)?");

  /**
   * Reads what {@code ALTER SYSTEM} wrote: {@code name = 'value'} lines (PostgreSQL quotes every
   * value, doubling {@code '} and {@code \}), comments and blank lines skipped; anything else is
   * returned as unreadable (the file was edited by hand).
   */
  static AutoConf parseAutoConf(String text) {
    SortedMap<String, String> m = new TreeMap<>();
    List<String> bad = new ArrayList<>();
    for (String line : text.lines().toList()) {
      String l = line.strip();
      if (l.isEmpty() || l.startsWith("#")) {
        continue;
      }
      Matcher mm = AUTO_LINE.matcher(l);
      if (!mm.matches()) {
        bad.add(l);
        continue;
      }
      m.put(mm.group(1).toLowerCase(Locale.ROOT), unescape(mm.group(2)));
    }
    return new AutoConf(m, bad);
  }

  /** The inside of a quoted configuration value as PostgreSQL's {@code DeescapeQuotedString}. */
  private static String unescape(String s) {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\'' && i + 1 < s.length() && s.charAt(i + 1) == '\'') {
        sb.append('\'');
        i++;
      } else if (c == '\\' && i + 1 < s.length()) {
        char n = s.charAt(++i);
        sb.append(
            switch (n) {
              case 'b' -> '\b';
              case 'f' -> '\f';
              case 'n' -> '\n';
              case 'r' -> '\r';
              case 't' -> '\t';
              default -> n;
            });
      } else {
        sb.append(c);
      }
    }
    return sb.toString();
  }

  /** Why {@code name} is not restored into a compute, or null if it is. */
  static String notRestorable(String name, String value) {
    if (OWNED.contains(name)) {
      return "it is owned by the control plane";
    }
    if (!NAME.matcher(name).matches()) {
      return "it is not a setting name";
    }
    for (int i = 0; i < value.length(); i++) {
      if (Character.isISOControl(value.charAt(i))) {
        return "its value has a control character";
      }
    }
    return null;
  }

  /** One line that shows what a user typed without breaking the error line. */
  private static String printable(String s) {
    String t = s.length() > 80 ? s.substring(0, 80) + "…" : s;
    return t.replaceAll("\\p{Cntrl}", "?");
  }
}
