package io.zenith.gateway.control;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.RemoteNames;
import io.zenith.pg.PgDistribution;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageException;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * {@code zenith init --from-remote URL} (ADR 0029): a new repository whose pageserver and
 * safekeepers start from nothing but remote storage. It finds every tenant with a timeline index
 * there, starts the new pageserver, attaches each tenant in the next generation the control plane
 * issues (so a pre-disaster pageserver that came back could no longer write), has the pageserver
 * ingest each timeline's offloaded WAL after its layers ({@code restore_offloaded_wal}), waits
 * until the index that covers it is uploaded, stops the pageserver and names everything from the
 * names objects ({@link RemoteNames}). The safekeepers start empty: the first compute on a branch
 * creates its timeline on them where the pageserver's WAL ends, as after any attach. Any failure
 * removes the repository (a failed init leaves nothing behind). Blocking; the caller holds nothing
 * (init takes the repository's lock).
 */
public final class RepoRestore {
  static final Duration LIST_TIMEOUT = Duration.ofMinutes(5);

  /** Bounds the wait for the uploads of the restored layers' index. */
  static final Duration UPLOAD_TIMEOUT = Duration.ofMinutes(2);

  private static final String INDEX_PREFIX = "index_part-";

  /**
   * One restored branch.
   *
   * @param layersEnd where the attached layers ended (the index's {@code disk_consistent_lsn})
   * @param end where the timeline ends now, after the offloaded WAL
   * @param derivedName whether remote storage had no name for it (named from its id)
   */
  public record Restored(
      String tenant,
      String branch,
      TimelineId timeline,
      Lsn layersEnd,
      Lsn end,
      boolean derivedName) {}

  /** What the restore made. */
  public record Result(Repository repo, List<Restored> branches) {}

  /** A tenant remote storage holds: its indexed timelines and its names object, if any. */
  record Found(TenantId tenant, Set<TimelineId> timelines, Optional<RemoteNames> names) {}

  private final List<Found> found;
  private final List<Restored> restored = new ArrayList<>();

  private RepoRestore(List<Found> found) {
    this.found = found;
  }

  /**
   * Restores into a new repository at {@code dir} from {@code options.remote()}, which becomes its
   * remote storage.
   *
   * @throws ControlPlaneException remote storage unreachable, empty, or holding a damaged object
   *     (nothing was created then), or a step of the restore failed (the repository was removed)
   */
  public static Result run(Path dir, RepoInit.Options options, PrintWriter out) throws IOException {
    if (options.remote() == null) {
      throw new IllegalArgumentException("a restore needs remote storage");
    }
    List<Found> found;
    try (RemoteStorage storage = RemoteStorage.open(options.remote().settings(dir))) {
      out.print("reading " + storage.describe() + " ...");
      out.flush();
      try {
        found = scan(storage);
      } catch (ControlPlaneException e) {
        out.println(" failed");
        throw e;
      }
      int timelines = found.stream().mapToInt(f -> f.timelines().size()).sum();
      out.println(
          " "
              + found.size()
              + (found.size() == 1 ? " tenant, " : " tenants, ")
              + timelines
              + (timelines == 1 ? " timeline" : " timelines"));
    } catch (IllegalArgumentException e) {
      throw new ControlPlaneException(e.getMessage());
    }
    RepoRestore r = new RepoRestore(found);
    Repository repo = RepoInit.run(dir, options, out, r::populate);
    return new Result(repo, List.copyOf(r.restored));
  }

  /** Every tenant with at least one timeline index, the repository's first tenant first. */
  static List<Found> scan(RemoteStorage storage) {
    Map<TenantId, Set<TimelineId>> indexed = new TreeMap<>();
    List<RemoteObject> all;
    try {
      all = storage.list("tenants/").collectList().block(LIST_TIMEOUT);
    } catch (RemoteStorageException | IllegalStateException e) {
      throw new ControlPlaneException("cannot list " + storage.describe() + ": " + e.getMessage());
    }
    for (RemoteObject o : all == null ? List.<RemoteObject>of() : all) {
      // tenants/<t>/timelines/<tl>/index_part-<generation>
      String[] p = o.key().path().split("/");
      if (p.length == 5
          && p[2].equals("timelines")
          && p[4].startsWith(INDEX_PREFIX)
          && p[1].matches("[0-9a-f]{32}")
          && p[3].matches("[0-9a-f]{32}")) {
        indexed
            .computeIfAbsent(TenantId.parse(p[1]), k -> new TreeSet<>())
            .add(TimelineId.parse(p[3]));
      }
    }
    if (indexed.isEmpty()) {
      throw new ControlPlaneException(
          storage.describe()
              + " holds no timeline index (tenants/<tenant>/timelines/<timeline>/index_part-*):"
              + " nothing to restore");
    }
    List<Found> out = new ArrayList<>();
    for (Map.Entry<TenantId, Set<TimelineId>> e : indexed.entrySet()) {
      Optional<RemoteNames> names;
      try {
        names = RemoteNamesStore.read(storage, e.getKey());
      } catch (LayerStoreException | RemoteStorageException | IllegalStateException x) {
        throw new ControlPlaneException(
            "cannot read the names of tenant " + e.getKey() + ": " + x.getMessage());
      }
      Found f = new Found(e.getKey(), e.getValue(), names);
      if (names.map(RemoteNames::first).orElse(false)) {
        out.addFirst(f);
      } else {
        out.add(f);
      }
    }
    return out;
  }

  private TenantId populate(
      Path dir,
      Path psDir,
      PageserverConfig psConfig,
      PgDistribution pg,
      Function<TenantId, RepoConfig> configFor,
      PrintWriter out)
      throws IOException {
    TenantId first = found.getFirst().tenant();
    Repository repo = Repository.of(dir, configFor.apply(first));
    ServiceProcess process = repo.pageserverProcess();
    process.start(out, psConfig.listenHttp(), psConfig.listenPg());
    try {
      Map<TenantId, String> tenantNames = tenantNames(first);
      for (Found f : found) {
        restoreTenant(repo, psDir, psConfig, f, tenantNames.get(f.tenant()), out);
      }
      Map<String, TenantId> byName = new TreeMap<>();
      tenantNames.forEach((id, n) -> byName.put(n, id));
      Map<TenantId, Map<String, TimelineId>> branches = new HashMap<>();
      restored.forEach(
          r ->
              branches
                  .computeIfAbsent(byName.get(r.tenant()), k -> new TreeMap<>())
                  .put(r.branch(), r.timeline()));
      for (Map.Entry<TenantId, Map<String, TimelineId>> e : branches.entrySet()) {
        Path d = e.getKey().equals(first) ? dir : dir.resolve("tenants").resolve("" + e.getKey());
        DurableFiles.createDirectories(d);
        new Branches(e.getValue()).write(d);
      }
      new Tenants(byName).write(dir);
    } finally {
      out.println(process.stop() ? "stopped the pageserver" : "the pageserver was not running");
    }
    return first;
  }

  /** The tenants' names: from remote storage, else derived from the id; unique. */
  private Map<TenantId, String> tenantNames(TenantId first) {
    Map<TenantId, String> out = new HashMap<>();
    Set<String> used = new HashSet<>();
    for (Found f : found) {
      String n = f.names().map(RemoteNames::tenantName).filter(s -> !s.isEmpty()).orElse("");
      if (n.isEmpty() || used.contains(n)) {
        n =
            f.tenant().equals(first) && !used.contains(Tenants.FIRST_TENANT)
                ? Tenants.FIRST_TENANT
                : "tenant-" + f.tenant().toString().substring(0, 8);
      }
      used.add(n);
      out.put(f.tenant(), n);
    }
    return out;
  }

  private void restoreTenant(
      Repository repo,
      Path psDir,
      PageserverConfig psConfig,
      Found f,
      String name,
      PrintWriter out) {
    PageserverClient ps = repo.pageserver();
    int generation = Generations.issue(psDir, psConfig, f.tenant());
    out.print("attaching tenant " + name + " (" + f.tenant() + ") in generation " + generation);
    out.print(" ...");
    out.flush();
    List<ApiModel.TimelineInfo> timelines;
    try {
      ps.attachTenant(f.tenant(), generation);
      timelines = ps.timelines(f.tenant());
    } catch (JsonHttpClient.ApiError e) {
      out.println(" failed");
      throw new ControlPlaneException(
          "cannot attach tenant " + name + " from remote storage: " + e.getMessage());
    }
    out.println(" " + timelines.size() + (timelines.size() == 1 ? " timeline" : " timelines"));
    Map<String, TimelineId> names = f.names().map(RemoteNames::branches).orElse(Map.of());
    Map<TimelineId, String> nameOf = new HashMap<>();
    names.forEach((n, id) -> nameOf.putIfAbsent(id, n));
    Set<String> used = new HashSet<>(names.keySet());
    // Ancestors first: a branch's reads below its branch point go to its ancestor.
    for (ApiModel.TimelineInfo t : ancestorsFirst(timelines)) {
      TimelineId id = TimelineId.parse(t.timelineId());
      boolean derived = !nameOf.containsKey(id);
      String branch = nameOf.get(id);
      if (derived) {
        branch =
            t.ancestorTimelineId() == null && !used.contains(Branches.DEFAULT_BRANCH)
                ? Branches.DEFAULT_BRANCH
                : "restored-" + id.toString().substring(0, 8);
        used.add(branch);
      }
      Lsn layersEnd = Lsn.parse(t.lastRecordLsn());
      out.print("  branch " + branch + ": layers up to " + layersEnd + ", offloaded WAL ...");
      out.flush();
      ApiModel.TimelineInfo after;
      try {
        after = ps.restoreOffloadedWal(f.tenant(), id);
      } catch (JsonHttpClient.ApiError e) {
        out.println(" failed");
        throw new ControlPlaneException(
            "cannot restore branch " + branch + " of tenant " + name + ": " + e.getMessage());
      }
      Lsn end = Lsn.parse(after.lastRecordLsn());
      out.println(" up to " + end);
      awaitUploaded(ps, f.tenant(), id, end, branch);
      if (derived) {
        out.println(
            "  note: remote storage has no name for timeline "
                + id
                + " of tenant "
                + name
                + ": named "
                + branch);
      }
      restored.add(new Restored(name, branch, id, layersEnd, end, derived));
    }
  }

  /**
   * Waits until the index uploaded for the timeline covers {@code end}: the new safekeepers start
   * the timeline at {@code end} and will upload the segment holding it again with their own bytes
   * (nothing before {@code end}), so the restored layers must not need that segment any more.
   */
  private static void awaitUploaded(
      PageserverClient ps, TenantId tenant, TimelineId id, Lsn end, String branch) {
    long deadline = System.nanoTime() + UPLOAD_TIMEOUT.toNanos();
    while (true) {
      ApiModel.TimelineInfo t = ps.timeline(tenant, id);
      if (t.remoteConsistentLsn() != null && !Lsn.parse(t.remoteConsistentLsn()).isBefore(end)) {
        return;
      }
      if (System.nanoTime() > deadline) {
        throw new ControlPlaneException(
            "the pageserver did not upload the restored layers of branch "
                + branch
                + " up to "
                + end
                + " within "
                + UPLOAD_TIMEOUT.toSeconds()
                + " s (remote-consistent at "
                + t.remoteConsistentLsn()
                + (t.remoteUpload() != null && t.remoteUpload().failure() != null
                    ? ": " + t.remoteUpload().failure()
                    : "")
                + ")");
      }
      try {
        Thread.sleep(200);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ControlPlaneException("interrupted while waiting for the uploads");
      }
    }
  }

  /** The timelines with each one after its ancestor. */
  static List<ApiModel.TimelineInfo> ancestorsFirst(List<ApiModel.TimelineInfo> all) {
    List<ApiModel.TimelineInfo> out = new ArrayList<>();
    Set<String> placed = new HashSet<>();
    Set<String> ids = new HashSet<>();
    all.forEach(t -> ids.add(t.timelineId()));
    List<ApiModel.TimelineInfo> left = new ArrayList<>(all);
    while (!left.isEmpty()) {
      int before = left.size();
      for (var it = left.iterator(); it.hasNext(); ) {
        ApiModel.TimelineInfo t = it.next();
        String a = t.ancestorTimelineId();
        if (a == null || !ids.contains(a) || placed.contains(a)) {
          out.add(t);
          placed.add(t.timelineId());
          it.remove();
        }
      }
      if (left.size() == before) {
        out.addAll(left); // a cycle cannot happen; never loop for ever
        break;
      }
    }
    return out;
  }
}
