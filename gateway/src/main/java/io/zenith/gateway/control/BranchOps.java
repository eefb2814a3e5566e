package io.zenith.gateway.control;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Branches: {@code zenith branch <new> [<ancestor>[@<lsn>]]} creates a timeline on the pageserver
 * (metadata only, any database size) and names it; {@link #tree()} describes every timeline of the
 * tenant with its branch point, for {@code zenith branch list}. Blocking; not thread-safe.
 */
public final class BranchOps {
  private final Repository repo;

  public BranchOps(Repository repo) {
    this.repo = repo;
  }

  /** What a new branch is. */
  public record Created(String name, TimelineId timeline, String ancestor, Lsn at) {}

  /** Creates branch {@code name} of {@code ancestor} at {@code at} (its latest LSN if empty). */
  public Created create(String name, String ancestor, Optional<Lsn> at) throws IOException {
    Branches.checkName(name);
    Branches branches = repo.branches();
    if (branches.find(name).isPresent()) {
      throw new ControlPlaneException(
          "branch '" + name + "' already exists (see `zenith branch list`)");
    }
    TimelineId ancestorId = branches.get(ancestor);
    TenantId tenant = repo.config().tenant();
    PageserverClient ps = repo.pageserver();
    if (at.isPresent()) {
      ps.checkLsnOnTimeline(tenant, ancestor, ancestorId, at.get(), "branch");
    }
    TimelineId id = TimelineId.generate();
    ApiModel.TimelineInfo info;
    try {
      info =
          ps.branch(
              tenant,
              new ApiModel.TimelineCreateRequest(
                  id.toString(), ancestorId.toString(), at.map(Lsn::toString).orElse(null)));
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException(
          "cannot branch " + ancestor + at.map(l -> " at " + l).orElse("") + ": " + e.getMessage());
    }
    repo.saveBranches(branches.with(name, id));
    return new Created(name, id, ancestor, Lsn.parse(info.ancestorLsn()));
  }

  /** One line of the branch tree. */
  public record Node(
      String name,
      int depth,
      boolean lastChild,
      List<Boolean> ancestorsLast,
      ApiModel.TimelineInfo info) {}

  /** Every timeline of the default tenant, depth-first from the roots, children by branch LSN. */
  public List<Node> tree() {
    List<ApiModel.TimelineInfo> all;
    try {
      all = repo.pageserver().timelines(repo.config().tenant());
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException("the pageserver: " + e.getMessage());
    }
    Branches names = repo.branches();
    Map<String, List<ApiModel.TimelineInfo>> children = new HashMap<>();
    List<ApiModel.TimelineInfo> roots = new ArrayList<>();
    java.util.Set<String> ids = new java.util.HashSet<>();
    all.forEach(t -> ids.add(t.timelineId()));
    for (ApiModel.TimelineInfo t : all) {
      if (t.ancestorTimelineId() == null || !ids.contains(t.ancestorTimelineId())) {
        roots.add(t);
      } else {
        children.computeIfAbsent(t.ancestorTimelineId(), k -> new ArrayList<>()).add(t);
      }
    }
    Comparator<ApiModel.TimelineInfo> order =
        Comparator.comparing(
                (ApiModel.TimelineInfo t) ->
                    t.ancestorLsn() == null ? Lsn.INVALID : Lsn.parse(t.ancestorLsn()))
            .thenComparing(t -> name(names, t));
    roots.sort(order);
    List<Node> out = new ArrayList<>();
    for (int i = 0; i < roots.size(); i++) {
      walk(roots.get(i), 0, i == roots.size() - 1, List.of(), children, order, names, out);
    }
    return out;
  }

  private static void walk(
      ApiModel.TimelineInfo t,
      int depth,
      boolean last,
      List<Boolean> ancestorsLast,
      Map<String, List<ApiModel.TimelineInfo>> children,
      Comparator<ApiModel.TimelineInfo> order,
      Branches names,
      List<Node> out) {
    out.add(new Node(name(names, t), depth, last, ancestorsLast, t));
    List<ApiModel.TimelineInfo> kids =
        new ArrayList<>(children.getOrDefault(t.timelineId(), List.of()));
    kids.sort(order);
    List<Boolean> next = new ArrayList<>(ancestorsLast);
    next.add(last);
    for (int i = 0; i < kids.size(); i++) {
      walk(kids.get(i), depth + 1, i == kids.size() - 1, next, children, order, names, out);
    }
  }

  private static String name(Branches names, ApiModel.TimelineInfo t) {
    return names.nameOf(TimelineId.parse(t.timelineId())).orElse("(unnamed)");
  }
}
