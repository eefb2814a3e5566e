package io.zenith.gateway.control;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.safekeeper.SafekeeperApiModel;
import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Tenants of the repository: {@code zenith tenant create} (a tenant on the pageserver with root
 * branch {@code main} from its own initdb), {@link #list} and {@link #delete} (everywhere: its
 * computes, the pageserver, every safekeeper, its names). The repository's first tenant is what
 * commands use without {@code --tenant}; it is never deleted. Blocking; not thread-safe (the caller
 * holds the repository's lock for a change).
 */
public final class TenantOps {
  private final Repository repo;

  public TenantOps(Repository repo) {
    this.repo = repo;
  }

  /** What {@link #create} made. */
  public record Created(String name, TenantId tenant, TimelineId main) {}

  /**
   * Creates a tenant named {@code name} (default: {@code tenant-} and the id's first 8 characters)
   * whose branch {@code main} the pageserver imports from a fresh initdb. The names are written
   * after the pageserver has the tenant: a crash in between leaves an unnamed tenant that {@code
   * tenant list} shows and {@code tenant delete <id>} removes.
   */
  public Created create(Optional<String> name) throws IOException {
    TenantId id = TenantId.generate();
    String n = Tenants.checkName(name.orElse("tenant-" + id.toString().substring(0, 8)));
    Tenants tenants = repo.tenants();
    if (tenants.find(n).isPresent()) {
      throw new ControlPlaneException(
          "tenant '" + n + "' already exists (see `zenith tenant list`)");
    }
    TimelineId main = TimelineId.generate();
    PageserverClient ps = repo.pageserver();
    try {
      int generation = Generations.issue(repo, id);
      ps.createTenant(new ApiModel.TenantCreateRequest(id.toString(), main.toString(), generation));
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException("cannot create tenant '" + n + "': " + e.getMessage());
    }
    repo.saveBranches(id, new Branches(Map.of(Branches.DEFAULT_BRANCH, main)));
    repo.saveTenants(tenants.with(n, id));
    return new Created(n, id, main);
  }

  /** One tenant as {@code tenant list} shows it; {@code name} is null for an unnamed one. */
  public record Listed(
      String name,
      TenantId id,
      boolean first,
      List<String> branches,
      List<String> computes,
      int running) {}

  /**
   * Every named tenant, the first one first and then by name, and the tenants the pageserver has
   * without a name (when it runs: a creation that stopped before its names were written) last.
   */
  public List<Listed> list() {
    Tenants tenants = repo.tenants();
    List<ComputeNode> computes = repo.computes();
    List<Listed> out = new ArrayList<>();
    // The first tenant first, then by name (byName is sorted).
    for (boolean firstOne : new boolean[] {true, false}) {
      for (Map.Entry<String, TenantId> e : tenants.byName().entrySet()) {
        if (e.getValue().equals(repo.config().tenant()) == firstOne) {
          out.add(listed(e.getKey(), e.getValue(), computes));
        }
      }
    }
    if (repo.pageserver().isUp()) {
      try {
        for (ApiModel.TenantInfo i : repo.pageserver().tenants()) {
          TenantId id = TenantId.parse(i.id());
          if (tenants.nameOf(id).isEmpty()) {
            out.add(listed(null, id, computes));
          }
        }
      } catch (JsonHttpClient.ApiError e) {
        throw new ControlPlaneException("the pageserver: " + e.getMessage());
      }
    }
    return out;
  }

  private Listed listed(String name, TenantId id, List<ComputeNode> computes) {
    List<ComputeNode> mine = computes.stream().filter(c -> c.spec().tenant().equals(id)).toList();
    return new Listed(
        name,
        id,
        id.equals(repo.config().tenant()),
        List.copyOf(repo.branches(id).byName().keySet()),
        mine.stream().map(c -> c.spec().name()).toList(),
        (int) mine.stream().filter(ComputeNode::running).count());
  }

  /** What {@link #delete} did. */
  public record Deleted(
      String name,
      TenantId tenant,
      List<String> stoppedComputes,
      List<String> destroyedComputes,
      List<Integer> safekeepers) {}

  /**
   * Deletes the tenant {@code nameOrId} names: refused for the repository's first tenant, and while
   * a compute of it runs unless {@code stopComputes}. Every safekeeper must answer before anything
   * is deleted. Then its computes are stopped and destroyed, the pageserver deletes it (crash-safe:
   * a durable mark first), each safekeeper deletes each of its timelines (keeping tombstones), and
   * last its branch names and its name go. A deletion that stopped midway is finished by running it
   * again: what is gone already is not an error then.
   */
  public Deleted delete(String nameOrId, boolean stopComputes, PrintWriter out, PrintWriter err)
      throws IOException {
    Tenants tenants = repo.tenants();
    Tenants.Ref ref = unnamedOrResolve(tenants, nameOrId);
    if (ref.id().equals(repo.config().tenant())) {
      throw new ControlPlaneException(
          "cannot delete tenant '"
              + ref.name()
              + "': it is the repository's first tenant, which commands use without --tenant");
    }
    List<ComputeNode> mine =
        repo.computes().stream().filter(c -> c.spec().tenant().equals(ref.id())).toList();
    List<String> running =
        mine.stream().filter(ComputeNode::running).map(c -> c.spec().name()).toList();
    if (!running.isEmpty() && !stopComputes) {
      throw new ControlPlaneException(
          "cannot delete tenant '"
              + ref.name()
              + "': "
              + Computes.runOnIt(running)
              + " first, or add --stop-computes");
    }
    List<SafekeeperClient> clients = repo.safekeepers().allAnswering();
    repo.pageserver().status();
    Computes computes = new Computes(repo, out, err);
    List<String> stopped = new ArrayList<>();
    for (ComputeNode c : mine) {
      if (computes.stop(c)) {
        stopped.add(c.spec().name());
      }
      computes.destroy(c);
    }
    try {
      repo.pageserver().deleteTenant(ref.id());
    } catch (JsonHttpClient.ApiError e) {
      if (e.status() != 404) {
        throw new ControlPlaneException(
            "cannot delete tenant '" + ref.name() + "' on the pageserver: " + e.getMessage());
      }
      // Gone already: an earlier deletion stopped after the pageserver's part.
    }
    List<Integer> deletedOn = new ArrayList<>();
    for (SafekeeperClient c : clients) {
      boolean any = false;
      try {
        for (SafekeeperApiModel.TimelineInfo t : c.timelines(ref.id())) {
          try {
            c.deleteTimeline(ref.id(), TimelineId.parse(t.timelineId()));
            any = true;
          } catch (JsonHttpClient.ApiError e) {
            if (e.status() != 404) {
              throw e;
            }
          }
        }
      } catch (JsonHttpClient.ApiError e) {
        throw new ControlPlaneException(
            "cannot delete tenant '"
                + ref.name()
                + "' on safekeeper "
                + c.id()
                + ": "
                + e.getMessage()
                + " (run `zenith tenant delete "
                + nameOrId
                + "` again to finish)");
      }
      if (any) {
        deletedOn.add(c.id());
      }
    }
    Basebackups.deleteTree(repo.branchesDir(ref.id()));
    if (tenants.nameOf(ref.id()).isPresent()) {
      repo.saveTenants(tenants.without(ref.name()));
    }
    return new Deleted(
        ref.name(), ref.id(), stopped, mine.stream().map(c -> c.spec().name()).toList(), deletedOn);
  }

  /** What {@link #attach} did. */
  public record Attached(
      String name, TenantId tenant, ApiModel.TenantDetail detail, List<String> walSources) {}

  /**
   * Attaches a tenant from the pageserver's remote storage (ADR 0027) in the next generation the
   * control plane issues (ADR 0026): one the repository names, or by its id one it does not know
   * (then named {@code name}, default {@code tenant-} and the id's first 8 characters, with its
   * root timeline as branch {@code main}). The timelines of its running computes take their WAL
   * from the safekeepers again at once; the others when a compute starts on them, as after a
   * creation.
   */
  public Attached attach(String nameOrId, Optional<String> name) throws IOException {
    Tenants tenants = repo.tenants();
    Tenants.Ref ref;
    boolean known;
    try {
      ref = tenants.resolve(nameOrId);
      known = true;
    } catch (ControlPlaneException e) {
      if (!nameOrId.matches("[0-9a-f]{32}")) {
        throw e;
      }
      String n = Tenants.checkName(name.orElse("tenant-" + nameOrId.substring(0, 8)));
      if (tenants.find(n).isPresent()) {
        throw new ControlPlaneException(
            "tenant '" + n + "' already exists (see `zenith tenant list`); choose --name");
      }
      ref = new Tenants.Ref(n, TenantId.parse(nameOrId));
      known = false;
    }
    PageserverClient ps = repo.pageserver();
    ApiModel.TenantDetail d;
    try {
      ps.attachTenant(ref.id(), Generations.issue(repo, ref.id()));
      d = ps.tenant(ref.id());
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException(
          "cannot attach tenant '" + ref.name() + "': " + e.getMessage());
    }
    if (!known) {
      List<ApiModel.AttachedTimeline> attached =
          d.attach() == null ? List.of() : d.attach().timelines(); // null: it was here already
      List<ApiModel.AttachedTimeline> roots =
          attached.stream().filter(t -> t.ancestorTimelineId() == null).toList();
      if (roots.size() == 1) {
        repo.saveBranches(
            ref.id(),
            new Branches(
                Map.of(Branches.DEFAULT_BRANCH, TimelineId.parse(roots.getFirst().timelineId()))));
      }
      repo.saveTenants(tenants.with(ref.name(), ref.id()));
    }
    List<String> sources = new ArrayList<>();
    for (ComputeNode c : repo.computes()) {
      if (c.spec().tenant().equals(ref.id()) && c.running()) {
        try {
          ps.setWalSource(
              ref.id(),
              c.spec().timeline(),
              ApiModel.WalSource.fromSafekeepers(repo.safekeepers().endpoints()));
          sources.add(c.spec().name());
        } catch (JsonHttpClient.ApiError e) {
          throw new ControlPlaneException(
              "attached tenant '"
                  + ref.name()
                  + "', but the pageserver did not take the WAL of compute "
                  + c.spec().name()
                  + " from the safekeepers: "
                  + e.getMessage());
        }
      }
    }
    return new Attached(ref.name(), ref.id(), d, sources);
  }

  /** What {@link #detach} did. */
  public record Detached(String name, TenantId tenant, ApiModel.TenantDetached detail) {}

  /**
   * Detaches a tenant from the pageserver: its uploads catch up, then the pageserver removes it
   * locally; remote storage, the safekeepers and the repository keep it (names, branches,
   * computes), so that {@link #attach} brings it back here or on another pageserver.
   */
  public Detached detach(String nameOrId) {
    Tenants.Ref ref = unnamedOrResolve(repo.tenants(), nameOrId);
    try {
      return new Detached(ref.name(), ref.id(), repo.pageserver().detachTenant(ref.id()));
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException(
          "cannot detach tenant '" + ref.name() + "': " + e.getMessage());
    }
  }

  /** A named tenant, or by its id one the pageserver has without a name (a creation cut short). */
  private Tenants.Ref unnamedOrResolve(Tenants tenants, String nameOrId) {
    try {
      return tenants.resolve(nameOrId);
    } catch (ControlPlaneException e) {
      if (nameOrId.matches("[0-9a-f]{32}") && repo.pageserver().isUp()) {
        for (ApiModel.TenantInfo i : repo.pageserver().tenants()) {
          if (i.id().equals(nameOrId)) {
            return new Tenants.Ref(nameOrId, TenantId.parse(nameOrId));
          }
        }
      }
      throw e;
    }
  }
}
