package io.zenith.gateway.cli;

import io.zenith.gateway.control.BranchOps;
import io.zenith.gateway.control.Branches;
import io.zenith.gateway.control.ComputeNode;
import io.zenith.gateway.http.Json;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

/**
 * What {@code --json} prints ({@code status}, {@code pg list}, {@code branch list}): one JSON
 * object per line, records whose fields, in snake_case, are the documented, stable names of
 * docs/cli.md; every field is always present ({@code null} when it has no value). Stateless, so
 * thread-safe.
 */
final class JsonOutput {
  private JsonOutput() {}

  /** One compute of {@code pg list --json} and {@code status --json}. */
  record Compute(
      String name,
      String tenantId,
      String timelineId,
      String branch,
      String mode,
      String lsn,
      String address,
      int port,
      String storage,
      String status,
      Long pid,
      Long term,
      Map<String, String> settings) {}

  /** One branch of {@code branch list --json}, depth-first from the root as the table. */
  record Branch(
      String name,
      String timelineId,
      String ancestor,
      String ancestorTimelineId,
      String ancestorLsn,
      String lastRecordLsn,
      String gcCutoff,
      String pitrStart,
      String state,
      ApiModel.LayerCounts layers,
      String diskConsistentLsn,
      String remoteConsistentLsn,
      ApiModel.RemoteUploadInfo remoteUpload) {}

  /** The pageserver in {@code status --json}. */
  record Pageserver(String status, Long pid, String listenHttp, String listenPg) {}

  /** One timeline a running safekeeper holds. */
  record SafekeeperTimeline(
      String branch, String timelineId, long term, String flushLsn, String commitLsn) {}

  /** One safekeeper in {@code status --json}; status running, stopped or "no answer". */
  record Safekeeper(
      int id,
      String listenHttp,
      String listenPg,
      String status,
      Long pid,
      List<SafekeeperTimeline> timelines) {}

  /** {@code status --json}; {@code allRunning} is what the exit status says (0, else 3). */
  record Status(
      String repository,
      String tenantId,
      boolean allRunning,
      Pageserver pageserver,
      Integer quorum,
      List<Safekeeper> safekeepers,
      List<Compute> computes) {}

  static List<Compute> computes(List<ComputeNode> nodes) {
    List<Compute> out = new ArrayList<>();
    for (ComputeNode n : nodes) {
      boolean running = n.running();
      String lsn = Cli.lsnOf(n, running);
      OptionalLong term = n.term();
      out.add(
          new Compute(
              n.spec().name(),
              n.spec().tenantId(),
              n.spec().timelineId(),
              n.spec().branch(),
              n.spec().primary() ? "primary" : "read-only",
              lsn.equals("latest") || lsn.equals("?") ? null : lsn,
              n.address(),
              n.spec().port(),
              n.spec().storage(),
              n.status(running),
              n.runningPid().orElse(null),
              term.isPresent() ? term.getAsLong() : null,
              n.spec().settings()));
    }
    return out;
  }

  static List<Branch> branches(List<BranchOps.Node> tree, Branches names) {
    List<Branch> out = new ArrayList<>();
    for (BranchOps.Node n : tree) {
      ApiModel.TimelineInfo i = n.info();
      String ancestor =
          i.ancestorTimelineId() == null
              ? null
              : names
                  .nameOf(TimelineId.parse(i.ancestorTimelineId()))
                  .orElse(i.ancestorTimelineId());
      out.add(
          new Branch(
              n.name(),
              i.timelineId(),
              ancestor,
              i.ancestorTimelineId(),
              i.ancestorLsn(),
              i.lastRecordLsn(),
              i.gcCutoff(),
              i.pitrStart(),
              i.state(),
              i.layers(),
              i.diskConsistentLsn(),
              i.remoteConsistentLsn(),
              i.remoteUpload()));
    }
    return out;
  }

  /** One object on one line ({@code status --json}). */
  static void print(PrintWriter out, Object value) throws IOException {
    out.println(Json.MAPPER.writeValueAsString(value));
    out.flush();
  }

  /** One object per line, JSON Lines ({@code pg list --json}, {@code branch list --json}). */
  static void printLines(PrintWriter out, List<?> values) throws IOException {
    for (Object v : values) {
      out.println(Json.MAPPER.writeValueAsString(v));
    }
    out.flush();
  }
}
