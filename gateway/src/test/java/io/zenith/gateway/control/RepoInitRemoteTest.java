package io.zenith.gateway.control;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.gateway.safekeeper.SafekeeperSettings;
import io.zenith.wal.remote.S3Settings;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * {@code zenith init --remote s3://…} (in this JVM: one real initdb and import): the S3 settings go
 * into the pageserver's and every safekeeper's file, and no local remote directory is made.
 */
class RepoInitRemoteTest {
  private Path root;

  @AfterEach
  void delete() throws IOException {
    if (root != null) {
      Basebackups.deleteTree(root);
    }
  }

  @Test
  void anS3RemoteIsWrittenIntoEveryServicesFile() throws IOException {
    // traversable by PostgreSQL's user, so that computes stay inside the repository
    root = Files.createTempDirectory("zenith-init-remote-");
    Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxr-xr-x"));
    Path repo = root.resolve(".zenith");
    RemoteStorageConfig remote =
        RemoteStorageConfig.fromUrl("s3://zenith-bucket/repos/a", "http://127.0.0.1:33999", null);
    RepoInit.run(
        repo,
        new RepoInit.Options(
            "127.0.0.1:33001", "127.0.0.1:33002", 33100, null, 2, 33010, false, remote),
        new PrintWriter(new StringWriter()));

    S3Settings expected =
        S3Settings.of(
            "zenith-bucket",
            "repos/a",
            URI.create("http://127.0.0.1:33999"),
            S3Settings.DEFAULT_REGION,
            true);
    Path ps = repo.resolve("pageserver");
    assertThat(PageserverConfig.load(ps).remoteStorage().settings(ps)).isEqualTo(expected);
    for (int id = 1; id <= 2; id++) {
      Path sk = repo.resolve("safekeepers/sk" + id);
      assertThat(SafekeeperSettings.load(sk).remoteStorage().settings(sk)).isEqualTo(expected);
    }
    assertThat(repo.resolve(RepoInit.REMOTE_DIR)).doesNotExist();
  }
}
