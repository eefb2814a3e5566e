package io.zenith.gateway.control;

import io.zenith.pg.PgDistribution;
import io.zenith.wal.Lsn;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Collectors;

/**
 * What the control plane writes into a data directory it hands to PostgreSQL: a compute's {@code
 * postgresql.conf} (rewritten at every start from {@code node.toml}: how its primary commits, what
 * the page store relies on, the user's settings), its {@code postgresql.auto.conf} (ALTER SYSTEM of
 * its last run), {@code pg_hba.conf} / {@code pg_ident.conf}, {@code standby.signal} of a read-only
 * compute, and the plain configuration of an exported data directory. Files are 0600 and owned by
 * PostgreSQL's OS user. Stateless, so thread-safe.
 */
final class ComputeConfig {
  private ComputeConfig() {}

  /** Where PostgreSQL keeps what ALTER SYSTEM set. */
  static final String AUTO_CONF = "postgresql.auto.conf";

  /**
   * postgresql.conf, pg_hba.conf, pg_ident.conf (and standby.signal for a read-only compute); a
   * primary commits through the {@code safekeepers} (their ids), or through the pageserver if there
   * are none.
   */
  static void writeCompute(ComputeNode node, PgDistribution pg, List<Integer> safekeepers)
      throws IOException {
    ComputeSpec spec = node.spec();
    StringBuilder conf = new StringBuilder();
    conf.append("# Written by `zenith pg start` for compute '")
        .append(spec.name())
        .append("': ")
        .append(
            spec.primary()
                ? "the primary of branch '" + spec.branch() + "'"
                : "read-only on branch '" + spec.branch() + "' at " + spec.lsn())
        .append(", timeline ")
        .append(spec.timelineId())
        .append(".\n# Rewritten at every start: change node.toml, not this file.\n");
    conf.append("listen_addresses = '127.0.0.1'\n")
        .append("port = ")
        .append(spec.port())
        .append('\n')
        .append("unix_socket_directories = ''\n");
    // Defaults a user may change (`zenith pg config`): left out when the user sets them, so that
    // the file names each setting once.
    for (String d :
        List.of(
            "max_connections = 100",
            "shared_buffers = 128MB",
            "dynamic_shared_memory_type = posix",
            "log_line_prefix = '%m [%p] '",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'")) {
      if (!spec.settings().containsKey(d.substring(0, d.indexOf(' ')))) {
        conf.append(d).append('\n');
      }
    }
    conf
        // What the page store relies on (docs/pg-pitfalls.md §6).
        .append(
            """
            wal_level = replica
            wal_log_hints = on
            full_page_writes = on
            track_commit_timestamp = off
            """)
        // As initdb's defaults: a read-only compute of a basebackup needs at least the values in
        // its pg_control, which the primary (or initdb) wrote.
        .append(
            """
            max_wal_senders = 10
            max_replication_slots = 10
            """);
    if (spec.primary() && !safekeepers.isEmpty()) {
      conf.append("# The safekeepers are this primary's synchronous standbys (DESIGN.md §3): a")
          .append(" commit returns\n# once a majority has its WAL on disk, so this disk holds")
          .append(" nothing of value (fsync off).\n");
      setting(
          conf,
          "synchronous_standby_names",
          "'ANY "
              + (safekeepers.size() / 2 + 1)
              + " ("
              + safekeepers.stream().map(id -> "sk_" + id).collect(Collectors.joining(", "))
              + ")'");
      setting(conf, "synchronous_commit", "on");
      setting(conf, "fsync", "off");
      conf.append("# A safekeeper further behind loses its slot and catches up from its peers.\n");
      setting(conf, "max_slot_wal_keep_size", "1GB");
      conf.append("# A safekeeper that stops answering is dropped, and shutdown does not wait.\n");
      setting(conf, "wal_sender_timeout", "'10s'");
    } else if (spec.primary()) {
      conf.append("# The pageserver is this primary's synchronous standby (no safekeepers):\n")
          .append("# a commit returns once the pageserver has ingested its WAL.\n");
      setting(conf, "synchronous_standby_names", "'" + Computes.PAGESERVER_STANDBY + "'");
      setting(conf, "synchronous_commit", "remote_write");
      setting(conf, "fsync", "on");
      setting(conf, "max_slot_wal_keep_size", "4GB");
    } else {
      setting(conf, "hot_standby", "on");
    }
    if (!spec.settings().isEmpty()) {
      // The user's settings; none is one of the above (ComputeSettings.OWNED).
      conf.append("# Settings of this compute (`zenith pg config ")
          .append(spec.name())
          .append("`).\n");
      spec.settings().forEach((k, v) -> conf.append(ComputeSettings.confLine(k, v)));
    }
    Path data = node.pgdata();
    writeOwned(data.resolve("postgresql.conf"), conf.toString(), pg);
    // What ALTER SYSTEM set on the compute's last run, as PostgreSQL writes the file (it overrides
    // postgresql.conf, and ALTER SYSTEM RESET falls back to it, as on any server).
    StringBuilder auto =
        new StringBuilder(
            "# Do not edit this file manually!\n"
                + "# It will be overwritten by the ALTER SYSTEM command.\n");
    spec.alterSystem().forEach((k, v) -> auto.append(ComputeSettings.confLine(k, v)));
    writeOwned(data.resolve(AUTO_CONF), auto.toString(), pg);
    writeTrustAuth(
        data,
        "# Written by `zenith pg start`: trust on the loopback interface, replication included.",
        pg);
    if (!spec.primary()) {
      writeOwned(data.resolve("standby.signal"), "", pg);
    }
  }

  /**
   * The configuration of an exported data directory of {@code branch} at {@code lsn}: PostgreSQL's
   * defaults for a standalone server (no synchronous standby), trust on local connections.
   */
  static void writeExport(Path dir, String branch, Lsn lsn, PgDistribution pg) throws IOException {
    writeOwned(
        dir.resolve("postgresql.conf"),
        "# Written by `zenith export` of branch '"
            + branch
            + "' at "
            + lsn
            + ": a standalone PostgreSQL 15 data directory.\n"
            + "# Zenith is not involved any more; edit freely.\n"
            + "listen_addresses = 'localhost'\n"
            + "port = 5432\n"
            + "max_connections = 100\n"
            + "shared_buffers = 128MB\n"
            + "dynamic_shared_memory_type = posix\n"
            + "max_wal_size = 1GB\n"
            + "min_wal_size = 80MB\n"
            + "timezone = 'UTC'\n"
            + "log_timezone = 'UTC'\n",
        pg);
    writeTrustAuth(
        dir,
        "# Written by `zenith export`: trust for local connections, as `initdb -A trust`.",
        pg);
  }

  /**
   * {@code pg_hba.conf} trusting local and loopback connections (replication included) under the
   * comment {@code header}, and an empty {@code pg_ident.conf}.
   */
  private static void writeTrustAuth(Path dataDir, String header, PgDistribution pg)
      throws IOException {
    writeOwned(
        dataDir.resolve("pg_hba.conf"),
        header
            + "\n"
            + """
            local   all           all                        trust
            host    all           all         127.0.0.1/32   trust
            host    all           all         ::1/128        trust
            local   replication   all                        trust
            host    replication   all         127.0.0.1/32   trust
            host    replication   all         ::1/128        trust
            """,
        pg);
    writeOwned(dataDir.resolve("pg_ident.conf"), "", pg);
  }

  private static void setting(StringBuilder conf, String name, String value) {
    conf.append(name).append(" = ").append(value).append('\n');
  }

  /** Writes {@code file} 0600 and gives it to PostgreSQL's OS user (PostgreSQL refuses others). */
  private static void writeOwned(Path file, String content, PgDistribution pg) throws IOException {
    Files.writeString(file, content, StandardCharsets.UTF_8);
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
    pg.giveToPgUser(file);
  }
}
