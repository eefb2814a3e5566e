package io.zenith.replication.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

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
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** {@link ReplicationCommand#parse}: what PostgreSQL 15's clients send, and what they must not. */
class ReplicationCommandTest {

  static Stream<Arguments> good() {
    return Stream.of(
        // what pg_receivewal, pg_basebackup, walreceiver and our client send
        ok("IDENTIFY_SYSTEM", new IdentifySystem()),
        ok("IDENTIFY_SYSTEM;", new IdentifySystem()),
        ok("  identify_system  ;  ", new IdentifySystem()),
        ok("START_REPLICATION 0/0", new StartReplication(null, Lsn.INVALID, 0)),
        ok(
            "START_REPLICATION 0/1000000 TIMELINE 1",
            new StartReplication(null, Lsn.parse("0/1000000"), 1)),
        ok(
            "START_REPLICATION SLOT \"sk_1\" 0/2000000 TIMELINE 1",
            new StartReplication("sk_1", Lsn.parse("0/2000000"), 1)),
        ok(
            "START_REPLICATION SLOT sk_1 PHYSICAL 16/B374D848",
            new StartReplication("sk_1", Lsn.parse("16/B374D848"), 0)),
        ok(
            "start_replication slot SK_1 physical 0/ab timeline 4294967295",
            new StartReplication("sk_1", Lsn.parse("0/AB"), -1)),
        ok(
            "START_REPLICATION\n\tPHYSICAL FFFFFFFF/FFFFFFFF;",
            new StartReplication(null, Lsn.MAX, 0)),
        // a keyword is a name where a name is expected
        ok("START_REPLICATION SLOT slot 0/0", new StartReplication("slot", Lsn.INVALID, 0)),
        ok("TIMELINE_HISTORY 2", new TimelineHistory(2)),
        ok("TIMELINE_HISTORY 4294967295", new TimelineHistory(-1)),
        ok(
            "CREATE_REPLICATION_SLOT \"sk\" PHYSICAL",
            new CreateReplicationSlot("sk", false, false)),
        ok(
            "CREATE_REPLICATION_SLOT \"sk\" PHYSICAL (RESERVE_WAL)",
            new CreateReplicationSlot("sk", false, true)),
        ok(
            "CREATE_REPLICATION_SLOT sk TEMPORARY PHYSICAL RESERVE_WAL",
            new CreateReplicationSlot("sk", true, true)),
        ok(
            "CREATE_REPLICATION_SLOT sk PHYSICAL (reserve_wal false)",
            new CreateReplicationSlot("sk", false, false)),
        ok(
            "CREATE_REPLICATION_SLOT sk PHYSICAL (RESERVE_WAL 'on')",
            new CreateReplicationSlot("sk", false, true)),
        ok(
            "CREATE_REPLICATION_SLOT sk PHYSICAL ( \"reserve_wal\" 0 )",
            new CreateReplicationSlot("sk", false, false)),
        ok(
            "create_replication_slot physical physical (reserve_wal 1)",
            new CreateReplicationSlot("physical", false, true)),
        ok("DROP_REPLICATION_SLOT \"sk\"", new DropReplicationSlot("sk", false)),
        ok("DROP_REPLICATION_SLOT sk WAIT", new DropReplicationSlot("sk", true)),
        ok("READ_REPLICATION_SLOT sk", new ReadReplicationSlot("sk")),
        ok("READ_REPLICATION_SLOT \"sk\";", new ReadReplicationSlot("sk")),
        ok("SHOW wal_segment_size", new Show("wal_segment_size")),
        ok("SHOW data_directory_mode", new Show("data_directory_mode")),
        ok("SHOW Server_Version", new Show("server_version")),
        ok("SHOW \"Mixed\".x . \"y\"", new Show("Mixed.x.y")),
        ok("SHOW \"a\"\"b\"", new Show("a\"b")));
  }

  private static Arguments ok(String text, ReplicationCommand expected) {
    return Arguments.of(text, expected);
  }

  @ParameterizedTest
  @MethodSource("good")
  void parses(String text, ReplicationCommand expected) {
    assertThat(ReplicationCommand.parse(text)).isEqualTo(expected);
  }

  static Stream<Arguments> bad() {
    return Stream.of(
        // trailing junk
        bad(
            "IDENTIFY_SYSTEM now",
            "42601",
            17,
            "syntax error at or near \"now\": expected the end of IDENTIFY_SYSTEM"),
        bad(
            "IDENTIFY_SYSTEM;;",
            "42601",
            17,
            "syntax error at or near \";\": expected the end of IDENTIFY_SYSTEM"),
        // START_REPLICATION
        bad(
            "START_REPLICATION",
            "42601",
            18,
            "syntax error at end of input: expected SLOT, PHYSICAL or a WAL location (X/X)"),
        bad(
            "START_REPLICATION PHYSICAL",
            "42601",
            27,
            "syntax error at end of input: expected a WAL location (X/X)"),
        bad(
            "START_REPLICATION PHYSICAL foo",
            "42601",
            28,
            "syntax error at or near \"foo\": expected a WAL location (X/X)"),
        bad(
            "START_REPLICATION 0/",
            "42601",
            19,
            "syntax error at or near \"0\": expected SLOT, PHYSICAL or a WAL location (X/X)"),
        bad(
            "START_REPLICATION 0/1G",
            "42601",
            22,
            "syntax error at or near \"G\": expected the end of START_REPLICATION"),
        bad(
            "START_REPLICATION 123456789/0",
            "42601",
            19,
            "invalid WAL location \"123456789/0\": each half must be 1 to 8 hex digits"),
        bad(
            "START_REPLICATION SLOT 0/0",
            "42601",
            24,
            "syntax error at or near \"0/0\": expected a replication slot name"),
        bad(
            "START_REPLICATION SLOT s PHYSICAL",
            "42601",
            34,
            "syntax error at end of input: expected a WAL location (X/X)"),
        bad(
            "START_REPLICATION SLOT s",
            "42601",
            25,
            "syntax error at end of input: expected PHYSICAL or a WAL location (X/X)"),
        bad(
            "START_REPLICATION PHYSICAL PHYSICAL 0/0",
            "42601",
            28,
            "syntax error at or near \"PHYSICAL\": expected a WAL location (X/X)"),
        bad("START_REPLICATION 0/0 TIMELINE 0", "42601", 32, "invalid timeline 0"),
        bad(
            "START_REPLICATION 0/0 TIMELINE 4294967296",
            "42601",
            32,
            "timeline 4294967296 is out of range"),
        bad(
            "START_REPLICATION 0/0 TIMELINE 99999999999999999999999",
            "42601",
            32,
            "timeline 99999999999999999999999 is out of range"),
        bad(
            "START_REPLICATION 0/0 TIMELINE",
            "42601",
            31,
            "syntax error at end of input: expected a timeline number"),
        bad(
            "START_REPLICATION 0/0 TIMELINE -1",
            "42601",
            32,
            "syntax error at or near \"-\": expected a timeline number"),
        bad(
            "START_REPLICATION 0/0 TIMELINE 1 2",
            "42601",
            34,
            "syntax error at or near \"2\": expected the end of START_REPLICATION"),
        bad(
            "START_REPLICATION SLOT s LOGICAL 0/0",
            "0A000",
            26,
            "logical replication is not supported by this server"),
        // slot names
        bad(
            "START_REPLICATION SLOT \"Sk\" 0/0",
            "42602",
            24,
            "replication slot name \"Sk\" contains invalid character"),
        bad(
            "READ_REPLICATION_SLOT a.b",
            "42601",
            24,
            "syntax error at or near \".\": expected the end of READ_REPLICATION_SLOT"),
        bad(
            "DROP_REPLICATION_SLOT " + "s".repeat(64),
            "42622",
            23,
            "replication slot name \"" + "s".repeat(64) + "\" is too long"),
        bad(
            "DROP_REPLICATION_SLOT sk NOW",
            "42601",
            26,
            "syntax error at or near \"NOW\": expected the end of DROP_REPLICATION_SLOT"),
        bad(
            "DROP_REPLICATION_SLOT",
            "42601",
            22,
            "syntax error at end of input: expected a replication slot name"),
        bad("DROP_REPLICATION_SLOT \"\"", "42601", 23, "zero-length delimited identifier"),
        bad("DROP_REPLICATION_SLOT \"sk", "42601", 23, "unterminated quoted identifier"),
        // CREATE_REPLICATION_SLOT
        bad(
            "CREATE_REPLICATION_SLOT sk",
            "42601",
            27,
            "syntax error at end of input: expected TEMPORARY or PHYSICAL"),
        bad(
            "CREATE_REPLICATION_SLOT sk TEMPORARY TEMPORARY PHYSICAL",
            "42601",
            38,
            "syntax error at or near \"TEMPORARY\": expected PHYSICAL"),
        bad(
            "CREATE_REPLICATION_SLOT sk LOGICAL pgoutput",
            "0A000",
            28,
            "logical replication slots are not supported by this server"),
        bad(
            "CREATE_REPLICATION_SLOT sk PHYSICAL (RESERVE_WAL 'maybe')",
            "42601",
            50,
            "reserve_wal requires a Boolean value"),
        bad(
            "CREATE_REPLICATION_SLOT sk PHYSICAL (RESERVE_WAL, RESERVE_WAL)",
            "42601",
            51,
            "conflicting or redundant options"),
        bad(
            "CREATE_REPLICATION_SLOT sk PHYSICAL RESERVE_WAL RESERVE_WAL",
            "42601",
            49,
            "conflicting or redundant options"),
        bad(
            "CREATE_REPLICATION_SLOT sk PHYSICAL (FOO)",
            "42601",
            38,
            "unrecognized CREATE_REPLICATION_SLOT option \"foo\""),
        bad(
            "CREATE_REPLICATION_SLOT sk PHYSICAL (TWO_PHASE)",
            "42601",
            38,
            "option \"two_phase\" is only valid for logical replication slots"),
        bad(
            "CREATE_REPLICATION_SLOT sk PHYSICAL EXPORT_SNAPSHOT",
            "42601",
            37,
            "option \"export_snapshot\" is only valid for logical replication slots"),
        bad(
            "CREATE_REPLICATION_SLOT sk PHYSICAL ()",
            "42601",
            38,
            "syntax error at or near \")\": expected an option name"),
        bad(
            "CREATE_REPLICATION_SLOT sk PHYSICAL (RESERVE_WAL",
            "42601",
            49,
            "syntax error at end of input: expected \",\" or \")\" in the option list"),
        bad(
            "CREATE_REPLICATION_SLOT sk PHYSICAL (RESERVE_WAL 'on",
            "42601",
            50,
            "unterminated quoted string"),
        bad(
            "CREATE_REPLICATION_SLOT sk PHYSICAL NOW",
            "42601",
            37,
            "syntax error at or near \"NOW\": expected RESERVE_WAL, an option list or the end"),
        // the rest
        bad("TIMELINE_HISTORY 0", "42601", 18, "invalid timeline 0"),
        bad(
            "TIMELINE_HISTORY one",
            "42601",
            18,
            "syntax error at or near \"one\": expected a timeline number"),
        bad("SHOW", "42601", 5, "syntax error at end of input: expected a setting name"),
        bad("SHOW a.", "42601", 8, "syntax error at end of input: expected a setting name"),
        bad("SHOW 'x'", "42601", 6, "syntax error at or near \"'x'\": expected a setting name"),
        bad("BASE_BACKUP", "0A000", 1, "BASE_BACKUP is not supported by this server"),
        bad(
            "BASE_BACKUP (LABEL 'x', PROGRESS)",
            "0A000",
            1,
            "BASE_BACKUP is not supported by this server"),
        // positions count characters, not UTF-16 units
        bad(
            "SHOW \uD83D\uDE00 x",
            "42601",
            8,
            "syntax error at or near \"x\": expected the end of SHOW"));
  }

  private static Arguments bad(String text, String sqlState, int position, String message) {
    return Arguments.of(text, sqlState, position, message);
  }

  @ParameterizedTest
  @MethodSource("bad")
  void rejects(String text, String sqlState, int position, String message) {
    PgServerException e = parseError(text);
    assertThat(e.notice().severity()).isEqualTo("ERROR");
    assertThat(e.sqlState()).isEqualTo(sqlState);
    assertThat(e.serverMessage()).isEqualTo(message);
    assertThat(e.notice().position()).isEqualTo(Integer.toString(position));
  }

  private static PgServerException parseError(String text) {
    PgServerException e =
        catchThrowableOfType(PgServerException.class, () -> ReplicationCommand.parse(text));
    assertThat(e).as("an error for %s", text).isNotNull();
    return e;
  }

  private static final String COMMANDS =
      "IDENTIFY_SYSTEM, START_REPLICATION, TIMELINE_HISTORY, CREATE_REPLICATION_SLOT,"
          + " DROP_REPLICATION_SLOT, READ_REPLICATION_SLOT or SHOW";

  @ParameterizedTest
  @ValueSource(
      strings = {"SELECT 1", "FOO", "(", "0/0", ";", "\"IDENTIFY_SYSTEM\"", "  base_backupx"})
  void rejectsWhatIsNotAReplicationCommand(String text) {
    String first = text.strip().split(" ")[0];
    PgServerException e = parseError(text);
    assertThat(e.sqlState()).isEqualTo(SqlState.SYNTAX_ERROR);
    assertThat(e.serverMessage())
        .isEqualTo(
            "syntax error at or near \""
                + first
                + "\": not a replication command ("
                + COMMANDS
                + ")");
    assertThat(e.notice().position()).isEqualTo(Integer.toString(text.indexOf(first) + 1));
    assertThat(parseError(" ").serverMessage())
        .isEqualTo("syntax error at end of input: expected a replication command: " + COMMANDS);
  }

  @Test
  void aSlotNameWithAnInvalidCharacterGetsPostgresHint() {
    PgServerException e = parseError("CREATE_REPLICATION_SLOT \"a-b\" PHYSICAL");
    assertThat(e.sqlState()).isEqualTo(SqlState.INVALID_NAME);
    assertThat(e.hint())
        .isEqualTo(
            "Replication slot names may only contain lower case letters, numbers, and the"
                + " underscore character.");
    assertThat(ReplicationCommand.parse("DROP_REPLICATION_SLOT " + "s".repeat(63)))
        .isEqualTo(new DropReplicationSlot("s".repeat(63), false));
  }

  @Test
  void theAnswersHavePostgresColumnsAndTags() {
    QueryResponse.Rows id = new IdentifySystem().result(-2L, 1, Lsn.parse("0/1511B00"));
    assertThat(id.columns()).containsExactly("systemid", "timeline", "xlogpos", "dbname");
    assertThat(id.rows())
        .singleElement()
        .isEqualTo(Arrays.asList("18446744073709551614", "1", "0/1511B00", null));
    assertThat(id.commandTag()).isEqualTo("IDENTIFY_SYSTEM");

    ReadReplicationSlot read = new ReadReplicationSlot("sk");
    assertThat(read.result(Lsn.parse("0/2000060"), 1).rows())
        .singleElement()
        .isEqualTo(List.of("physical", "0/2000060", "1"));
    assertThat(read.result(Lsn.INVALID, 1).rows())
        .singleElement()
        .isEqualTo(Arrays.asList("physical", null, null));
    assertThat(read.notFound().rows()).singleElement().isEqualTo(Arrays.asList(null, null, null));
    assertThat(read.notFound().columns())
        .containsExactly("slot_type", "restart_lsn", "restart_tli");
    assertThat(read.notFound().commandTag()).isEqualTo("READ_REPLICATION_SLOT");

    QueryResponse.Rows created = new CreateReplicationSlot("sk", false, true).result();
    assertThat(created.columns())
        .containsExactly("slot_name", "consistent_point", "snapshot_name", "output_plugin");
    assertThat(created.rows()).singleElement().isEqualTo(Arrays.asList("sk", "0/0", null, null));
    assertThat(created.commandTag()).isEqualTo("CREATE_REPLICATION_SLOT");

    assertThat(new DropReplicationSlot("sk", true).result().tag())
        .isEqualTo("DROP_REPLICATION_SLOT");

    QueryResponse.Rows history = new TimelineHistory(0x1A).result("1\t0/3000000\tno reason\n");
    assertThat(history.columns()).containsExactly("filename", "content");
    assertThat(history.rows())
        .singleElement()
        .isEqualTo(List.of("0000001A.history", "1\t0/3000000\tno reason\n"));
    assertThat(history.commandTag()).isEqualTo("TIMELINE_HISTORY");

    QueryResponse.Rows show = new Show("wal_segment_size").result("16MB");
    assertThat(show.columns()).containsExactly("wal_segment_size");
    assertThat(show.rows()).singleElement().isEqualTo(List.of("16MB"));
    assertThat(show.commandTag()).isEqualTo("SHOW");

    assertThat(new StartReplication(null, Lsn.INVALID, 0).tag()).isEqualTo("START_REPLICATION");
  }
}
