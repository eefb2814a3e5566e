package io.zenith.gateway.safekeeper;

import io.zenith.gateway.http.ApiException;
import io.zenith.gateway.http.Json;
import io.zenith.replication.safekeeper.TimelineStatus;
import io.zenith.replication.safekeeper.VoteResponse;
import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * The JSON bodies of the safekeeper's HTTP API ({@code docs/api/safekeeper.yaml}), and their
 * conversions from and to the core's values. LSNs as PostgreSQL prints them, ids as 32 lower-case
 * hex characters, the system id as a decimal string (it does not fit a JSON-safe integer), lag
 * limits in bytes (0 = no limit). Request fields are boxed so that a missing one can be named.
 */
public final class SafekeeperApiModel {
  private SafekeeperApiModel() {}

  public record Status(int id, String version, int members, int quorum, int timelines) {}

  public record TermEntryJson(Long term, String startLsn) {}

  public record LagLimitsJson(
      Long maxReplicationWriteLag, Long maxReplicationFlushLag, Long maxReplicationApplyLag) {}

  public record ComputeJson(Long term, String host, Integer port, String user) {}

  public record PageserverPositions(String writeLsn, String flushLsn, String applyLsn) {}

  /** What this safekeeper last heard from a peer about the timeline (gossip). */
  public record PeerInfo(
      int id, long term, long lastLogTerm, String flushLsn, String commitLsn, String intake) {}

  public record TimelineCreateRequest(
      String timelineId,
      String systemId,
      Integer pgVersion,
      Integer walSegmentSize,
      String startLsn,
      Long maxReplicationWriteLag,
      Long maxReplicationFlushLag,
      Long maxReplicationApplyLag) {}

  public record TimelineInfo(
      int safekeeperId,
      String tenantId,
      String timelineId,
      String systemId,
      int pgVersion,
      int walSegmentSize,
      String startLsn,
      long term,
      List<TermEntryJson> history,
      String flushLsn,
      String writeLsn,
      String commitLsn,
      String ackLsn,
      String oldestLsn,
      long removedBytes,
      @Nullable String backupLsn,
      PageserverPositions pageserver,
      LagLimitsJson lagLimits,
      @Nullable ComputeJson compute,
      long stoppedComputeTerm,
      String intake,
      @Nullable String intakeError,
      List<PeerInfo> peers) {}

  public record VoteRequest(Long term) {}

  /**
   * The answer to a timeline's deletion; {@code deletedNow} false if it had been deleted before.
   */
  public record TimelineDeleted(String tenantId, String timelineId, boolean deletedNow) {}

  /** {@code DELETE …/compute}: the term whose compute has stopped. */
  public record ComputeStopRequest(Long term) {}

  public record VoteInfo(
      int safekeeperId,
      boolean granted,
      long term,
      List<TermEntryJson> history,
      String flushLsn,
      String commitLsn) {}

  public record AdoptRequest(
      Long term, List<TermEntryJson> history, String upTo, Integer donorId) {}

  // ------------------------------------------------------------------ to JSON

  static List<TermEntryJson> history(List<TermEntry> h) {
    return h.stream().map(e -> new TermEntryJson(e.term(), e.start().toString())).toList();
  }

  static LagLimitsJson limits(LagLimits l) {
    return new LagLimitsJson(l.maxWriteLag(), l.maxFlushLag(), l.maxApplyLag());
  }

  static TimelineInfo info(TimelineStatus s, Map<Integer, TimelineStatus> peers) {
    Identity id = s.identity();
    ComputeSource c = s.compute();
    PageserverFeedback ps = s.pageserver();
    List<PeerInfo> peerInfo = new ArrayList<>();
    peers.entrySet().stream()
        .sorted(Map.Entry.comparingByKey())
        .forEach(
            e -> {
              TimelineStatus p = e.getValue();
              peerInfo.add(
                  new PeerInfo(
                      e.getKey(),
                      p.promisedTerm(),
                      p.lastLogTerm(),
                      p.flushLsn().toString(),
                      p.commitLsn().toString(),
                      p.intake()));
            });
    return new TimelineInfo(
        s.safekeeperId(),
        id.tenant().toString(),
        id.timeline().toString(),
        Long.toUnsignedString(id.systemId()),
        id.pgVersion(),
        id.segmentSize(),
        id.startLsn().toString(),
        s.promisedTerm(),
        history(s.history()),
        s.flushLsn().toString(),
        s.writeLsn().toString(),
        s.commitLsn().toString(),
        s.ackLsn().toString(),
        s.oldestLsn().toString(),
        s.removedBytes(),
        s.backupLsn().toString(),
        new PageserverPositions(
            ps.writeLsn().toString(), ps.flushLsn().toString(), ps.applyLsn().toString()),
        limits(s.lagLimits()),
        c == null ? null : new ComputeJson(c.term(), c.host(), c.port(), c.user()),
        s.stoppedComputeTerm(),
        s.intake(),
        s.intakeError(),
        peerInfo);
  }

