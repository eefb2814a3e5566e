package io.zenith.gateway.safekeeper;

import static io.zenith.gateway.safekeeper.SafekeeperApiModel.required;

import io.netty.handler.codec.http.HttpMethod;
import io.zenith.gateway.http.ApiException;
import io.zenith.gateway.http.HttpAuth;
import io.zenith.gateway.http.Json;
import io.zenith.gateway.http.JsonApiServer;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.AdoptRequest;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.ComputeJson;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.ComputeStopRequest;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.LagLimitsJson;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.TimelineCreateRequest;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.TimelineInfo;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.VoteRequest;
import io.zenith.replication.auth.Scope;
import io.zenith.replication.auth.Tokens;
import io.zenith.replication.safekeeper.Safekeeper;
import io.zenith.replication.safekeeper.SafekeeperException;
import io.zenith.replication.safekeeper.SafekeeperTimeline;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalFormat;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.function.Supplier;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;
import reactor.core.scheduler.Scheduler;
import reactor.netty.DisposableServer;
import reactor.netty.http.server.HttpServerRequest;

/**
 * The safekeeper's HTTP API ({@code docs/api/safekeeper.yaml}): its timelines (create, list,
 * status, delete), elections (vote, adopt), the compute of a term (set, stopped), lag limits, the
 * statuses peers gossip ({@code GET /v1/timeline}), and {@code /metrics}. Work runs on a blocking
 * scheduler (votes and adoptions wait for intakes to stop and copy WAL); errors are {@code
 * {"error": "..."}} with the status of the {@link SafekeeperException.Kind}.
 */
public final class SafekeeperHttpApi {
  private static final Pattern SYSTEM_ID = Pattern.compile("[0-9]{1,20}");

  private final Safekeeper sk;
  private final String version;
  private final JsonApiServer api;

  /**
   * Who may call what besides admin (ADR 0016): peers' gossip reads every timeline's status; a
   * tenant's token reads its own timelines. Elections, intakes, settings and deletions are the
   * control plane's.
   */
  static final List<HttpAuth.Rule> ACCESS =
      List.of(
          HttpAuth.Rule.of(HttpMethod.GET, "/v1/timeline", Scope.ADMIN, Scope.SAFEKEEPER_DATA),
          HttpAuth.Rule.of(
              HttpMethod.GET,
              "/v1/tenant/[^/]+/timeline(/[^/]+)?",
              Scope.ADMIN,
              Scope.TENANT,
              Scope.SAFEKEEPER_DATA));

  /**
   * @param verifier checks the tokens of requests, or null when the safekeeper authenticates no one
   */
  public SafekeeperHttpApi(
      Safekeeper sk,
      String version,
      Scheduler blocking,
      Supplier<String> metrics,
      Tokens.@Nullable Verifier verifier) {
    this.sk = sk;
    this.version = version;
    this.api =
        new JsonApiServer(
            blocking,
            SafekeeperHttpApi::statusOf,
            metrics,
            verifier == null ? null : new HttpAuth(verifier, ACCESS));
  }

