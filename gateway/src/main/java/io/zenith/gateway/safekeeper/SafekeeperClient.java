package io.zenith.gateway.safekeeper;

import com.fasterxml.jackson.core.type.TypeReference;
import io.netty.handler.codec.http.HttpMethod;
import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.AdoptRequest;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.ComputeJson;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.ComputeStopRequest;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.TimelineCreateRequest;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.TimelineInfo;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.VoteInfo;
import io.zenith.gateway.safekeeper.SafekeeperApiModel.VoteRequest;
import io.zenith.replication.safekeeper.Election;
import io.zenith.replication.safekeeper.TimelineStatus;
import io.zenith.replication.safekeeper.VoteResponse;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.function.BiFunction;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;

/**
 * One safekeeper's HTTP API ({@code docs/api/safekeeper.yaml}) for the control plane and for peers:
 * blocking calls (never on an event loop). Error answers are {@link JsonHttpClient.ApiError}s with
 * the safekeeper's message; a safekeeper that does not answer fails as the constructor's {@code
 * failure} says. {@link #member} makes it an {@link Election.Member}. Thread-safe.
 */
public final class SafekeeperClient {
  private final int id;
  private final JsonHttpClient http;

  /**
   * @param id the safekeeper's id (as in its {@code safekeeper.toml})
   * @param timeout the longest a call waits (adoptions copy WAL: give them time)
   * @param startHint how to start it, for the message when nothing listens, or null
   * @param failure the exception of a safekeeper that does not answer (message, cause)
   * @param token the bearer token of each call (ADR 0016), or null for none
   */
  public SafekeeperClient(
      int id,
      InetSocketAddress http,
      Duration timeout,
      @Nullable String startHint,
      BiFunction<String, @Nullable Throwable, RuntimeException> failure,
      Supplier<@Nullable String> token) {
    this.id = id;
    this.http = new JsonHttpClient(http, "safekeeper " + id, startHint, timeout, failure, token);
  }

  /** A client whose failures are {@link JsonHttpClient.Unavailable}, without a token. */
  public SafekeeperClient(int id, InetSocketAddress http, Duration timeout) {
    this(id, http, timeout, () -> null);
  }

  /**
   * A client whose failures are {@link JsonHttpClient.Unavailable}.
   *
   * @param token the bearer token of each call, or null for none
   */
  public SafekeeperClient(
      int id, InetSocketAddress http, Duration timeout, Supplier<@Nullable String> token) {
    this(id, http, timeout, null, JsonHttpClient.Unavailable::new, token);
  }

  public int id() {
    return id;
  }

  /**
   * True if a safekeeper answers {@code /v1/status}, even with an error (one that refuses this
   * token still listens there); never throws.
   */
  public boolean isUp() {
    return http.answers("/v1/status");
  }

  public String baseUrl() {
    return http.baseUrl();
  }

  public SafekeeperApiModel.Status status() {
    return http.get("/v1/status", new TypeReference<>() {});
  }

  /** Every timeline of every tenant, as the safekeeper sees it (what peers gossip). */
  public List<TimelineStatus> allTimelines() {
    List<TimelineInfo> all = http.get("/v1/timeline", new TypeReference<>() {});
    return all.stream().map(SafekeeperApiModel::status).toList();
  }

  public List<TimelineInfo> timelines(TenantId tenant) {
    return http.get("/v1/tenant/" + tenant + "/timeline", new TypeReference<>() {});
  }

  public TimelineInfo timeline(TenantId tenant, TimelineId timeline) {
    return http.get(path(tenant, timeline), new TypeReference<>() {});
  }

  public TimelineStatus timelineStatus(TenantId tenant, TimelineId timeline) {
    return SafekeeperApiModel.status(timeline(tenant, timeline));
  }

  /** Creates a timeline; {@code limits} null takes the safekeeper's defaults. */
  public TimelineInfo createTimeline(Identity identity, @Nullable LagLimits limits) {
    return http.call(
        HttpMethod.POST,
        "/v1/tenant/" + identity.tenant() + "/timeline",
        new TimelineCreateRequest(
            identity.timeline().toString(),
            Long.toUnsignedString(identity.systemId()),
            identity.pgVersion(),
            identity.segmentSize(),
            identity.startLsn().toString(),
            limits == null ? null : limits.maxWriteLag(),
            limits == null ? null : limits.maxFlushLag(),
            limits == null ? null : limits.maxApplyLag()),
        new TypeReference<>() {});
  }

