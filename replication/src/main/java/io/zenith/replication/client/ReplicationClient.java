package io.zenith.replication.client;

import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.PgWireException;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyStatusUpdate;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.wal.Lsn;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The standby side of PostgreSQL physical streaming replication over one replication connection
 * ({@code replication=true}): IDENTIFY_SYSTEM, slots, START_REPLICATION as a backpressured {@link
 * Flux} of {@link WalChunk}s, and standby status updates.
 *
 * <p>Typical use (the pageserver): {@code startReplication(slot, start, 0)} and feed {@code
 * chunk.data()} to {@link io.zenith.wal.WalStream}; call {@link #reportProgress} with write = end
 * of the last ingested record, flush = durable LSN. PostgreSQL counts a standby's flush position
 * for {@code synchronous_commit=on} and its write position for {@code remote_write}.
 *
 * <p>Thread-safe: all methods may be called from any thread; the stream signals on the connection's
 * event loop. One stream runs at a time; commands issued while it runs wait until it ends.
 */
public final class ReplicationClient {
  private static final Pattern SLOT_NAME = Pattern.compile("[a-z0-9_]{1,63}");

  private final PgConnection connection;
  private final ReplicationOptions options;
  private final StreamMetrics metrics = new StreamMetrics();
  private final AtomicLong write = new AtomicLong();
  private final AtomicLong flush = new AtomicLong();
  private final AtomicLong apply = new AtomicLong();
  private final AtomicBoolean statusPending = new AtomicBoolean();
  private volatile @Nullable WalStreamExchange stream;
  private volatile @Nullable TimelineSwitch timelineSwitch;

  private ReplicationClient(PgConnection connection, ReplicationOptions options) {
    this.connection = connection;
    this.options = options;
  }

  /** Where the server said the next timeline starts, after it ended a stream on an old one. */
  public record TimelineSwitch(long nextTimeline, Lsn nextTimelineStart) {}

  /** Opens a replication connection ({@code replication=true} is forced). */
  public static Mono<ReplicationClient> connect(
      PgConnectOptions options, ReplicationOptions replicationOptions) {
    Objects.requireNonNull(replicationOptions);
    return PgConnection.connect(options.withReplication())
        .map(c -> new ReplicationClient(c, replicationOptions));
  }

  public static Mono<ReplicationClient> connect(PgConnectOptions options) {
    return connect(options, ReplicationOptions.DEFAULT);
  }

  public PgConnection connection() {
    return connection;
  }

  public ReplicationOptions options() {
    return options;
  }

  /** Live counters: buffered chunks and bytes, read pauses, status updates sent. */
  public StreamMetrics metrics() {
    return metrics;
  }

  /** IDENTIFY_SYSTEM: system id, timeline, current flush position. */
  public Mono<SystemIdentity> identifySystem() {
    return connection
        .simpleQuery("IDENTIFY_SYSTEM")
        .map(
            r -> {
              if (r.rows().size() != 1 || r.columns().size() < 3) {
                throw PgWireException.protocol(
                    connection.id() + ": IDENTIFY_SYSTEM returned " + r + ", expected one row");
              }
              QueryResult.Row row = r.rows().get(0);
              try {
                return new SystemIdentity(
                    Long.parseUnsignedLong(require(row.get(0), "systemid")),
                    Integer.parseUnsignedInt(require(row.get(1), "timeline")),
                    Lsn.parse(require(row.get(2), "xlogpos")),
                    row.values().size() > 3 ? row.get(3) : null);
              } catch (IllegalArgumentException e) {
                throw new PgWireException(
                    PgWireException.Kind.PROTOCOL,
                    connection.id() + ": malformed IDENTIFY_SYSTEM row " + row,
                    e);
              }
            });
  }

  private static String require(@Nullable String value, String column) {
    if (value == null) {
      throw new IllegalArgumentException(column + " is NULL");
    }
    return value;
  }

  /**
   * CREATE_REPLICATION_SLOT {@code name} PHYSICAL, reserving WAL from now if {@code reserveWal}. A
   * slot that exists already is the result {@link SlotCreation.AlreadyExists}, not an error.
   *
   * @throws IllegalArgumentException if {@code name} is not a valid slot name (lower-case letters,
   *     digits and underscores, at most 63)
   */
  public Mono<SlotCreation> createPhysicalSlot(String name, boolean reserveWal) {
    checkSlotName(name);
    String sql =
        "CREATE_REPLICATION_SLOT " + name + " PHYSICAL" + (reserveWal ? " (RESERVE_WAL)" : "");
    return connection
        .simpleQuery(sql)
        .<SlotCreation>map(
            r -> {
              String point = r.rows().isEmpty() ? null : r.rows().get(0).get(1);
              return new SlotCreation.Created(name, point == null ? Lsn.INVALID : Lsn.parse(point));
            })
        .onErrorResume(
            e ->
                e instanceof PgServerException pe
                    && SqlState.DUPLICATE_OBJECT.equals(pe.sqlState()),
            e -> Mono.just(new SlotCreation.AlreadyExists(name, ((PgServerException) e).notice())));
  }

  /** READ_REPLICATION_SLOT: the slot's restart LSN, or empty if there is no such slot. */
  public Mono<Optional<SlotInfo>> readSlot(String name) {
    checkSlotName(name);
    return connection
        .simpleQuery("READ_REPLICATION_SLOT " + name)
        .map(
            r -> {
              if (r.rows().size() != 1 || r.rows().get(0).get(0) == null) {
                return Optional.empty();
              }
              QueryResult.Row row = r.rows().get(0);
              String lsn = row.get(1);
              String tli = row.get(2);
              return Optional.of(
                  new SlotInfo(
                      name,
                      lsn == null ? Lsn.INVALID : Lsn.parse(lsn),
                      tli == null ? 0 : Long.parseLong(tli)));
            });
  }

  /** DROP_REPLICATION_SLOT {@code name} WAIT (waits while another connection uses it). */
  public Mono<Void> dropSlot(String name) {
    checkSlotName(name);
    return connection.simpleQuery("DROP_REPLICATION_SLOT " + name + " WAIT").then();
  }

  private static void checkSlotName(String name) {
    if (!SLOT_NAME.matcher(name).matches()) {
      throw new IllegalArgumentException(
          "invalid replication slot name \""
              + name
              + "\": use 1 to 63 lower-case letters, digits and underscores");
    }
  }

  /**
   * START_REPLICATION [SLOT {@code slot}] PHYSICAL {@code start} [TIMELINE {@code timeline}], as a
   * cold {@link Flux}: the command is sent on subscription.
   *
   * <ul>
   *   <li><b>Thread:</b> chunks and terminal signals arrive on the connection's event loop.
   *   <li><b>Demand:</b> the socket is read while the subscriber has outstanding demand or the
   *       read-ahead queue holds fewer than {@link ReplicationOptions#maxBufferedChunks()} chunks;
   *       otherwise reads stop and the TCP window closes.
   *   <li><b>Bound:</b> at most {@code maxBufferedChunks} × 128 KiB + 192 KiB of WAL buffered.
   *   <li><b>Cancel:</b> drops the queue and ends COPY mode (CopyDone); the connection can be used
   *       again. Errors are signalled after the chunks queued before them.
   *   <li><b>Order:</b> contiguous chunks in LSN order; completes when the server ends the stream
   *       (CopyDone at the end of a historic timeline, see {@link #lastTimelineSwitch}, or a clean
   *       server shutdown).
   * </ul>
   *
   * <p>Status updates report at least {@code start} as written, flushed and applied (what precedes
   * the start point the caller has already, as PostgreSQL's walreceiver assumes); a caller for
   * which that is not true says what it has with {@link #startReplication(String, Lsn, int,
   * Progress)}. Errors: {@link PgServerException} for the server's refusal (e.g. a start point
   * ahead of the server's flush position, a missing slot 42704, removed WAL 58P01) or its error
   * mid-stream; {@link PgWireException} CONNECTION_LOST or PROTOCOL.
   *
   * @param slot physical slot to stream from, or null
   * @param start where to start; the server sends WAL from exactly here
   * @param timeline timeline to stream, or 0 for the server's current one
   */
  public Flux<WalChunk> startReplication(@Nullable String slot, Lsn start, int timeline) {
    return startReplication(slot, start, timeline, new Progress(start, start, start));
  }

  /**
   * {@link #startReplication(String, Lsn, int)} for a client that holds less than everything before
   * {@code start} durably: status updates report at least {@code initial} (and what {@link
   * #reportProgress} said), never {@code start} itself. A pageserver resumes at the end of what it
   * ingested, while only its {@code disk_consistent_lsn} is durable; a safekeeper resumes at the
   * end of what it wrote, while only what it fsynced may be acknowledged. Reporting {@code start}
   * as flushed would let the server drop WAL they still need after a crash.
   */
  public Flux<WalChunk> startReplication(
      @Nullable String slot, Lsn start, int timeline, Progress initial) {
    Objects.requireNonNull(initial, "initial");
    if (slot != null) {
      checkSlotName(slot);
    }
    if (timeline < 0) {
      throw new IllegalArgumentException("timeline must not be negative: " + timeline);
    }
    String command =
        "START_REPLICATION "
            + (slot != null ? "SLOT " + slot + " " : "")
            + "PHYSICAL "
            + start
            + (timeline > 0 ? " TIMELINE " + Integer.toUnsignedString(timeline) : "");
    ClientHandler handler = connection.handler();
    return Flux.from(
        subscriber -> {
          WalStreamExchange ex =
              new WalStreamExchange(this, handler, subscriber, command, start, initial);
          subscriber.onSubscribe(ex);
          handler.submit(ex);
        });
  }

  /**
   * Reports the standby's positions; the next status update carries them. Positions only move
   * forward (a lower value than one reported before is ignored). A burst of calls is coalesced into
   * one update, sent promptly on the event loop; calls while no stream runs are kept for the next
   * one.
   */
  public void reportProgress(Lsn write, Lsn flush, Lsn apply) {
    advance(this.write, write);
    advance(this.flush, flush);
    advance(this.apply, apply);
    WalStreamExchange s = stream;
    if (s != null && statusPending.compareAndSet(false, true)) {
      connection
          .channel()
          .eventLoop()
          .execute(
              () -> {
                statusPending.set(false);
                WalStreamExchange current = stream;
                if (current != null) {
                  current.sendStatus(false);
                }
              });
    }
  }

  /** Positions a standby status update reports. */
  public record Progress(Lsn write, Lsn flush, Lsn apply) {}

  /** The positions the next status update will report. */
  public Progress reportedProgress() {
    return new Progress(Lsn.of(write.get()), Lsn.of(flush.get()), Lsn.of(apply.get()));
  }

  private static void advance(AtomicLong field, Lsn to) {
    Objects.requireNonNull(to);
    field.accumulateAndGet(to.value(), (a, b) -> Long.compareUnsigned(a, b) >= 0 ? a : b);
  }

  /** The next-timeline position the server sent when it last ended a stream, if any. */
  public Optional<TimelineSwitch> lastTimelineSwitch() {
    return Optional.ofNullable(timelineSwitch);
  }

  /** Whether the connection is closed (by either side); a closed client stays closed. */
  public boolean isClosed() {
    return connection.isClosed();
  }

  /** Terminates the connection; a running stream fails with CONNECTION_LOST. */
  public Mono<Void> close() {
    return connection.close();
  }

  // ---- called by WalStreamExchange on the event loop ----

  void streamStarted(WalStreamExchange s, Progress initial) {
    advance(write, initial.write());
    advance(flush, initial.flush());
    advance(apply, initial.apply());
    stream = s;
  }

  void streamEnded(WalStreamExchange s) {
    if (stream == s) {
      stream = null;
    }
  }

  void timelineSwitch(TimelineSwitch t) {
    timelineSwitch = t;
  }

  StandbyStatusUpdate statusUpdate(boolean replyRequested) {
    return new StandbyStatusUpdate(
        Lsn.of(write.get()),
        Lsn.of(flush.get()),
        Lsn.of(apply.get()),
        io.zenith.replication.pgwire.PgWire.toPgMicros(options.clock().instant()),
        replyRequested);
  }

  @Override
  public String toString() {
    return "ReplicationClient[" + connection + "]";
  }
}