  public DisposableServer bind(InetSocketAddress address) {
    String timeline = "/v1/tenant/{tenant}/timeline/{timeline}";
    return api.bind(
        address,
        r ->
            r.get("/v1/status", (req, res) -> api.json(res, 200, this::status))
                .get("/v1/timeline", (req, res) -> api.json(res, 200, this::allTimelines))
                .get(
                    "/v1/tenant/{tenant}/timeline",
                    (req, res) -> api.json(res, 200, () -> timelines(tenant(req))))
                .post(
                    "/v1/tenant/{tenant}/timeline",
                    (req, res) ->
                        api.withBody(
                            req,
                            res,
                            TimelineCreateRequest.class,
                            201,
                            b -> create(tenant(req), b)))
                .get(timeline, (req, res) -> api.json(res, 200, () -> info(timeline(req))))
                .delete(timeline, (req, res) -> api.json(res, 200, () -> delete(req)))
                .post(
                    timeline + "/vote",
                    (req, res) ->
                        api.withBody(
                            req,
                            res,
                            VoteRequest.class,
                            200,
                            b -> SafekeeperApiModel.vote(timeline(req).vote(term(b.term())))))
                .post(
                    timeline + "/adopt",
                    (req, res) ->
                        api.withBody(
                            req, res, AdoptRequest.class, 200, b -> adopt(timeline(req), b)))
                .put(
                    timeline + "/compute",
                    (req, res) ->
                        api.withBody(
                            req, res, ComputeJson.class, 200, b -> setCompute(timeline(req), b)))
                .delete(
                    timeline + "/compute",
                    (req, res) ->
                        api.withBody(
                            req,
                            res,
                            ComputeStopRequest.class,
                            200,
                            b -> stopCompute(timeline(req), b)))
                .put(
                    timeline + "/config",
                    (req, res) ->
                        api.withBody(
                            req, res, LagLimitsJson.class, 200, b -> setLimits(timeline(req), b))));
  }

  // ------------------------------------------------------------------ operations (may block)

  private SafekeeperApiModel.Status status() {
    int members = sk.config().members();
    return new SafekeeperApiModel.Status(
        sk.config().id(), version, members, sk.config().quorum(), sk.timelines().size());
  }

  private List<TimelineInfo> allTimelines() {
    return sk.timelines().stream().map(SafekeeperHttpApi::info).toList();
  }

  private List<TimelineInfo> timelines(TenantId tenant) {
    return sk.timelines().stream()
        .filter(t -> t.identity().tenant().equals(tenant))
        .map(SafekeeperHttpApi::info)
        .toList();
  }

  static TimelineInfo info(SafekeeperTimeline t) {
    return SafekeeperApiModel.info(t.status(), t.peers());
  }

  private TimelineInfo create(TenantId tenant, TimelineCreateRequest b) throws IOException {
    TimelineId id = Json.timelineId(required("timeline_id", b.timelineId()));
    String sys = required("system_id", b.systemId());
    if (!SYSTEM_ID.matcher(sys).matches()) {
      throw ApiException.badRequest(
          "field 'system_id' must be the database system identifier in decimal, got \""
              + sys
              + "\"");
    }
    long systemId;
    try {
      systemId = Long.parseUnsignedLong(sys);
    } catch (NumberFormatException e) {
      throw ApiException.badRequest("field 'system_id' is out of range: " + sys);
    }
    int pgVersion = required("pg_version", b.pgVersion());
    if (pgVersion != 15) {
      throw ApiException.badRequest(
          "field 'pg_version': only PostgreSQL 15 is supported, got " + pgVersion);
    }
    int segmentSize = required("wal_segment_size", b.walSegmentSize());
    if (!WalFormat.isValidSegmentSize(segmentSize)) {
      throw ApiException.badRequest(
          "field 'wal_segment_size' must be a power of two from 1 MiB to 1 GiB, got "
              + segmentSize);
    }
    Lsn start = Json.lsn("start_lsn", required("start_lsn", b.startLsn()));
    checkRecordStart(start, segmentSize);
    LagLimits d = sk.config().defaultLagLimits();
    LagLimits limits =
        SafekeeperApiModel.lagLimits(
            b.maxReplicationWriteLag() != null ? b.maxReplicationWriteLag() : d.maxWriteLag(),
            b.maxReplicationFlushLag() != null ? b.maxReplicationFlushLag() : d.maxFlushLag(),
            b.maxReplicationApplyLag() != null ? b.maxReplicationApplyLag() : d.maxApplyLag());
    return info(
        sk.create(new Identity(tenant, id, systemId, pgVersion, segmentSize, start), limits));
  }

