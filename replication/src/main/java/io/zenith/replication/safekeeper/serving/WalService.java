package io.zenith.replication.safekeeper.serving;

import io.zenith.replication.auth.Scope;
import io.zenith.replication.pgwire.PgNotice;
import io.zenith.replication.pgwire.PgServerException;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyMessage;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyStatusUpdate;
import io.zenith.replication.pgwire.SqlState;
import io.zenith.replication.safekeeper.PageserverSource;
import io.zenith.replication.safekeeper.Safekeeper;
import io.zenith.replication.safekeeper.SafekeeperTimeline;
import io.zenith.replication.server.PgSession;
import io.zenith.replication.server.QueryHandler;
import io.zenith.replication.server.QueryResponse;
import io.zenith.replication.server.ReplicationCommand;
import io.zenith.replication.server.ReplicationCommand.CreateReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.DropReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.IdentifySystem;
import io.zenith.replication.server.ReplicationCommand.ReadReplicationSlot;
import io.zenith.replication.server.ReplicationCommand.Show;
import io.zenith.replication.server.ReplicationCommand.StartReplication;
import io.zenith.replication.server.ReplicationCommand.TimelineHistory;
import io.zenith.replication.server.WalPiece;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalSegmentName;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;
import org.reactivestreams.Publisher;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;

/**
 * The safekeeper's libpq WAL service (ADR 0005 §3): a walsender over its timelines, for
 * pageservers, standbys, {@code pg_receivewal} and peers copying WAL ({@link
 * io.zenith.replication.safekeeper.peers.LibpqWalFetcher}).
 *
 * <p>The timeline is named in the startup parameter {@code options} ({@code -c
 * zenith.tenant_id=<id> -c zenith.timeline_id=<id>}); a session that names none, an unknown one or
 * a malformed one is refused at startup with a FATAL ErrorResponse (28000, 3D000, 22023 / 42601 /
 * 42704). {@code -c zenith.peer_id=<id> -c zenith.up_to=X/Y} marks a peer: it is served flushed WAL
 * up to {@code up_to}, and the stream ends there. Everybody else is served committed WAL, tailing.
 * The standby status updates of a session the configuration names as the pageserver's ({@link
 * io.zenith.replication.safekeeper.PageserverSource}: its {@code application_name} and source
 * address) are the pageserver's feedback ({@link SafekeeperTimeline#onPageserverFeedback}:
 * write/flush/apply = received / disk-consistent / durable position, ADR 0007), which the lag
 * limits hold the compute's acknowledgements against and retention keeps WAL for; other clients'
 * (standbys, {@code pg_receivewal}) are ignored, and a session that claims the pageserver's
 * application name from another address, or without the {@code safekeeperdata} scope, is logged at
 * WARN.
 *
 * <p>On a server that authenticates ({@link io.zenith.replication.server.Authenticator#jwt}), peers
 * need the {@code safekeeperdata} scope; other clients that, an {@code admin} token or a {@code
 * tenant} token of the timeline's tenant (28000 otherwise, before the timeline is looked up).
 *
 * <p>Errors mirror PostgreSQL's walsender: a start point ahead of the WAL (for peers: an end point)
 * is XX000 "requested starting point … is ahead of the WAL flush position of this server …"; one
 * below what the log still holds is 58P01 "requested WAL segment … has already been removed".
 *
 * <p>Thread-safe and non-blocking: commands are answered on the event loop from in-memory state;
 * WAL is read on {@code readers}.
 */
public final class WalService implements QueryHandler {
  private static final Logger log = LoggerFactory.getLogger(WalService.class);

  /** Startup option names (inside {@code options}): what peers and pageservers send. */
  public static final String TENANT = "zenith.tenant_id";

  public static final String TIMELINE = "zenith.timeline_id";
  public static final String PEER = "zenith.peer_id";
  public static final String UP_TO = "zenith.up_to";

  /**
   * The {@code application_name} pageservers connect with. A standby or {@code pg_receivewal}
   * reports positions too, but theirs must neither release the lag limits nor let retention drop
   * WAL a pageserver still needs.
   */
  public static final String PAGESERVER_APPLICATION = PageserverSource.DEFAULT_APPLICATION_NAME;

