package io.zenith.gateway.pageserver;

import io.netty.handler.codec.http.QueryStringDecoder;
import io.zenith.gateway.http.ApiException;
import io.zenith.gateway.http.HttpAuth;
import io.zenith.gateway.http.Json;
import io.zenith.gateway.http.JsonApiServer;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreException;
import io.zenith.page.PageReconstructor;
import io.zenith.replication.auth.Scope;
import io.zenith.replication.auth.Tokens;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;
import reactor.core.scheduler.Scheduler;
import reactor.netty.DisposableServer;

/**
 * The pageserver's management API over HTTP ({@code docs/api/pageserver.yaml}) and {@code
 * /metrics}. Request handling never blocks an event loop: every operation on the store runs on the
 * pageserver's blocking scheduler. Errors are JSON {@code {"error": "..."}} with a 4xx status for
 * the client's mistakes and 5xx for the server's ({@link JsonApiServer}).
 */
public final class HttpApi {

  /** What the API asks of the pageserver. Implementations may block. */
  public interface Operations {
    ApiModel.Status status();

    List<ApiModel.TenantInfo> tenants();

    /**
     * Creates a tenant in {@code generation}; with {@code root}, a root timeline from a fresh
     * initdb in it.
     */
    ApiModel.TenantInfo createTenant(
        Optional<TenantId> id, Optional<TimelineId> root, int generation);

    /** Attaches a tenant in {@code generation} (ADR 0026). */
    ApiModel.TenantInfo attachTenant(TenantId tenant, int generation);

    /** Stops the WAL receivers of the tenant's timelines and deletes it with all of them. */
    ApiModel.TenantDeleted deleteTenant(TenantId tenant);

    /** Attach (from remote storage) and detach of tenants, and a tenant's state (ADR 0027). */
    TenantAttachments attachments();

    List<ApiModel.TimelineInfo> timelines(TenantId tenant);

    ApiModel.TimelineInfo timeline(TenantId tenant, TimelineId timeline, boolean withSize);

    ApiModel.TimelineInfo branch(TenantId tenant, ApiModel.TimelineCreateRequest request);

    ApiModel.TimelineInfo checkpoint(TenantId tenant, TimelineId timeline);

    /**
     * Ingests the timeline's WAL that remote storage holds after its last record (restore, ADR
     * 0029); refused while it has a WAL source.
     */
    ApiModel.TimelineInfo restoreOffloadedWal(TenantId tenant, TimelineId timeline);

    ApiModel.CompactionInfo compact(TenantId tenant, TimelineId timeline);

    ApiModel.GcInfo gc(TenantId tenant, TimelineId timeline);

    /** The timeline's own layer files as its index registers them. */
    ApiModel.LayerList layers(TenantId tenant, TimelineId timeline);

    ApiModel.LsnByTimestamp lsnByTimestamp(TenantId tenant, TimelineId timeline, Instant time);

    /** Stops the timeline's WAL receiver and deletes it (refused while it has children). */
    ApiModel.TimelineDeleted deleteTimeline(TenantId tenant, TimelineId timeline);

    ApiModel.TimelineInfo startWalReceiver(
        TenantId tenant, TimelineId timeline, ApiModel.WalSource source);

    ApiModel.TimelineInfo stopWalReceiver(TenantId tenant, TimelineId timeline);

    String scrapeMetrics();

    Scheduler blocking();

    /** The layer store, for snapshots to share ({@link Snapshots}). */
    LayerStore store();

    /** Page reconstruction, which materializes a snapshot's images. */
    PageReconstructor pages();
  }

  private final Operations ops;
  private final JsonApiServer api;
  private final Snapshots snapshots;

  /**
   * Who may call what besides admin (ADR 0016): a tenant's token opens its timelines' APIs, except
   * where a timeline's WAL comes from, which is the control plane's.
   */
  static final List<HttpAuth.Rule> ACCESS =
      List.of(
          HttpAuth.Rule.of(null, "/v1/tenant/[^/]+/timeline/[^/]+/wal_source", Scope.ADMIN),
          // a snapshot writes where the request says: the control plane's (ADR 0028)
          HttpAuth.Rule.of(null, "/v1/tenant/[^/]+/timeline/[^/]+/snapshot", Scope.ADMIN),
          HttpAuth.Rule.of(null, "/v1/tenant/[^/]+/timeline(/.*)?", Scope.ADMIN, Scope.TENANT));

  /**
   * @param verifier checks the tokens of requests, or null when the pageserver authenticates no one
   */
  public HttpApi(Operations ops, Tokens.@Nullable Verifier verifier) {
    this.ops = ops;
    this.api =
        new JsonApiServer(
            ops.blocking(),
            HttpApi::statusOf,
            ops::scrapeMetrics,
            verifier == null ? null : new HttpAuth(verifier, ACCESS));
    this.snapshots = new Snapshots(ops.store(), ops.pages()::page);
  }