  static VoteInfo vote(VoteResponse v) {
    return new VoteInfo(
        v.safekeeperId(),
        v.granted(),
        v.term(),
        history(v.history()),
        v.flushLsn().toString(),
        v.commitLsn().toString());
  }

  // ------------------------------------------------------------------ from JSON (answers)

  /** A timeline's status as a peer or the control plane reads it back. */
  public static TimelineStatus status(TimelineInfo i) {
    ComputeJson c = i.compute();
    LagLimitsJson l = i.lagLimits();
    PageserverPositions ps = i.pageserver();
    return new TimelineStatus(
        i.safekeeperId(),
        new Identity(
            Json.tenantId(i.tenantId()),
            Json.timelineId(i.timelineId()),
            Long.parseUnsignedLong(i.systemId()),
            i.pgVersion(),
            i.walSegmentSize(),
            Lsn.parse(i.startLsn())),
        i.term(),
        termHistory(i.history(), "history"),
        Lsn.parse(i.flushLsn()),
        Lsn.parse(i.writeLsn()),
        Lsn.parse(i.commitLsn()),
        Lsn.parse(i.ackLsn()),
        new PageserverFeedback(
            Lsn.parse(ps.writeLsn()), Lsn.parse(ps.flushLsn()), Lsn.parse(ps.applyLsn())),
        new LagLimits(
            l.maxReplicationWriteLag(), l.maxReplicationFlushLag(), l.maxReplicationApplyLag()),
        c == null ? null : new ComputeSource(c.term(), c.host(), c.port(), c.user()),
        i.stoppedComputeTerm(),
        i.intake(),
        i.intakeError(),
        Lsn.parse(i.oldestLsn()),
        i.removedBytes(),
        i.backupLsn() == null ? Lsn.INVALID : Lsn.parse(i.backupLsn()));
  }

  public static VoteResponse voteResponse(VoteInfo v) {
    return new VoteResponse(
        v.safekeeperId(),
        v.granted(),
        v.term(),
        termHistory(v.history(), "history"),
        Lsn.parse(v.flushLsn()),
        Lsn.parse(v.commitLsn()));
  }

  // ------------------------------------------------------------------ from JSON (requests)

  /** A history of a request: every entry complete; 400 naming the entry otherwise. */
  static List<TermEntry> termHistory(@Nullable List<TermEntryJson> h, String field) {
    if (h == null) {
      throw ApiException.badRequest("field '" + field + "' is required");
    }
    List<TermEntry> out = new ArrayList<>();
    for (int i = 0; i < h.size(); i++) {
      TermEntryJson e = h.get(i);
      String at = field + "[" + i + "]";
      if (e.term() == null || e.startLsn() == null) {
        throw ApiException.badRequest(at + " needs term and start_lsn");
      }
      if (e.term() < 1) {
        throw ApiException.badRequest(at + ".term must be at least 1, got " + e.term());
      }
      out.add(new TermEntry(e.term(), Json.lsn(at + ".start_lsn", e.startLsn())));
    }
    return out;
  }

  static LagLimits lagLimits(@Nullable Long write, @Nullable Long flush, @Nullable Long apply) {
    return new LagLimits(
        nonNegative("max_replication_write_lag", write),
        nonNegative("max_replication_flush_lag", flush),
        nonNegative("max_replication_apply_lag", apply));
  }

  private static long nonNegative(String field, @Nullable Long v) {
    if (v == null) {
      throw ApiException.badRequest("field '" + field + "' is required");
    }
    if (v < 0) {
      throw ApiException.badRequest(
          "field '" + field + "' must be a number of bytes, 0 for no limit; got " + v);
    }
    return v;
  }

  /** A required field; 400 naming it when it is missing. */
  static <T> T required(String field, @Nullable T value) {
    if (value == null) {
      throw ApiException.badRequest("field '" + field + "' is required");
    }
    return value;
  }
}
