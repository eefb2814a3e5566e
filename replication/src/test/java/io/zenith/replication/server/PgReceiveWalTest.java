package io.zenith.replication.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.PgDistribution;
import io.zenith.pg.testing.PgCluster;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyStatusUpdate;
import io.zenith.replication.server.ReplicationCommand.CreateReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.DropReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.IdentifySystem;
import io.zenith.replication.server.ReplicationCommand.ReadReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.Show;
import io.zenith.replication.server.ReplicationCommand.StartReplication;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.replication.testing.PgWal;
import io.zenith.replication.testing.RealWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalSegmentName;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The independent oracle: PostgreSQL 15's own {@code pg_receivewal} streams real WAL ({@link
 * RealWal}) from a {@link PgWireServer} answering through {@link ReplicationCommand}, and must
 * write segment files byte-identical to PostgreSQL's, with and without a slot, stopping at {@code
 * --endpos}.
 *
 * <p>What pg_receivewal needs from a server (PostgreSQL 15, {@code streamutil.c}, {@code
 * receivelog.c}): ParameterStatus {@code integer_datetimes=on} and a {@code server_version} it
 * parses as 9.3 to 15; {@code SHOW data_directory_mode} (octal) and {@code SHOW wal_segment_size}
 * ({@code 16MB}); IDENTIFY_SYSTEM with 4 columns and a NULL {@code dbname}; with {@code --slot},
 * READ_REPLICATION_SLOT (1 row, 3 columns); {@code START_REPLICATION [SLOT "s"] X/X TIMELINE 1};
 * XLogData whose first message starts a segment; CopyDone, CommandComplete, ReadyForQuery after its
 * own CopyDone at {@code --endpos}.
 */
@ExtendWith(NettyLeakCheck.class)
class PgReceiveWalTest {
  private static final Logger log = LoggerFactory.getLogger(PgReceiveWalTest.class);
  private static final Duration T = Duration.ofSeconds(60);
  private static final int MAX = QueryResponse.Replication.MAX_XLOG_DATA;

  private static RealWal wal;
  private static int segmentSize;
  private final List<PgWireServer> servers = new ArrayList<>();
  private final List<Path> dirs = new ArrayList<>();

  @BeforeAll
  static void makeWal() {
    wal = RealWal.get();
    segmentSize = wal.segmentSize();
  }

  @AfterEach
  void cleanUp() {
    servers.forEach(PgWireServer::close);
    dirs.forEach(PgCluster::deleteTree);
  }

  private PgWireServer start(TestWalSender sender) {
    PgWireServer s = PgWireServer.start(PgWireServerOptions.builder().build(), sender).block(T);
    servers.add(s);
    return s;
  }

  /** A directory pg_receivewal (PostgreSQL's OS user) may write. */
  private Path outputDir() throws IOException {
    Path d = Files.createTempDirectory("zenith-receivewal-");
    dirs.add(d);
    PgDistribution.detect().createOwnedDirectory(d);
    return d;
  }

  private static Process pgReceiveWal(int port, Path dir, Path output, String... args)
      throws IOException {
    List<String> all =
        new ArrayList<>(
            List.of(
                "-h",
                "127.0.0.1",
                "-p",
                Integer.toString(port),
                "-U",
                "standby",
                "-w",
                "-D",
                dir.toString(),
                "--no-loop",
                "-v"));
    all.addAll(Arrays.asList(args));
    ProcessBuilder pb =
        PgDistribution.detect()
            .processBuilder("pg_receivewal", all)
            .directory(new File("/"))
            .redirectErrorStream(true)
            .redirectOutput(output.toFile());
    pb.environment().put("TZ", "UTC");
    pb.environment().put("PGCONNECT_TIMEOUT", "10");
    return pb.start();
  }