  private final Safekeeper sk;
  private final Scheduler readers;
  private final String context;

  /**
   * @param sk the timelines served
   * @param readers where WAL is read (blocking file reads)
   */
  public WalService(Safekeeper sk, Scheduler readers) {
    this.sk = sk;
    this.readers = readers;
    this.context = "safekeeper " + sk.config().id();
  }

  /**
   * The {@code options} startup parameter that names a timeline, for clients (a pageserver, {@code
   * pg_receivewal -d "options='…'"}).
   */
  public static String startupOptions(TenantId tenant, TimelineId timeline) {
    return "-c " + TENANT + "=" + tenant + " -c " + TIMELINE + "=" + timeline;
  }

  /**
   * What a session asked for.
   *
   * @param timeline the timeline
   * @param peerId a peer's id, null for pageservers and standbys
   * @param upTo where a peer's stream ends, null for the others
   * @param pageserver whether the session is the pageserver's (the configured {@link
   *     PageserverSource}): only its status updates are pageserver feedback
   */
  record Target(
      SafekeeperTimeline timeline,
      @Nullable Integer peerId,
      @Nullable Lsn upTo,
      boolean pageserver) {
    boolean peer() {
      return peerId != null;
    }
  }

  @Override
  public void accept(PgSession session) {
    target(session);
    if (!session.replication()) {
      throw fatal(
          SqlState.FEATURE_NOT_SUPPORTED,
          context + " serves replication connections only (connect with replication=true)");
    }
  }

  /** The session's timeline and role, from its {@code options}; refused if there is none. */
  Target target(PgSession session) {
    Map<String, String> o = options(session.parameters().get("options"));
    String tenantText = o.get(TENANT);
    String timelineText = o.get(TIMELINE);
    if (tenantText == null || timelineText == null) {
      throw fatal(
          SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
          "no timeline named: connect with options '-c "
              + TENANT
              + "=<tenant id> -c "
              + TIMELINE
              + "=<timeline id>'");
    }
    TenantId tenant = parse(TENANT, tenantText, TenantId::parse);
    TimelineId timeline = parse(TIMELINE, timelineText, TimelineId::parse);
    Integer peer = o.containsKey(PEER) ? parse(PEER, o.get(PEER), WalService::peerId) : null;
    Lsn upTo = o.containsKey(UP_TO) ? parse(UP_TO, o.get(UP_TO), Lsn::parse) : null;
    if ((peer == null) != (upTo == null)) {
      throw fatal(
          SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
          "a peer names both "
              + PEER
              + " and "
              + UP_TO
              + ", got only "
              + (peer == null ? UP_TO : PEER));
    }
    // Before the lookup: a token that does not allow this tenant learns nothing of its timelines.
    if (peer != null) {
      session.authorize(tenant, Scope.SAFEKEEPER_DATA);
    } else {
      session.authorize(tenant, Scope.SAFEKEEPER_DATA, Scope.TENANT, Scope.ADMIN);
    }
    SafekeeperTimeline t =
        sk.find(tenant, timeline)
            .orElseThrow(
                () ->
                    fatal(
                        SqlState.INVALID_CATALOG_NAME,
                        "timeline "
                            + tenant
                            + "/"
                            + timeline
                            + (sk.isDeleted(tenant, timeline)
                                ? " was deleted on "
                                : " does not exist on ")
                            + context));
    return new Target(t, peer, upTo, peer == null && isPageserver(session));
  }

  /**
   * Whether {@code session} is the configured pageserver's: its name and address, and, when the
   * server authenticates, a token with the {@code safekeeperdata} scope, which only the control
   * plane hands out (a tenant's token can claim the pageserver's name from its machine).
   */
  private boolean isPageserver(PgSession session) {
    return sk.config().pageserver().matches(session.applicationName(), session.remoteAddress())
        && (session.claims().isEmpty() || session.hasScope(Scope.SAFEKEEPER_DATA));
  }

