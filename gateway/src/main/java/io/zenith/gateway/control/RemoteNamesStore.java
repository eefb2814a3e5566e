package io.zenith.gateway.control;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.layer.RemoteNames;
import io.zenith.wal.TenantId;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageException;
import java.time.Duration;
import java.util.Collection;
import java.util.Optional;

/**
 * Keeps the repository's names in the pageserver's remote storage ({@link RemoteNames}, ADR 0029):
 * after the local file is written, each changed tenant's object is put again whole, and a deleted
 * tenant's object is deleted. Remote storage that cannot be reached does not fail the command (the
 * local change is made and the services have it): it prints a warning, and the next change of that
 * tenant's names writes the whole object again. Blocking; not thread-safe.
 */
final class RemoteNamesStore {
  static final Duration TIMEOUT = Duration.ofSeconds(30);

  private RemoteNamesStore() {}

  /** Writes the names objects of {@code changed} and deletes those of {@code removed}. */
  static void publish(Repository repo, Collection<TenantId> changed, Collection<TenantId> removed) {
    RemoteStorageConfig config = repo.pageserverConfig().remoteStorage();
    if (config == null || (changed.isEmpty() && removed.isEmpty())) {
      return;
    }
    Tenants tenants = repo.tenants();
    try (RemoteStorage storage = RemoteStorage.open(config.settings(repo.pageserverDir()))) {
      for (TenantId t : changed) {
        RemoteNames names =
            new RemoteNames(
                tenants.nameOf(t).orElse(""),
                t.equals(repo.config().tenant()),
                repo.branches(t).byName());
        storage.put(RemoteNames.key(t), names.toBytes()).block(TIMEOUT);
      }
      for (TenantId t : removed) {
        storage.delete(RemoteNames.key(t)).block(TIMEOUT);
      }
    } catch (RemoteStorageException | IllegalStateException e) {
      // IllegalStateException: a call that outlived the timeout
      System.err.println(
          "warning: the names were saved in the repository but not in remote storage ("
              + e.getMessage()
              + "); a restore from remote storage would name these branches by their ids until"
              + " the next change of them");
    }
  }

  /** A tenant's names object, if it has one. */
  static Optional<RemoteNames> read(RemoteStorage storage, TenantId tenant) {
    byte[] bytes;
    try {
      bytes = storage.get(RemoteNames.key(tenant)).block(TIMEOUT);
    } catch (RemoteStorageException e) {
      if (e.kind() == RemoteStorageException.Kind.NOT_FOUND) {
        return Optional.empty();
      }
      throw e;
    }
    return Optional.of(RemoteNames.fromBytes(bytes, RemoteNames.key(tenant).toString()));
  }
}
