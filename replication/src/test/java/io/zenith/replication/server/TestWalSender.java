package io.zenith.replication.server;

import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyMessage;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyStatusUpdate;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.replication.server.ReplicationCommand.CreateReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.DropReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.IdentifySystem;
import io.zenith.replication.server.ReplicationCommand.ReadReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.Show;
import io.zenith.replication.server.ReplicationCommand.StartReplication;
import io.zenith.replication.server.ReplicationCommand.TimelineHistory;
import io.zenith.wal.Lsn;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Function;
import java.util.function.Supplier;
import reactor.core.publisher.Mono;

/**
 * A walsender for tests, as a safekeeper would write one on top of {@link ReplicationCommand}: it
 * answers the commands as PostgreSQL does, streams what the test supplies, and records what it saw.
 * Thread-safe (fields are set before clients connect; lists are concurrent).
 */
final class TestWalSender implements QueryHandler {
  final long systemId;
  final int segmentSize;
  volatile Lsn xlogPos;
  volatile Function<StartReplication, QueryResponse.Replication> stream =
      cmd -> {
        throw new IllegalStateException("no stream configured");
      };
  final Map<String, Lsn> slots = new ConcurrentHashMap<>();
  final List<ReplicationCommand> commands = new CopyOnWriteArrayList<>();
  final List<PgSession> sessions = new CopyOnWriteArrayList<>();
  final List<StandbyMessage> feedback = new CopyOnWriteArrayList<>();

  TestWalSender(long systemId, int segmentSize, Lsn xlogPos) {
    this.systemId = systemId;
    this.segmentSize = segmentSize;
    this.xlogPos = xlogPos;
  }

  /** Serves what {@code source} gives for each START_REPLICATION, with this end of WAL. */
  TestWalSender streaming(
      Function<StartReplication, org.reactivestreams.Publisher<WalPiece>> source,
      Supplier<Lsn> walEnd) {
    stream = cmd -> cmd.stream(source.apply(cmd), walEnd, feedback::add);
    return this;
  }

  List<StandbyStatusUpdate> statusUpdates() {
    return feedback.stream()
        .filter(StandbyStatusUpdate.class::isInstance)
        .map(StandbyStatusUpdate.class::cast)
        .toList();
  }

  @Override
  public Mono<QueryResponse> handle(PgSession session, String query) {
    ReplicationCommand command = ReplicationCommand.parse(query);
    commands.add(command);
    sessions.add(session);
    QueryResponse response =
        switch (command) {
          case IdentifySystem c -> c.result(systemId, 1, xlogPos);
          case Show c ->
              switch (c.name()) {
                case "wal_segment_size" -> c.result((segmentSize >> 20) + "MB");
                case "data_directory_mode" -> c.result("0700");
                default ->
                    throw error(
                        SqlState.UNDEFINED_OBJECT,
                        "unrecognized configuration parameter \"" + c.name() + "\"");
              };
          case ReadReplicationSlot c -> {
            Lsn restart = slots.get(c.slot());
            yield restart == null ? c.notFound() : c.result(restart, 1);
          }
          case CreateReplicationSlot c -> {
            if (slots.putIfAbsent(c.slot(), c.reserveWal() ? xlogPos : Lsn.INVALID) != null) {
              throw error(
                  SqlState.DUPLICATE_OBJECT,
                  "replication slot \"" + c.slot() + "\" already exists");
            }
            yield c.result();
          }
          case DropReplicationSlot c -> {
            if (slots.remove(c.slot()) == null) {
              throw error(
                  SqlState.UNDEFINED_OBJECT,
                  "replication slot \"" + c.slot() + "\" does not exist");
            }
            yield c.result();
          }
          case TimelineHistory c ->
              throw error(
                  SqlState.UNDEFINED_FILE,
                  "could not open file \"pg_wal/" + c.fileName() + "\": No such file or directory");
          case StartReplication c -> stream.apply(c);
        };
    return Mono.just(response);
  }

  static PgServerException error(String sqlState, String message) {
    return new PgServerException("test walsender", PgNotice.error(sqlState, message));
  }
}