  /**
   * Logs a stream whose session claims the pageserver's application name from an address the
   * configuration does not name: its feedback is ignored, which an operator who moved the
   * pageserver must hear about.
   */
  private void warnIfImpostor(PgSession session, Target target) {
    PageserverSource ps = sk.config().pageserver();
    if (!target.pageserver()
        && !target.peer()
        && ps.applicationName().equals(session.applicationName())) {
      log.warn(
          "[{} {}] {}: application_name {} but {}: its status updates are ignored",
          session.id(),
          session.remoteAddress(),
          context,
          session.applicationName(),
          session.claims().isPresent() && !session.hasScope(Scope.SAFEKEEPER_DATA)
              ? "its token's scope is not " + Scope.SAFEKEEPER_DATA.claim()
              : "not from the pageserver's addresses " + ps.addresses());
    }
  }

  private static int peerId(String s) {
    int id = Integer.parseInt(s);
    if (id < 0) {
      throw new IllegalArgumentException("negative");
    }
    return id;
  }

  private interface Parser<T> {
    T parse(String s);
  }

  private <T> T parse(String name, String value, Parser<T> parser) {
    try {
      return parser.parse(value);
    } catch (RuntimeException e) {
      throw fatal(
          SqlState.INVALID_PARAMETER_VALUE,
          "invalid value for parameter \"" + name + "\": \"" + value + "\"");
    }
  }

