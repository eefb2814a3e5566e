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