  public DisposableServer bind(InetSocketAddress address) {
    return api.bind(
        address,
        r ->
            r.get("/v1/status", (req, res) -> api.json(res, 200, ops::status))
                .get("/v1/tenant", (req, res) -> api.json(res, 200, ops::tenants))
                .post(
                    "/v1/tenant",
                    (req, res) ->
                        api.withBody(
                            req,
                            res,
                            ApiModel.TenantCreateRequest.class,
                            201,
                            b ->
                                ops.createTenant(
                                    Optional.ofNullable(b.newTenantId()).map(HttpApi::tenantId),
                                    Optional.ofNullable(b.rootTimelineId())
                                        .map(HttpApi::timelineId),
                                    generation(b.generation(), false))))
                .post(
                    "/v1/tenant/{tenant}/attach",
                    (req, res) ->
                        api.withBody(
                            req,
                            res,
                            ApiModel.TenantAttachRequest.class,
                            200,
                            b ->
                                ops.attachTenant(
                                    tenantId(req.param("tenant")),
                                    generation(b.generation(), true))))
                .delete(
                    "/v1/tenant/{tenant}",
                    (req, res) ->
                        api.json(res, 200, () -> ops.deleteTenant(tenantId(req.param("tenant")))))
                .get(
                    "/v1/tenant/{tenant}",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () -> ops.attachments().detail(tenantId(req.param("tenant")))))
                .post(
                    "/v1/tenant/{tenant}/detach",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () -> ops.attachments().detach(tenantId(req.param("tenant")))))
                .get(
                    "/v1/tenant/{tenant}/timeline",
                    (req, res) ->
                        api.json(res, 200, () -> ops.timelines(tenantId(req.param("tenant")))))
                .post(
                    "/v1/tenant/{tenant}/timeline",
                    (req, res) ->
                        api.withBody(
                            req,
                            res,
                            ApiModel.TimelineCreateRequest.class,
                            201,
                            b -> ops.branch(tenantId(req.param("tenant")), b)))
                .get(
                    "/v1/tenant/{tenant}/timeline/{timeline}",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () ->
                                ops.timeline(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline")),
                                    includeSize(req.uri()))))
                .get(
                    "/v1/tenant/{tenant}/timeline/{timeline}/lsn_by_timestamp",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () ->
                                ops.lsnByTimestamp(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline")),
                                    timestamp(req.uri()))))
                .delete(
                    "/v1/tenant/{tenant}/timeline/{timeline}",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () ->
                                ops.deleteTimeline(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline")))))
                .post(
                    "/v1/tenant/{tenant}/timeline/{timeline}/snapshot",
                    (req, res) ->
                        api.withBody(
                            req,
                            res,
                            ApiModel.SnapshotPushRequest.class,
                            200,
                            b ->
                                snapshots.push(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline")),
                                    b)))
                .post(
                    "/v1/tenant/{tenant}/snapshot",
                    (req, res) ->
                        api.withBody(
                            req,
                            res,
                            ApiModel.SnapshotPullRequest.class,
                            201,
                            b -> {
                              TenantId t = tenantId(req.param("tenant"));
                              return ops.timeline(t, snapshots.pull(t, b), false);
                            }))
                .get(
                    "/v1/tenant/{tenant}/timeline/{timeline}/layer",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () ->
                                ops.layers(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline")))))
                .post(
                    "/v1/tenant/{tenant}/timeline/{timeline}/checkpoint",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () ->
                                ops.checkpoint(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline")))))
                .post(
                    "/v1/tenant/{tenant}/timeline/{timeline}/restore_offloaded_wal",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () ->
                                ops.restoreOffloadedWal(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline")))))
                .post(
                    "/v1/tenant/{tenant}/timeline/{timeline}/compact",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () ->
                                ops.compact(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline")))))
                .post(
                    "/v1/tenant/{tenant}/timeline/{timeline}/do_gc",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () ->
                                ops.gc(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline")))))
                .put(
                    "/v1/tenant/{tenant}/timeline/{timeline}/wal_source",
                    (req, res) ->
                        api.withBody(
                            req,
                            res,
                            ApiModel.WalSource.class,
                            200,
                            b ->
                                ops.startWalReceiver(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline")),
                                    checkSource(b))))
                .delete(
                    "/v1/tenant/{tenant}/timeline/{timeline}/wal_source",
                    (req, res) ->
                        api.json(
                            res,
                            200,
                            () ->
                                ops.stopWalReceiver(
                                    tenantId(req.param("tenant")),
                                    timelineId(req.param("timeline"))))));
  }

  /** A generation from a request: at least 1; {@code required}, or 1 when absent. */
  static int generation(Integer g, boolean required) {
    if (g == null && !required) {
      return 1;
    }
    if (g == null || g < 1) {
      throw ApiException.badRequest("generation must be an integer of at least 1, not " + g);
    }
    return g;
  }

  static TenantId tenantId(String s) {
    return Json.tenantId(s);
  }

  static TimelineId timelineId(String s) {
    return Json.timelineId(s);
  }

  /** The {@code timestamp} query parameter of {@code uri}: one, ISO-8601 with a zone. */
  static Instant timestamp(String uri) {
    List<String> values =
        new QueryStringDecoder(uri).parameters().getOrDefault("timestamp", List.of());
    if (values.size() != 1) {
      throw ApiException.badRequest(
          values.isEmpty()
              ? "query parameter 'timestamp' is required (ISO-8601 with a zone, e.g. "
                  + Json.TIMESTAMP_EXAMPLE
                  + ")"
              : "query parameter 'timestamp' is given " + values.size() + " times");
    }
    return Json.timestamp(values.getFirst());
  }

  /**
   * The {@code include-size} query parameter of {@code uri}: absent or {@code false}, or {@code
   * true}. The logical size walks every relation of the timeline: a poller of positions must not
   * pay for it on each call.
   */
  static boolean includeSize(String uri) {
    List<String> values =
        new QueryStringDecoder(uri).parameters().getOrDefault("include-size", List.of());
    if (values.isEmpty()) {
      return false;
    }
    if (values.size() == 1 && values.getFirst().equals("true")) {
      return true;
    }
    if (values.size() == 1 && values.getFirst().equals("false")) {
      return false;
    }
    throw ApiException.badRequest(
        "query parameter 'include-size' must be given once, as true or false");
  }

  /** The status a layer-store condition deserves. */
  static @Nullable ApiException statusOf(Throwable t) {
    if (!(t instanceof LayerStoreException e)) {
      return null;
    }
    int status =
        switch (e.kind()) {
          case UNKNOWN_TENANT, UNKNOWN_TIMELINE -> 404;
          case ALREADY_EXISTS, HAS_CHILDREN, STALE_GENERATION -> 409;
          case INVALID_LSN -> 400;
          case LSN_TIMEOUT -> 504;
          case NO_SPACE -> 507;
          case CORRUPT_FILE, IO -> 500;
        };
    return new ApiException(status, e.getMessage());
  }

  /** Replication slot names PostgreSQL accepts. */
  private static final Pattern SLOT_NAME = Pattern.compile("[a-z0-9_]{1,63}");

  /** Refuses a WAL source the receiver could never use: it would retry it forever. */
  static ApiModel.WalSource checkSource(ApiModel.WalSource s) {
    if (s.safekeepers() != null) {
      return checkSafekeeperSource(s);
    }
    if (s.host() == null || s.host().isBlank()) {
      throw ApiException.badRequest("wal_source needs a host and port, or safekeepers");
    }
    if (s.port() == null || s.port() < 1 || s.port() > 65535) {
      throw ApiException.badRequest(
          "wal_source needs a port between 1 and 65535"
              + (s.port() == null ? "" : ", got " + s.port()));
    }
    if (s.user() != null && s.user().isEmpty()) {
      throw ApiException.badRequest("wal_source user must not be empty");
    }
    if (s.applicationName() != null && s.applicationName().isEmpty()) {
      throw ApiException.badRequest("wal_source application_name must not be empty");
    }
    if (s.slot() != null && !SLOT_NAME.matcher(s.slot()).matches()) {
      throw ApiException.badRequest(
          "invalid slot name \""
              + s.slot()
              + "\": lower-case letters, digits and underscores, at most 63");
    }
    return s;
  }

  private static ApiModel.WalSource checkSafekeeperSource(ApiModel.WalSource s) {
    if (s.host() != null
        || s.port() != null
        || s.user() != null
        || s.slot() != null
        || s.applicationName() != null) {
      throw ApiException.badRequest(
          "wal_source has either host and port (a compute) or safekeepers, not both");
    }
    if (s.safekeepers().isEmpty()) {
      throw ApiException.badRequest("wal_source safekeepers must not be empty");
    }
    java.util.Set<Integer> ids = new java.util.HashSet<>();
    for (ApiModel.SafekeeperEndpoint e : s.safekeepers()) {
      if (e.id() == null || e.host() == null || e.port() == null) {
        throw ApiException.badRequest("every wal_source safekeeper needs id, host and port");
      }
      if (e.id() < 0 || !ids.add(e.id())) {
        throw ApiException.badRequest(
            "wal_source safekeeper ids must be unique and not negative, got " + e.id());
      }
      if (e.host().isBlank()) {
        throw ApiException.badRequest("wal_source safekeeper " + e.id() + " needs a host");
      }
      if (e.port() < 1 || e.port() > 65535) {
        throw ApiException.badRequest(
            "wal_source safekeeper "
                + e.id()
                + " needs a port between 1 and 65535, got "
                + e.port());
      }
    }
    return s;
  }
}
