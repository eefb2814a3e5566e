package io.zenith.replication.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.pgwire.CopyDone;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.ReplicationMessage;
import io.zenith.replication.pgwire.ReplicationMessage.PrimaryKeepalive;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyStatusUpdate;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.Lsn;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import reactor.core.publisher.Flux;

/**
 * The same raw protocol scripts against PostgreSQL 15's walsender and against {@link PgWireServer}
 * with a {@link TestWalSender}: result shapes, command tags, the end of a stream, errors after
 * CopyBothResponse, and SQLSTATEs must be PostgreSQL's.
 */
@ExtendWith(NettyLeakCheck.class)
class WalSenderOracleTest {
  private static final Duration T = Duration.ofSeconds(30);
  private static PgCluster cluster;
  private static PgWireServer server;
  private static TestWalSender sender;

  @BeforeAll
  static void start() {
    cluster = PgCluster.initdb();
    cluster.configure(
        Map.of(
            "wal_level", "replica",
            "max_wal_senders", "4",
            "max_replication_slots", "4",
            "fsync", "off"));
    cluster.start();
    sender = new TestWalSender(1, 16 << 20, Lsn.parse("0/3000000"));
    sender.stream =
        cmd -> {
          if (cmd.start().equals(Lsn.parse("FF/0"))) {
            // What PostgreSQL answers after CopyBothResponse for a start point it does not have.
            return cmd.stream(
                Flux.error(
                    TestWalSender.error(
                        SqlState.INTERNAL_ERROR,
                        "requested starting point FF/0 is ahead of the WAL flush position of this"
                            + " server 0/3000000")),
                () -> Lsn.parse("0/3000000"),
                m -> {});
          }
          return cmd.stream(Flux.never(), () -> cmd.start(), m -> {});
        };
    server = PgWireServer.start(PgWireServerOptions.builder().build(), sender).block(T);
  }

  @AfterAll
  static void stop() {
    if (server != null) {
      server.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  /** A message as compared: type, and for some types what must be equal. */
  record Seen(char type, String what) {}

  private static RawPgClient connect(int port, boolean replication) throws IOException {
    RawPgClient raw = new RawPgClient(port);
    raw.startup("postgres", replication ? Map.of("replication", "true") : Map.of());
    raw.untilReady();
    return raw;
  }

  /** Sends {@code sql}; returns the messages up to ReadyForQuery, described for comparison. */
  private static List<Seen> query(RawPgClient raw, String sql) throws IOException {
    raw.send(new FrontendMessage.Query(sql));
    return untilReady(raw);
  }

  private static List<Seen> untilReady(RawPgClient raw) throws IOException {
    List<Seen> seen = new ArrayList<>();
    for (RawPgClient.Message m = raw.read(); m != null; m = raw.read()) {
      seen.add(describe(m));
      if (m.type() == 'Z' || m.type() == 'W') {
        return seen;
      }
    }
    throw new IOException("connection closed; saw " + seen);
  }

  private static Seen describe(RawPgClient.Message m) {
    return switch (m.type()) {
      case 'T' -> new Seen('T', columns(m.body()));
      case 'D' -> new Seen('D', nulls(m.body()));
      case 'C' -> new Seen('C', m.text());
      case 'E' -> new Seen('E', m.field('S') + " " + m.field('C'));
      default -> new Seen(m.type(), "");
    };
  }

  /** Column names of a RowDescription. */
  private static String columns(byte[] body) {
    ByteBuffer b = ByteBuffer.wrap(body);
    int n = b.getShort();
    List<String> names = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int start = b.position();
      while (b.get() != 0) {
        // scan to the end of the name
      }
      names.add(new String(body, start, b.position() - start - 1, StandardCharsets.UTF_8));
      b.position(b.position() + 18);
    }
    return String.join(",", names);
  }

  /** Which values of a DataRow are NULL ('n') or not ('v'). */
  private static String nulls(byte[] body) {
    ByteBuffer b = ByteBuffer.wrap(body);
    int n = b.getShort();
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < n; i++) {
      int len = b.getInt();
      sb.append(len < 0 ? 'n' : 'v');
      b.position(b.position() + Math.max(len, 0));
    }
    return sb.toString();
  }

