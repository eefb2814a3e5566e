package io.zenith.replication.server;

import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyMessage;
import io.zenith.wal.Lsn;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;
import org.reactivestreams.Publisher;

/**
 * A command of a physical replication connection ({@code replication=true}), as PostgreSQL 15's
 * walsender accepts them ({@code repl_gram.y}); {@link #parse} turns a Query's text into one.
 *
 * <p>Each record can build the answer PostgreSQL gives (same columns and command tag), so that its
 * clients — {@code pg_receivewal}, a standby's walreceiver, our {@code ReplicationClient} — read it
 * as they read PostgreSQL's. All column values are sent as text, as clients parse them.
 *
 * <p>Records are immutable and thread-safe.
 */
public sealed interface ReplicationCommand
    permits ReplicationCommand.IdentifySystem,
        ReplicationCommand.StartReplication,
        ReplicationCommand.TimelineHistory,
        ReplicationCommand.CreateReplicationSlot,
        ReplicationCommand.DropReplicationSlot,
        ReplicationCommand.ReadReplicationSlot,
        ReplicationCommand.Show {

  /**
   * Parses one replication command; a trailing semicolon is allowed.
   *
   * <p>Keywords are case-insensitive (PostgreSQL's are upper case only); unquoted identifiers are
   * lower-cased, double-quoted ones kept as written ({@code ""} inside stands for {@code "}); WAL
   * locations are {@code X/X} as {@link Lsn#parse} reads them; the PostgreSQL 15 option list {@code
   * (RESERVE_WAL [boolean])} and the older bare {@code RESERVE_WAL} are both accepted.
   *
   * @throws PgServerException whose notice is the ErrorResponse to answer with: 42601 syntax_error
   *     naming what was expected, where (the notice's position) and what was found, also for an
   *     unknown command; 42602 / 42622 for a slot name PostgreSQL would refuse; 0A000 for
   *     BASE_BACKUP and logical replication, which this server does not do. A {@link QueryHandler}
   *     can let it propagate: the server answers with exactly that notice.
   */
  static ReplicationCommand parse(String text) {
    return new ReplicationCommandParser(text).parse();
  }

  /** The CommandComplete tag PostgreSQL answers this command with. */
  default String tag() {
    return switch (this) {
      case IdentifySystem c -> "IDENTIFY_SYSTEM";
      case StartReplication c -> "START_REPLICATION";
      case TimelineHistory c -> "TIMELINE_HISTORY";
      case CreateReplicationSlot c -> "CREATE_REPLICATION_SLOT";
      case DropReplicationSlot c -> "DROP_REPLICATION_SLOT";
      case ReadReplicationSlot c -> "READ_REPLICATION_SLOT";
      case Show c -> "SHOW";
    };
  }

  /** {@code IDENTIFY_SYSTEM}. */
  record IdentifySystem() implements ReplicationCommand {
    /**
     * The answer: one row of {@code systemid}, {@code timeline}, {@code xlogpos} and {@code dbname}
     * (NULL: a physical connection has no database; {@code pg_receivewal} refuses a non-NULL one).
     *
     * @param systemId the cluster's system identifier (unsigned)
     * @param timeline the current timeline (unsigned)
     * @param xlogPos how far WAL can be streamed now (PostgreSQL: its flush position)
     */
    public QueryResponse.Rows result(long systemId, int timeline, Lsn xlogPos) {
      return row(
          List.of("systemid", "timeline", "xlogpos", "dbname"),
          tag(),
          Long.toUnsignedString(systemId),
          Integer.toUnsignedString(timeline),
          xlogPos.toString(),
          null);
    }
  }

  /**
   * {@code START_REPLICATION [SLOT slot] [PHYSICAL] start [TIMELINE timeline]}.
   *
   * @param slot the slot to stream from, or null
   * @param start where to start
   * @param timeline the timeline asked for (unsigned), 0 when not given: the current one
   */
  record StartReplication(@Nullable String slot, Lsn start, int timeline)
      implements ReplicationCommand {
    public StartReplication {
      Objects.requireNonNull(start);
    }

    /**
     * The answer: a stream from {@link #start()} (see {@link QueryResponse.Replication}).
     *
     * @param wal WAL from {@code start} on, in contiguous pieces the server then owns
     * @param walEnd the server's end of WAL, asked for each message
     * @param feedback receives the standby's messages, on the event loop
     */
    public QueryResponse.Replication stream(
        Publisher<WalPiece> wal, Supplier<Lsn> walEnd, Consumer<? super StandbyMessage> feedback) {
      return new QueryResponse.Replication(start, wal, walEnd, feedback, null);
    }
  }

  /**
   * {@code TIMELINE_HISTORY timeline}.
   *
   * @param timeline a timeline above 0 (unsigned)
   */
  record TimelineHistory(int timeline) implements ReplicationCommand {

    /** The history file's name, e.g. {@code 00000002.history}. */
    public String fileName() {
      return String.format("%08X.history", timeline);
    }

    /** The answer: one row of {@code filename} and {@code content} (the history file's text). */
    public QueryResponse.Rows result(String content) {
      return row(List.of("filename", "content"), tag(), fileName(), content);
    }
  }

  /**
   * {@code CREATE_REPLICATION_SLOT slot [TEMPORARY] PHYSICAL [RESERVE_WAL | (RESERVE_WAL
   * [boolean])]}.
   *
   * @param slot a valid slot name ({@code [a-z0-9_]{1,63}})
   * @param temporary the slot ends with the connection
   * @param reserveWal reserve WAL from now on, rather than from the first connection that uses it
   */
  record CreateReplicationSlot(String slot, boolean temporary, boolean reserveWal)
      implements ReplicationCommand {
    public CreateReplicationSlot {
      Objects.requireNonNull(slot);
    }

    /**
     * The answer: one row of {@code slot_name}, {@code consistent_point} (always 0/0 for a physical
     * slot, as in PostgreSQL), {@code snapshot_name} and {@code output_plugin} (both NULL).
     */
    public QueryResponse.Rows result() {
      return row(
          List.of("slot_name", "consistent_point", "snapshot_name", "output_plugin"),
          tag(),
          slot,
          Lsn.INVALID.toString(),
          null,
          null);
    }
  }

  /**
   * {@code DROP_REPLICATION_SLOT slot [WAIT]}.
   *
   * @param waitForRelease wait while another connection uses the slot, instead of failing
   */
  record DropReplicationSlot(String slot, boolean waitForRelease) implements ReplicationCommand {
    public DropReplicationSlot {
      Objects.requireNonNull(slot);
    }

    /** The answer: CommandComplete only. */
    public QueryResponse.Command result() {
      return new QueryResponse.Command(tag());
    }
  }

  /** {@code READ_REPLICATION_SLOT slot}. */
  record ReadReplicationSlot(String slot) implements ReplicationCommand {
    public ReadReplicationSlot {
      Objects.requireNonNull(slot);
    }

    /**
     * The answer for an existing slot: {@code slot_type} {@code physical}, {@code restart_lsn} and
     * {@code restart_tli} ({@code pg_receivewal --slot} starts at the segment holding {@code
     * restart_lsn}); both NULL when the slot reserves no WAL ({@code restartLsn} 0/0).
     */
    public QueryResponse.Rows result(Lsn restartLsn, int restartTimeline) {
      boolean reserves = restartLsn.isValid();
      return row(
          List.of("slot_type", "restart_lsn", "restart_tli"),
          tag(),
          "physical",
          reserves ? restartLsn.toString() : null,
          reserves ? Integer.toUnsignedString(restartTimeline) : null);
    }

    /** The answer for a slot that does not exist: one row of NULLs, not an error. */
    public QueryResponse.Rows notFound() {
      return row(List.of("slot_type", "restart_lsn", "restart_tli"), tag(), null, null, null);
    }
  }

  /**
   * {@code SHOW name}: a setting. {@code pg_receivewal} asks for {@code data_directory_mode} (e.g.
   * {@code 0700}) and {@code wal_segment_size} (e.g. {@code 16MB}).
   *
   * @param name lower case unless quoted; dotted names ({@code a.b}) are kept whole
   */
  record Show(String name) implements ReplicationCommand {
    public Show {
      Objects.requireNonNull(name);
    }

    /** The answer: one column named after the setting. */
    public QueryResponse.Rows result(String value) {
      return row(List.of(name), tag(), value);
    }
  }

  private static QueryResponse.Rows row(
      List<String> columns, String tag, @Nullable String... values) {
    List<@Nullable String> row = new ArrayList<>(Arrays.asList(values));
    List<List<@Nullable String>> rows = new ArrayList<>();
    rows.add(row);
    return new QueryResponse.Rows(columns, rows, tag);
  }
}
