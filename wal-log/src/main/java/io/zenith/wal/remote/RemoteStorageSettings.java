package io.zenith.wal.remote;

import java.nio.file.Path;

/**
 * Which remote storage a service uses, as its {@code [remote_storage]} section says: a local
 * directory or an S3 bucket ({@link S3Settings}). {@link RemoteStorage#open} makes the backend.
 * Immutable.
 */
public sealed interface RemoteStorageSettings permits RemoteStorageSettings.Local, S3Settings {

  /** One line for logs, without credentials. */
  String describe();

  /** A directory on this machine (the default of {@code zenith init}: {@code .zenith/remote}). */
  record Local(Path root) implements RemoteStorageSettings {
    public Local {
      root = root.toAbsolutePath().normalize();
    }

    @Override
    public String describe() {
      return "local directory " + root;
    }
  }
}
