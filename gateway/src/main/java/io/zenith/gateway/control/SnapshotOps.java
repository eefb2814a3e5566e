package io.zenith.gateway.control;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.layer.LayerStoreException;
import io.zenith.layer.SnapshotManifest;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteObject;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageException;
import io.zenith.wal.remote.RemoteStorageSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

/**
 * Snapshots to share (ADR 0028), the control plane's part: {@code zenith snapshot push} asks the
 * pageserver to write a branch's content at one LSN to a directory or an S3 prefix; {@code pull}
 * asks it to import a snapshot as a new root timeline and names it as a branch; {@code list} reads
 * the manifests under a location itself (they are small). Blocking; not thread-safe.
 */
public final class SnapshotOps {
  private static final Duration LIST_TIMEOUT = Duration.ofMinutes(2);

  private final Repository repo;
  private final TenantId tenant;

  public SnapshotOps(Repository repo, TenantId tenant) {
    this.repo = repo;
    this.tenant = tenant;
  }

  /**
   * The storage {@code url} names: {@code s3://BUCKET[/PREFIX]} (with {@code endpoint} and {@code
   * region}), {@code file:///PATH} or a directory.
   *
   * @throws ControlPlaneException naming what is wrong with it
   */
  public static RemoteStorageConfig location(
      String url, @Nullable String endpoint, @Nullable String region) {
    try {
      return RemoteStorageConfig.fromUrl(url, endpoint, region, "", "--endpoint and --region");
    } catch (IllegalArgumentException e) {
      throw new ControlPlaneException("bad snapshot location " + e.getMessage());
    }
  }

  private static ApiModel.SnapshotLocation api(RemoteStorageConfig c) {
    return new ApiModel.SnapshotLocation(
        c.localPath(), c.bucket(), c.prefix(), c.endpoint(), c.region());
  }

  /** What a push wrote. */
  public record Pushed(String branch, Lsn lsn, int files, long bytes) {}

  /** Pushes a snapshot of {@code branch} at {@code at} (default: its latest LSN) to {@code to}. */
  public Pushed push(String branch, Optional<Lsn> at, String url, RemoteStorageConfig to) {
    TimelineId id = repo.branches(tenant).get(branch);
    PageserverClient ps = repo.pageserver();
    if (at.isPresent()) {
      ps.checkLsnOnTimeline(tenant, branch, id, at.get(), "take a snapshot of");
    }
    try {
      ApiModel.SnapshotPushed p =
          ps.pushSnapshot(
              tenant,
              id,
              new ApiModel.SnapshotPushRequest(
                  at.map(Lsn::toString).orElse(null), branch, api(to)));
      return new Pushed(branch, Lsn.parse(p.lsn()), p.files(), p.bytes());
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException(
          "cannot push a snapshot of " + branch + " to " + url + ": " + e.getMessage());
    }
  }

  /** What a pull made. */
  public record Pulled(String branch, TimelineId timeline, Lsn lsn) {}

  /**
   * Imports the snapshot at {@code from} as the new branch {@code name} (a root timeline): refused
   * for a name in use; on any failure nothing is left (the pageserver undoes its part).
   */
  public Pulled pull(String url, RemoteStorageConfig from, String name) throws IOException {
    Branches.checkName(name);
    Branches branches = repo.branches(tenant);
    if (branches.find(name).isPresent()) {
      throw new ControlPlaneException(
          "branch '" + name + "' already exists (see `zenith branch list`)");
    }
    TimelineId id = TimelineId.generate();
    PageserverClient ps = repo.pageserver();
    ApiModel.TimelineInfo info;
    try {
      info = ps.pullSnapshot(tenant, new ApiModel.SnapshotPullRequest(id.toString(), api(from)));
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException("cannot pull the snapshot at " + url + ": " + e.getMessage());
    }
    try {
      repo.saveBranches(tenant, branches.with(name, id));
    } catch (IOException | RuntimeException e) {
      try {
        ps.deleteTimeline(tenant, id);
      } catch (RuntimeException d) {
        e.addSuppressed(d);
      }
      throw e;
    }
    return new Pulled(name, id, Lsn.parse(info.lastRecordLsn()));
  }

  /**
   * A snapshot found by {@link #list}: where under the location ("" for the location itself), and
   * its manifest, or why it cannot be read.
   */
  public record Listed(
      String path, @Nullable SnapshotManifest manifest, @Nullable String problem) {}

  /**
   * Every snapshot under {@code url}: each object named {@code manifest} (at any depth), in key
   * order. Read by the CLI itself, with the credentials of its environment.
   */
  public static List<Listed> list(String url, RemoteStorageConfig at) {
    RemoteStorageSettings settings = at.settings(Path.of("/"));
    if (settings instanceof RemoteStorageSettings.Local l && !Files.isDirectory(l.root())) {
      throw new ControlPlaneException("no snapshots at " + url + ": no such directory");
    }
    List<Listed> out = new ArrayList<>();
    try (RemoteStorage rs = RemoteStorage.open(settings)) {
      List<RemoteObject> objects = rs.list("").collectList().block(LIST_TIMEOUT);
      for (RemoteObject o : objects == null ? List.<RemoteObject>of() : objects) {
        RemoteKey key = o.key();
        if (!key.name().equals(SnapshotManifest.OBJECT_NAME)) {
          continue;
        }
        String path =
            key.path().equals(SnapshotManifest.OBJECT_NAME)
                ? ""
                : key.path().substring(0, key.path().length() - key.name().length() - 1);
        try {
          byte[] bytes = rs.get(key).block(LIST_TIMEOUT);
          out.add(new Listed(path, SnapshotManifest.fromBytes(bytes, key.path()), null));
        } catch (LayerStoreException | RemoteStorageException e) {
          out.add(new Listed(path, null, e.getMessage()));
        }
      }
    } catch (RemoteStorageException e) {
      throw new ControlPlaneException(
          "cannot list the snapshots at " + url + ": " + e.getMessage());
    }
    return out;
  }
}