  /** A timeline's WAL starts where a record can: not at 0/0 and not inside a page header. */
  private static void checkRecordStart(Lsn start, int segmentSize) {
    if (!start.isValid()) {
      throw ApiException.badRequest("field 'start_lsn' must not be 0/0");
    }
    int inPage = start.pageOffset();
    int header =
        start.segmentOffset(segmentSize) < WalFormat.XLOG_BLCKSZ
            ? WalFormat.LONG_PAGE_HEADER_SIZE
            : WalFormat.SHORT_PAGE_HEADER_SIZE;
    if (inPage != 0 && inPage < header) {
      throw ApiException.badRequest(
          "field 'start_lsn': " + start + " points into a WAL page header, not at a record start");
    }
    if (start.value() % 8 != 0) {
      throw ApiException.badRequest(
          "field 'start_lsn': " + start + " is not MAXALIGNed, so no record starts there");
    }
  }

  private static long term(@Nullable Long term) {
    long t = required("term", term);
    if (t < 1) {
      throw ApiException.badRequest("field 'term' must be at least 1, got " + t);
    }
    return t;
  }

  private static TimelineInfo adopt(SafekeeperTimeline t, AdoptRequest b) throws IOException {
    long term = term(b.term());
    Lsn upTo = Json.lsn("up_to", required("up_to", b.upTo()));
    int donor = required("donor_id", b.donorId());
    if (donor < 1) {
      throw ApiException.badRequest("field 'donor_id' must be at least 1, got " + donor);
    }
    t.adopt(term, SafekeeperApiModel.termHistory(b.history(), "history"), upTo, donor);
    return info(t);
  }

  private static TimelineInfo setCompute(SafekeeperTimeline t, ComputeJson b) throws IOException {
    long term = term(b.term());
    String host = required("host", b.host());
    int port = required("port", b.port());
    String user = required("user", b.user());
    if (host.isBlank()) {
      throw ApiException.badRequest("field 'host' must not be empty");
    }
    if (port < 1 || port > 65535) {
      throw ApiException.badRequest("field 'port' must be between 1 and 65535, got " + port);
    }
    if (user.isEmpty()) {
      throw ApiException.badRequest("field 'user' must not be empty");
    }
    t.setCompute(new ComputeSource(term, host, port, user));
    return info(t);
  }

  /** The compute of the body's term has stopped: 200 with the timeline, also when none is set. */
  private static TimelineInfo stopCompute(SafekeeperTimeline t, ComputeStopRequest b)
      throws IOException {
    t.stopCompute(term(b.term()));
    return info(t);
  }

  private static TimelineInfo setLimits(SafekeeperTimeline t, LagLimitsJson b) throws IOException {
    t.setLagLimits(
        SafekeeperApiModel.lagLimits(
            b.maxReplicationWriteLag(), b.maxReplicationFlushLag(), b.maxReplicationApplyLag()));
    return info(t);
  }

  private SafekeeperApiModel.TimelineDeleted delete(HttpServerRequest req) throws IOException {
    TenantId tenant = tenant(req);
    TimelineId id = Json.timelineId(req.param("timeline"));
    boolean now = sk.delete(tenant, id);
    return new SafekeeperApiModel.TimelineDeleted(tenant.toString(), id.toString(), now);
  }

  private static TenantId tenant(HttpServerRequest req) {
    return Json.tenantId(req.param("tenant"));
  }

  private SafekeeperTimeline timeline(HttpServerRequest req) {
    return sk.timeline(tenant(req), Json.timelineId(req.param("timeline")));
  }

  /** The status a safekeeper condition deserves. */
  static @Nullable ApiException statusOf(Throwable t) {
    return switch (t) {
      case SafekeeperException e ->
          new ApiException(
              switch (e.kind()) {
                case NOT_FOUND -> 404;
                case DELETED -> 410;
                case ALREADY_EXISTS, TERM_CONFLICT, UNSAFE -> 409;
                case INVALID -> 400;
                case IO -> 500;
                case CLOSED -> 503;
              },
              e.getMessage());
      case IOException e -> new ApiException(500, "I/O error: " + e.getMessage());
      case UncheckedIOException e -> new ApiException(500, "I/O error: " + e.getMessage());
      default -> null;
    };
  }
}
