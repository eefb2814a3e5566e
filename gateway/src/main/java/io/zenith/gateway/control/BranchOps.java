package io.zenith.gateway.control;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.safekeeper.SafekeeperClient;
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
 * tenant with its branch point, for {@code zenith branch list}; {@link #delete} deletes a branch
 * everywhere. Blocking; not thread-safe.
 */
public final class BranchOps {
  private final Repository repo;
  private final TenantId tenant;

  /** Branches of the repository's first tenant. */
  public BranchOps(Repository repo) {
    this(repo, repo.config().tenant());
  }

  /** Branches of {@code tenant}. */
  public BranchOps(Repository repo, TenantId tenant) {
    this.repo = repo;
    this.tenant = tenant;
  }

  /** What a new branch is. */
  public record Created(String name, TimelineId timeline, String ancestor, Lsn at) {}

  /** Creates branch {@code name} of {@code ancestor} at {@code at} (its latest LSN if empty). */
  public Created create(String name, String ancestor, Optional<Lsn> at) throws IOException {
    Branches.checkName(name);
    Branches branches = repo.branches(tenant);
    if (branches.find(name).isPresent()) {
      throw new ControlPlaneException(
          "branch '" + name + "' already exists (see `zenith branch list`)");
    }
    TimelineId ancestorId = branches.get(ancestor);
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
    repo.saveBranches(tenant, branches.with(name, id));
    return new Created(name, id, ancestor, Lsn.parse(info.ancestorLsn()));
  }

  /**
   * What a deletion did: the branch and its timeline, the safekeepers it was deleted on, and the
   * stopped computes that were on it (they cannot start again).
   */
  public record Deleted(
      String name, TimelineId timeline, List<Integer> safekeepers, List<String> strandedComputes) {}

  /**
   * Deletes branch {@code name}: refused while other timelines branch from it or a compute runs on
   * it. Otherwise its timeline is deleted on the pageserver (which returns its space), then on
   * every safekeeper (each keeps a tombstone, so gossip never brings it back), and last the name.
   * Every safekeeper must answer before anything is deleted. A deletion that stopped midway (a
   * service failed) is finished by running it again: a timeline already gone from the pageserver or
   * never on a safekeeper is not an error then.
   */
  public Deleted delete(String name) throws IOException {
    Branches branches = repo.branches(tenant);
    TimelineId id = branches.get(name);
    PageserverClient ps = repo.pageserver();
    List<String> children = new ArrayList<>();
    try {
      for (ApiModel.TimelineInfo t : ps.timelines(tenant)) {
        if (id.toString().equals(t.ancestorTimelineId())) {
          children.add(
              branches
                  .nameOf(TimelineId.parse(t.timelineId()))
                  .orElse("(unnamed timeline " + t.timelineId() + ")"));
        }
      }
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException("the pageserver: " + e.getMessage());
    }
    if (!children.isEmpty()) {
      children.sort(null);
      throw new ControlPlaneException(
          "cannot delete branch '"
              + name
              + "': branch"
              + (children.size() == 1 ? " " : "es ")
              + String.join(", ", children)
              + (children.size() == 1 ? " branches" : " branch")
              + " from it; delete "
              + (children.size() == 1 ? "it" : "them")
              + " first");
    }
    List<ComputeNode> onBranch =
        repo.computes().stream()
            .filter(c -> c.spec().tenant().equals(tenant) && c.spec().timeline().equals(id))
            .toList();
    List<String> running =
        onBranch.stream().filter(ComputeNode::running).map(c -> c.spec().name()).toList();
    if (!running.isEmpty()) {
      throw new ControlPlaneException(
          "cannot delete branch '"
              + name
              + "': "
              + Computes.runOnIt(running)
              + " with `zenith pg stop "
              + running.get(0)
              + "`");
    }
    List<SafekeeperClient> clients = repo.safekeepers().allAnswering();
    try {
      ps.deleteTimeline(tenant, id);
    } catch (JsonHttpClient.ApiError e) {
      if (e.status() != 404) {
        throw new ControlPlaneException(
            "cannot delete branch '" + name + "' on the pageserver: " + e.getMessage());
      }
      // Gone already: an earlier deletion stopped after the pageserver's part.
    }
    List<Integer> deletedOn = new ArrayList<>();
    for (SafekeeperClient c : clients) {
      try {
        c.deleteTimeline(tenant, id);
        deletedOn.add(c.id());
      } catch (JsonHttpClient.ApiError e) {
        if (e.status() != 404) {
          throw new ControlPlaneException(
              "cannot delete branch '"
                  + name
                  + "' on safekeeper "
                  + c.id()
                  + ": "
                  + e.getMessage()
                  + " (run `zenith branch delete "
                  + name
                  + "` again to finish)");
        }
        // Never there: no primary ever ran on the branch.
      }
    }
    repo.saveBranches(tenant, branches.without(name));
    return new Deleted(
        name, id, deletedOn, onBranch.stream().map(c -> c.spec().name()).sorted().toList());
  }

  /** One line of the branch tree. */
  public record Node(
      String name,
      int depth,
      boolean lastChild,
      List<Boolean> ancestorsLast,
      ApiModel.TimelineInfo info) {}

  /** Every timeline of the tenant, depth-first from the roots, children by branch LSN. */
  public List<Node> tree() {
    List<ApiModel.TimelineInfo> all;
    try {
      all = repo.pageserver().timelines(tenant);
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException("the pageserver: " + e.getMessage());
    }
    Branches names = repo.branches(tenant);
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