  private static @Nullable String value(RawPgClient raw, String sql) throws IOException {
    raw.send(new FrontendMessage.Query(sql));
    String v = null;
    for (RawPgClient.Message m = raw.read(); m.type() != 'Z'; m = raw.read()) {
      if (m.type() == 'D') {
        ByteBuffer b = ByteBuffer.wrap(m.body());
        b.getShort();
        int len = b.getInt();
        v = new String(m.body(), 6, len, StandardCharsets.UTF_8);
      }
    }
    return v;
  }

  @Test
  void resultsHavePostgresColumnsNullsAndTags() throws IOException {
    List<String> commands =
        List.of(
            "IDENTIFY_SYSTEM",
            "SHOW wal_segment_size",
            "SHOW data_directory_mode",
            "READ_REPLICATION_SLOT oracle_slot",
            "CREATE_REPLICATION_SLOT oracle_slot PHYSICAL RESERVE_WAL",
            "READ_REPLICATION_SLOT oracle_slot",
            "DROP_REPLICATION_SLOT oracle_slot",
            "CREATE_REPLICATION_SLOT \"oracle_slot\" TEMPORARY PHYSICAL (RESERVE_WAL false)",
            "READ_REPLICATION_SLOT oracle_slot",
            "DROP_REPLICATION_SLOT oracle_slot WAIT");
    try (RawPgClient pg = connect(cluster.port(), true);
        RawPgClient ours = connect(server.port(), true)) {
      for (String c : commands) {
        assertThat(query(ours, c)).as(c).isEqualTo(query(pg, c));
      }
      for (String setting : List.of("wal_segment_size", "data_directory_mode")) {
        assertThat(value(ours, "SHOW " + setting)).isEqualTo(value(pg, "SHOW " + setting));
      }
    }
  }

  @Test
  void aStreamEndsAsPostgresEndsIt() throws IOException {
    try (RawPgClient pg = connect(cluster.port(), true);
        RawPgClient ours = connect(server.port(), true)) {
      for (RawPgClient raw : List.of(pg, ours)) {
        raw.send(new FrontendMessage.Query("IDENTIFY_SYSTEM"));
      }
      Lsn pgFlush = Lsn.parse(valueOfColumn(pg, 2));
      Lsn ourFlush = Lsn.parse(valueOfColumn(ours, 2));
      List<List<Seen>> sequences = new ArrayList<>();
      for (RawPgClient raw : List.of(pg, ours)) {
        Lsn at = raw == pg ? pgFlush : ourFlush;
        List<Seen> seen = new ArrayList<>(query(raw, "START_REPLICATION " + at + " TIMELINE 1"));
        // A status update asking for a reply gets a keepalive, in both.
        raw.send(new StandbyStatusUpdate(at, at, at, 0, true).toCopyData());
        PrimaryKeepalive k = nextKeepalive(raw);
        assertThat(k.replyRequested()).isFalse();
        assertThat(k.walEnd()).isGreaterThanOrEqualTo(at);
        raw.send(CopyDone.INSTANCE);
        seen.addAll(untilReadySkippingCopyData(raw));
        seen.addAll(query(raw, "IDENTIFY_SYSTEM"));
        sequences.add(seen);
      }
      assertThat(sequences.get(1)).isEqualTo(sequences.get(0));
      assertThat(sequences.get(0)).extracting(Seen::type).startsWith('W', 'c', 'C', 'C', 'Z', 'T');
    }
  }

  /** The next keepalive; PostgreSQL may send WAL its background processes write before it. */
  private static PrimaryKeepalive nextKeepalive(RawPgClient raw) throws IOException {
    while (true) {
      RawPgClient.Message m = raw.read();
      assertThat(m.type()).isEqualTo('d');
      if (ReplicationMessage.parseServerMessage(m.body()) instanceof PrimaryKeepalive k) {
        return k;
      }
    }
  }

  private static String valueOfColumn(RawPgClient raw, int column) throws IOException {
    String v = null;
    for (RawPgClient.Message m = raw.read(); m.type() != 'Z'; m = raw.read()) {
      if (m.type() == 'D') {
        ByteBuffer b = ByteBuffer.wrap(m.body());
        b.getShort();
        for (int i = 0; i <= column; i++) {
          int len = b.getInt();
          if (i == column) {
            v = new String(m.body(), b.position(), len, StandardCharsets.UTF_8);
          }
          b.position(b.position() + Math.max(len, 0));
        }
      }
    }
    return v;
  }