  /** Runs pg_receivewal to its end; returns its exit code, its output in {@code output}. */
  private int run(int port, Path dir, Path output, String... args) throws Exception {
    Process p = pgReceiveWal(port, dir, output, args);
    if (!p.waitFor(T.toSeconds(), TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("pg_receivewal did not end:\n" + Files.readString(output));
    }
    log.info("pg_receivewal {}: exit {}\n{}", args, p.exitValue(), Files.readString(output));
    return p.exitValue();
  }

  private static String segmentName(Lsn lsn) {
    return WalSegmentName.of(RealWal.TIMELINE, lsn, segmentSize).fileName(segmentSize);
  }

  private static List<String> files(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  /** Asserts that {@code dir} holds the segments starting in {@code [from, to)}, each identical. */
  private static void assertWholeSegments(Path dir, Lsn from, Lsn to) throws IOException {
    for (Lsn s = from; s.isBefore(to); s = s.plus(segmentSize)) {
      byte[] got = Files.readAllBytes(dir.resolve(segmentName(s)));
      assertThat(RealWal.digest(got))
          .as("segment %s", segmentName(s))
          .isEqualTo(RealWal.digest(wal.bytes(s, s.plus(segmentSize))));
    }
  }

  @Test
  void writesSegmentsIdenticalToPostgresWithoutASlotUpToEndpos() throws Exception {
    AtomicInteger cancelled = new AtomicInteger();
    // IDENTIFY_SYSTEM's position is inside the first segment: pg_receivewal starts at its start.
    TestWalSender sender =
        new TestWalSender(wal.systemId(), segmentSize, wal.start().plus(0x12345))
            .streaming(
                // Pieces of an odd size span segment files; more WAL may come later.
                cmd ->
                    wal.pieces(cmd.start(), wal.end(), (1 << 20) + 4099)
                        .concatWith(Flux.never())
                        .doOnCancel(cancelled::incrementAndGet),
                wal::end);
    PgWireServer server = start(sender);
    Path dir = outputDir();
    Path output = Files.createTempFile("pg_receivewal", ".log");
    dirs.add(output);
    // --endpos one byte before the last segment's end: it stops once that segment is complete.
    Lsn endpos = wal.end().plus(-1);
    int exit = run(server.port(), dir, output, "--endpos", endpos.toString());
    assertThat(exit).as(Files.readString(output)).isZero();

    List<String> expected = new ArrayList<>();
    for (Lsn s = wal.start(); s.isBefore(wal.end()); s = s.plus(segmentSize)) {
      expected.add(segmentName(s));
    }
    assertThat(files(dir)).containsExactlyElementsOf(expected);
    assertWholeSegments(dir, wal.start(), wal.end());

    assertThat(sender.commands)
        .containsSubsequence(
            new Show("data_directory_mode"),
            new IdentifySystem(),
            new Show("wal_segment_size"),
            new StartReplication(null, wal.start(), 1));
    assertThat(sender.sessions)
        .allSatisfy(
            s -> {
              assertThat(s.replication()).isTrue();
              assertThat(s.applicationName()).isEqualTo("pg_receivewal");
            });
    // Without a slot pg_receivewal reports what it wrote, never a flush position.
    assertThat(sender.statusUpdates())
        .isNotEmpty()
        .allSatisfy(u -> assertThat(u.flush()).isEqualTo(Lsn.INVALID))
        .first()
        .extracting(StandbyStatusUpdate::write)
        .isEqualTo(wal.start());
    // It ended the stream with CopyDone: the server stopped the source and the session ended.
    PgWal.await(T, "the source to be cancelled", () -> cancelled.get() == 1);
    PgWal.await(T, "the connection to be gone", () -> server.connectionCount() == 0);
    log.info(
        "pg_receivewal wrote {} segments identical to PostgreSQL's, from {} to {}",
        expected.size(),
        wal.start(),
        wal.end());
  }

  @Test
  void withASlotStartsAtItsRestartPointReportsFlushesAndStopsMidSegment() throws Exception {
    Lsn second = wal.start().plus(segmentSize);
    Lsn last = wal.end().plus(-segmentSize);
    assertThat(last).isGreaterThan(second);
    CompletableFuture<Void> gate = new CompletableFuture<>();
    TestWalSender sender =
        new TestWalSender(wal.systemId(), segmentSize, wal.end())
            .streaming(
                cmd ->
                    Flux.concat(
                        wal.pieces(cmd.start(), last, 256 << 10),
                        // the rest only when the test has seen the status updates
                        Mono.fromFuture(gate).thenMany(wal.pieces(last, wal.end(), 256 << 10)),
                        Flux.never()),
                wal::end);
    sender.slots.put("zenith_sk", second.plus(0x28));
    PgWireServer server = start(sender);
    Path dir = outputDir();
    Path output = Files.createTempFile("pg_receivewal", ".log");
    dirs.add(output);
    Lsn endpos = last.plus(segmentSize / 2 + 12_345);
    Process p =
        pgReceiveWal(
            server.port(),
            dir,
            output,
            "--slot",
            "zenith_sk",
            "--endpos",
            endpos.toString(),
            "--status-interval",
            "1");
    try {
      // With a slot, pg_receivewal reports segments it has fsynced as flushed.
      PgWal.await(
          T,
          "pg_receivewal to report everything before the last segment as flushed",
          () ->
              sender.statusUpdates().stream()
                  .anyMatch(u -> u.write().equals(last) && u.flush().equals(last)));
      assertThat(sender.statusUpdates())
          .allSatisfy(u -> assertThat(u.flush()).isLessThanOrEqualTo(u.write()));
      gate.complete(null);
      assertThat(p.waitFor(T.toSeconds(), TimeUnit.SECONDS)).isTrue();
    } finally {
      p.destroyForcibly();
    }
    log.info("pg_receivewal --slot: exit {}\n{}", p.exitValue(), Files.readString(output));
    assertThat(p.exitValue()).as(Files.readString(output)).isZero();
    assertThat(sender.commands)
        .contains(
            new ReadReplicationSlot("zenith_sk"), new StartReplication("zenith_sk", second, 1));

    // Whole segments from the slot's segment on; the last one partial, up to the end of the first
    // XLogData message past endpos (pg_receivewal stops after it), then zeros.
    List<String> expected = new ArrayList<>();
    for (Lsn s = second; s.isBefore(last); s = s.plus(segmentSize)) {
      expected.add(segmentName(s));
    }
    expected.add(segmentName(last) + WalSegmentName.PARTIAL_SUFFIX);
    assertThat(files(dir)).containsExactlyElementsOf(expected);
    assertWholeSegments(dir, second, last);
    Lsn stoppedAt = last.plus(((endpos.minus(last)) / MAX + 1) * MAX);
    byte[] partial =
        Files.readAllBytes(dir.resolve(segmentName(last) + WalSegmentName.PARTIAL_SUFFIX));
    byte[] want = new byte[segmentSize];
    byte[] served = wal.bytes(last, stoppedAt);
    System.arraycopy(served, 0, want, 0, served.length);
    assertThat(RealWal.digest(partial)).isEqualTo(RealWal.digest(want));
    PgWal.await(T, "the connection to be gone", () -> server.connectionCount() == 0);
  }

  @Test
  void createsAndDropsSlots() throws Exception {
    TestWalSender sender = new TestWalSender(wal.systemId(), segmentSize, wal.end());
    PgWireServer server = start(sender);
    Path dir = outputDir();
    Path output = Files.createTempFile("pg_receivewal", ".log");
    dirs.add(output);
    assertThat(run(server.port(), dir, output, "--slot", "zenith_new", "--create-slot")).isZero();
    assertThat(sender.slots).containsKey("zenith_new");
    // A second creation fails with 42710, which pg_receivewal accepts only with --if-not-exists.
    assertThat(run(server.port(), dir, output, "--slot", "zenith_new", "--create-slot"))
        .isEqualTo(1);
    assertThat(Files.readString(output)).contains("already exists");
    assertThat(
            run(
                server.port(),
                dir,
                output,
                "--slot",
                "zenith_new",
                "--create-slot",
                "--if-not-exists"))
        .isZero();
    assertThat(run(server.port(), dir, output, "--slot", "zenith_new", "--drop-slot")).isZero();
    assertThat(sender.slots).doesNotContainKey("zenith_new");
    assertThat(sender.commands)
        .contains(
            new CreateReplicationSlot("zenith_new", false, false),
            new DropReplicationSlot("zenith_new", false));
    assertThat(files(dir)).isEmpty();
  }
}