  /**
   * The {@code zenith.*} settings of an {@code options} startup parameter, split as PostgreSQL
   * splits it ({@code pg_split_opts}: whitespace separates, a backslash escapes the next character)
   * and read as PostgreSQL reads it: {@code -c name=value}, {@code -cname=value} or {@code
   * --name=value}. Settings outside {@code zenith.} are ignored (they would configure a backend);
   * the last of a repeated name wins, as in PostgreSQL.
   */
  Map<String, String> options(@Nullable String text) {
    Map<String, String> out = new LinkedHashMap<>();
    if (text == null) {
      return out;
    }
    java.util.List<String> words = new java.util.ArrayList<>();
    StringBuilder w = new StringBuilder();
    boolean inWord = false;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (Character.isWhitespace(c)) {
        if (inWord) {
          words.add(w.toString());
          w.setLength(0);
          inWord = false;
        }
        continue;
      }
      if (c == '\\' && i + 1 < text.length()) {
        c = text.charAt(++i);
      }
      w.append(c);
      inWord = true;
    }
    if (inWord) {
      words.add(w.toString());
    }
    for (int i = 0; i < words.size(); i++) {
      String word = words.get(i);
      String setting;
      if (word.equals("-c")) {
        if (i + 1 == words.size()) {
          throw malformedOptions(text, "-c without a setting");
        }
        setting = words.get(++i);
      } else if (word.startsWith("-c")) {
        setting = word.substring(2);
      } else if (word.startsWith("--")) {
        setting = word.substring(2).replace('-', '_');
      } else {
        throw malformedOptions(text, "\"" + word + "\" is not -c name=value");
      }
      int eq = setting.indexOf('=');
      if (eq <= 0) {
        throw malformedOptions(text, "\"" + setting + "\" is not name=value");
      }
      String name = setting.substring(0, eq);
      if (!name.startsWith("zenith.")) {
        continue;
      }
      if (!name.equals(TENANT)
          && !name.equals(TIMELINE)
          && !name.equals(PEER)
          && !name.equals(UP_TO)) {
        throw fatal(
            SqlState.UNDEFINED_OBJECT, "unrecognized configuration parameter \"" + name + "\"");
      }
      out.put(name, setting.substring(eq + 1));
    }
    return out;
  }

  private PgServerException malformedOptions(String text, String why) {
    return fatal(
        SqlState.SYNTAX_ERROR, "invalid command-line argument in options \"" + text + "\": " + why);
  }

  // ------------------------------------------------------------------ commands

  @Override
  public Mono<QueryResponse> handle(PgSession session, String query) {
    ReplicationCommand command = ReplicationCommand.parse(query);
    // Looked up again for each command: the timeline may have been deleted meanwhile.
    Target target = target(session);
    SafekeeperTimeline t = target.timeline();
    QueryResponse response =
        switch (command) {
          case IdentifySystem c ->
              c.result(
                  t.identity().systemId(), 1, target.peer() ? t.flushRecordEnd() : t.servableLsn());
          case Show c ->
              switch (c.name()) {
                case "wal_segment_size" -> c.result(sizeText(t.identity().segmentSize()));
                case "data_directory_mode" -> c.result("0700");
                default ->
                    throw error(
                        SqlState.UNDEFINED_OBJECT,
                        "unrecognized configuration parameter \"" + c.name() + "\"");
              };
          case TimelineHistory c ->
              throw error(
                  SqlState.UNDEFINED_FILE,
                  "could not open file \"pg_wal/" + c.fileName() + "\": No such file or directory");
          case ReadReplicationSlot c -> c.notFound();
          case CreateReplicationSlot c ->
              throw error(SqlState.FEATURE_NOT_SUPPORTED, context + " has no replication slots");
          case DropReplicationSlot c ->
              throw error(SqlState.FEATURE_NOT_SUPPORTED, context + " has no replication slots");
          case StartReplication c -> {
            warnIfImpostor(session, target);
            yield start(target, c);
          }
        };
    return Mono.just(response);
  }

  /** As PostgreSQL prints {@code wal_segment_size}: {@code 16MB}, {@code 1GB}. */
  static String sizeText(int bytes) {
    return bytes % (1 << 30) == 0 ? (bytes >> 30) + "GB" : (bytes >> 20) + "MB";
  }

  private QueryResponse.Replication start(Target target, StartReplication c) {
    SafekeeperTimeline t = target.timeline();
    if (c.timeline() != 0 && c.timeline() != 1) {
      throw error(
          SqlState.INTERNAL_ERROR,
          "requested timeline "
              + Integer.toUnsignedString(c.timeline())
              + " is not in this server's history");
    }
    if (c.slot() != null) {
      throw error(
          SqlState.UNDEFINED_OBJECT, "replication slot \"" + c.slot() + "\" does not exist");
    }
    Lsn flushed = t.flushRecordEnd();
    Lsn end = target.peer() ? target.upTo() : flushed;
    if (end.isAfter(flushed)) {
      throw error(
          SqlState.INTERNAL_ERROR,
          "requested end point "
              + end
              + " is ahead of the WAL flush position of this server "
              + flushed);
    }
    // A pageserver may resume between the commit LSN and the flush LSN (this safekeeper restarted
    // and has not relearned the commit LSN yet): its stream waits for the commit LSN.
    if (c.start().isAfter(end)) {
      throw error(
          SqlState.INTERNAL_ERROR,
          "requested starting point "
              + c.start()
              + " is ahead of the WAL flush position of this server "
              + end);
    }
    if (c.start().isBefore(t.oldestLsn())) {
      int seg = t.identity().segmentSize();
      throw error(
          SqlState.UNDEFINED_FILE,
          "requested WAL segment "
              + WalSegmentName.of(1, c.start(), seg).fileName(seg)
              + " has already been removed");
    }
    Publisher<WalPiece> wal;
    Supplier<Lsn> walEnd;
    if (target.peer()) {
      wal = t.readFlushed(c.start(), end, readers);
      walEnd = t::flushRecordEnd;
    } else {
      wal = t.readCommitted(c.start(), readers);
      walEnd = t::servableLsn;
    }
    return c.stream(wal, walEnd, target.pageserver() ? m -> onFeedback(t, m) : m -> {});
  }

  /**
   * The pageserver's positions: write/flush/apply = received / disk-consistent / durable position
   * (ADR 0007: the LSN below which it never needs WAL again, even after a restart).
   */
  private static void onFeedback(SafekeeperTimeline t, StandbyMessage m) {
    if (m instanceof StandbyStatusUpdate u) {
      t.onPageserverFeedback(new PageserverFeedback(u.write(), u.flush(), u.apply()));
    }
  }

  private PgServerException error(String sqlState, String message) {
    return new PgServerException(context, PgNotice.error(sqlState, message));
  }

  private PgServerException fatal(String sqlState, String message) {
    return new PgServerException(context, PgNotice.fatal(sqlState, message));
  }
}