  private static List<Seen> untilReadySkippingCopyData(RawPgClient raw) throws IOException {
    List<Seen> seen = new ArrayList<>();
    RawPgClient.Message m;
    do {
      m = raw.readSkippingCopyData();
      seen.add(describe(m));
    } while (m.type() != 'Z');
    return seen;
  }

  @Test
  void anErrorAfterCopyBothResponseLeavesTheSessionUsableAsInPostgres() throws IOException {
    try (RawPgClient pg = connect(cluster.port(), true);
        RawPgClient ours = connect(server.port(), true)) {
      List<List<Seen>> sequences = new ArrayList<>();
      for (RawPgClient raw : List.of(pg, ours)) {
        List<Seen> seen = new ArrayList<>(query(raw, "START_REPLICATION FF/0"));
        seen.addAll(untilReady(raw));
        seen.addAll(query(raw, "SHOW wal_segment_size"));
        sequences.add(seen);
      }
      assertThat(sequences.get(1)).isEqualTo(sequences.get(0));
      assertThat(sequences.get(0))
          .extracting(Seen::type)
          .containsExactly('W', 'E', 'Z', 'T', 'D', 'C', 'Z');
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"START_REPLICATION 0/0", "  START_REPLICATION SLOT s PHYSICAL 0/0"})
  void startReplicationOnANormalConnectionGetsPostgresSyntaxError(String sql) throws IOException {
    List<String> errors = new ArrayList<>();
    for (int port : new int[] {cluster.port(), server.port()}) {
      try (RawPgClient raw = connect(port, false)) {
        raw.send(new FrontendMessage.Query(sql));
        RawPgClient.Message e = raw.read();
        assertThat(e.type()).isEqualTo('E');
        errors.add(e.field('S') + " " + e.field('C') + " " + e.field('M') + " at " + e.field('P'));
        assertThat(raw.read().type()).isEqualTo('Z');
      }
    }
    assertThat(errors.get(1)).isEqualTo(errors.get(0));
  }

  /** Malformed commands: the same SQLSTATE, and PostgreSQL's message where it names the error. */
  @ParameterizedTest
  @ValueSource(
      strings = {
        "START_REPLICATION PHYSICAL",
        "START_REPLICATION 0/0 TIMELINE 0",
        "START_REPLICATION SLOT 0/0",
        "TIMELINE_HISTORY 0",
        "IDENTIFY_SYSTEM now",
        "DROP_REPLICATION_SLOT",
        "CREATE_REPLICATION_SLOT x",
        "CREATE_REPLICATION_SLOT x PHYSICAL (RESERVE_WAL 'maybe')",
        "CREATE_REPLICATION_SLOT x PHYSICAL (RESERVE_WAL, RESERVE_WAL)",
        "CREATE_REPLICATION_SLOT x PHYSICAL RESERVE_WAL RESERVE_WAL",
        "CREATE_REPLICATION_SLOT \"Bad\" PHYSICAL",
      })
  void malformedCommandsGetPostgresSqlState(String sql) throws IOException {
    List<RawPgClient.Message> errors = new ArrayList<>();
    for (int port : new int[] {cluster.port(), server.port()}) {
      try (RawPgClient raw = connect(port, true)) {
        raw.send(new FrontendMessage.Query(sql));
        RawPgClient.Message e = raw.read();
        assertThat(e.type()).as(sql).isEqualTo('E');
        errors.add(e);
        assertThat(raw.read().type()).isEqualTo('Z');
      }
    }
    RawPgClient.Message pg = errors.get(0);
    RawPgClient.Message ours = errors.get(1);
    assertThat(ours.field('C')).as(sql).isEqualTo(pg.field('C'));
    assertThat(ours.field('S')).isEqualTo("ERROR");
    String pgMessage = pg.field('M');
    if (!pgMessage.equals("syntax error")) {
      assertThat(ours.field('M')).as(sql).isEqualTo(pgMessage);
    }
  }
}
