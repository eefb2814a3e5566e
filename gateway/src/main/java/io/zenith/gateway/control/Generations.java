package io.zenith.gateway.control;

import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.layer.RemoteGenerations;
import io.zenith.layer.RemoteIndex;
import io.zenith.wal.TenantId;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageException;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The control plane's part of generations (ADR 0026): before it creates or attaches a tenant on the
 * pageserver it issues the tenant's next generation, recorded in the pageserver's remote storage
 * ({@link RemoteGenerations}) where every pageserver that holds the tenant's objects checks it. A
 * repository whose pageserver has no remote storage has nothing to protect: every tenant keeps
 * {@link RemoteIndex#DEFAULT_GENERATION}. Blocking; one control plane per repository.
 */
public final class Generations {
  static final Duration TIMEOUT = Duration.ofSeconds(60);

  private Generations() {}

  /**
   * Issues {@code tenant}'s next generation in the remote storage of the pageserver configured in
   * {@code pageserverDir}.
   *
   * @throws ControlPlaneException if the remote storage cannot be reached (nothing was issued, or a
   *     record that no pageserver has: the next one is higher, which is harmless)
   */
  public static int issue(Path pageserverDir, PageserverConfig config, TenantId tenant) {
    if (config.remoteStorage() == null) {
      return RemoteIndex.DEFAULT_GENERATION;
    }
    try (RemoteStorage storage =
        RemoteStorage.open(config.remoteStorage().settings(pageserverDir))) {
      return RemoteGenerations.issue(storage, tenant, TIMEOUT);
    } catch (RemoteStorageException | IllegalStateException e) {
      // IllegalStateException: a call that outlived the timeout
      throw new ControlPlaneException(
          "cannot issue a generation for tenant "
              + tenant
              + " in remote storage: "
              + e.getMessage());
    }
  }

  /** {@link #issue} for the repository's pageserver. */
  public static int issue(Repository repo, TenantId tenant) {
    return issue(repo.pageserverDir(), repo.pageserverConfig(), tenant);
  }
}