  /** What {@link #ensureTimeline} found: the timeline, and whether this call created it. */
  public record Ensured(TimelineInfo timeline, boolean created) {}

  /**
   * Creates a timeline, or finds it there already with the same identity: gossip creates on a
   * safekeeper the timelines its peers hold, so a creation on a peer a moment ago may have reached
   * it first. {@code limits} null takes the safekeeper's defaults (a learned timeline has its
   * peer's).
   *
   * @throws JsonHttpClient.ApiError 409 if it holds the timeline with another identity
   */
  public Ensured ensureTimeline(Identity identity, @Nullable LagLimits limits) {
    try {
      return new Ensured(createTimeline(identity, limits), true);
    } catch (JsonHttpClient.ApiError e) {
      if (e.status() != 409) {
        throw e;
      }
      TimelineInfo held = timeline(identity.tenant(), identity.timeline());
      Identity theirs = SafekeeperApiModel.status(held).identity();
      if (!theirs.equals(identity)) {
        throw new JsonHttpClient.ApiError(
            409,
            "safekeeper "
                + id
                + " holds timeline "
                + identity.tenant()
                + "/"
                + identity.timeline()
                + " already with "
                + theirs.describe()
                + "; not "
                + identity.describe());
      }
      return new Ensured(held, false);
    }
  }

  public VoteResponse vote(TenantId tenant, TimelineId timeline, long term) {
    VoteInfo v =
        http.call(
            HttpMethod.POST,
            path(tenant, timeline) + "/vote",
            new VoteRequest(term),
            new TypeReference<>() {});
    return SafekeeperApiModel.voteResponse(v);
  }

  public TimelineStatus adopt(
      TenantId tenant,
      TimelineId timeline,
      long term,
      List<TermEntry> history,
      Lsn upTo,
      int donorId) {
    TimelineInfo i =
        http.call(
            HttpMethod.POST,
            path(tenant, timeline) + "/adopt",
            new AdoptRequest(term, SafekeeperApiModel.history(history), upTo.toString(), donorId),
            new TypeReference<>() {});
    return SafekeeperApiModel.status(i);
  }

  public TimelineInfo setCompute(TenantId tenant, TimelineId timeline, ComputeSource compute) {
    return http.call(
        HttpMethod.PUT,
        path(tenant, timeline) + "/compute",
        new ComputeJson(compute.term(), compute.host(), compute.port(), compute.user()),
        new TypeReference<>() {});
  }

  /**
   * Tells the safekeeper that the compute of {@code term} has stopped: it stops pulling from it and
   * forgets it (nothing to do when it has no compute).
   *
   * @throws JsonHttpClient.ApiError 409 when its compute belongs to another term, 404 for an
   *     unknown timeline
   */
  public TimelineInfo stopCompute(TenantId tenant, TimelineId timeline, long term) {
    return http.call(
        HttpMethod.DELETE,
        path(tenant, timeline) + "/compute",
        new ComputeStopRequest(term),
        new TypeReference<>() {});
  }

  /**
   * Deletes the timeline here, leaving a tombstone; a timeline deleted before is not an error.
   *
   * @throws JsonHttpClient.ApiError 404 for a timeline that was never here
   */
  public SafekeeperApiModel.TimelineDeleted deleteTimeline(TenantId tenant, TimelineId timeline) {
    return http.call(HttpMethod.DELETE, path(tenant, timeline), null, new TypeReference<>() {});
  }

  public TimelineInfo setLagLimits(TenantId tenant, TimelineId timeline, LagLimits limits) {
    return http.call(
        HttpMethod.PUT,
        path(tenant, timeline) + "/config",
        SafekeeperApiModel.limits(limits),
        new TypeReference<>() {});
  }

  /** This safekeeper as a member of {@code timeline}'s elections. */
  public Election.Member member(TenantId tenant, TimelineId timeline) {
    return new Election.Member() {
      @Override
      public int id() {
        return id;
      }

      @Override
      public TimelineStatus status() {
        return timelineStatus(tenant, timeline);
      }

      @Override
      public VoteResponse vote(long term) {
        return SafekeeperClient.this.vote(tenant, timeline, term);
      }

      @Override
      public TimelineStatus adopt(long term, List<TermEntry> history, Lsn upTo, int donorId) {
        return SafekeeperClient.this.adopt(tenant, timeline, term, history, upTo, donorId);
      }
    };
  }

  private static String path(TenantId tenant, TimelineId timeline) {
    return "/v1/tenant/" + tenant + "/timeline/" + timeline;
  }
}
