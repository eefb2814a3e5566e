package io.zenith.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.gateway.cli.Main;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.gateway.safekeeper.SafekeeperSettings;
import io.zenith.wal.remote.RemoteStorageSettings;
import io.zenith.wal.remote.S3Settings;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code [remote_storage]} in both services' files, {@code zenith init --remote} URLs, and the
 * errors of both: one line naming the problem, nothing opened.
 */
class RemoteStorageConfigTest {
  @TempDir Path dir;

  @Test
  void aLocalPathIsRelativeToTheDataDirectory() throws IOException {
    Files.writeString(
        dir.resolve(PageserverConfig.FILE_NAME),
        """
        [remote_storage]
        local_path = "../remote"
        """);
    PageserverConfig c = PageserverConfig.load(dir);
    assertThat(c.remoteStorage().settings(dir))
        .isEqualTo(new RemoteStorageSettings.Local(dir.getParent().resolve("remote")));
  }

  @Test
  void anS3SectionGivesTheBucketPrefixEndpointRegionAndPathStyle() throws IOException {
    Files.writeString(
        dir.resolve(SafekeeperSettings.FILE_NAME),
        """
        [remote_storage]
        bucket = "zenith-bucket"
        prefix = "prod/wal"
        endpoint = "http://127.0.0.1:9000"
        region = "eu-west-1"
        """);
    SafekeeperSettings s = SafekeeperSettings.load(dir);
    S3Settings expected =
        S3Settings.of(
            "zenith-bucket", "prod/wal", URI.create("http://127.0.0.1:9000"), "eu-west-1", true);
    assertThat(s.remoteStorage().settings(dir)).isEqualTo(expected);

    // without an endpoint: AWS, virtual-hosted style, default region, credentials from the chain
    RemoteStorageConfig aws = new RemoteStorageConfig(null, "b-1", null, null, null, null);
    assertThat(aws.settings(dir))
        .isEqualTo(S3Settings.of("b-1", "", null, S3Settings.DEFAULT_REGION, false));
  }

  @Test
  void writtenConfigurationsKeepTheSectionAndLeaveUnsetKeysOut() throws IOException {
    PageserverConfig.DEFAULT
        .withRemoteStorage(RemoteStorageConfig.fromUrl("s3://bkt/a/b/", null, null))
        .write(dir);
    String text = Files.readString(dir.resolve(PageserverConfig.FILE_NAME));
    assertThat(text)
        .contains("remote_storage.bucket = 'bkt'")
        .contains("remote_storage.prefix = 'a/b'")
        .doesNotContain("endpoint");
    assertThat(PageserverConfig.load(dir).remoteStorage().settings(dir))
        .isEqualTo(S3Settings.of("bkt", "a/b", null, S3Settings.DEFAULT_REGION, false));
    // and none at all: no section
    PageserverConfig.DEFAULT.write(dir);
    assertThat(Files.readString(dir.resolve(PageserverConfig.FILE_NAME)))
        .doesNotContain("remote_storage");
    assertThat(PageserverConfig.load(dir).remoteStorage()).isNull();
  }

  @Test
  void badSectionsAreOneLineErrors() throws IOException {
    assertBad(
        "[remote_storage]\n",
        "remote_storage: set either local_path (a directory) or bucket (S3), not neither");
    assertBad(
        "[remote_storage]\nlocal_path = \"x\"\nbucket = \"bkt\"\n",
        "remote_storage: set either local_path (a directory) or bucket (S3), not both");
    assertBad(
        "[remote_storage]\nlocal_path = \"x\"\nregion = \"r\"\n",
        "remote_storage: prefix, endpoint, region and path_style apply to S3 (bucket) only");
    assertBad(
        "[remote_storage]\nbucket = \"Bad_Bucket\"\n",
        "remote_storage: bucket \"Bad_Bucket\" is not a valid S3 bucket name");
    assertBad(
        "[remote_storage]\nbucket = \"bkt\"\nendpoint = \"ftp://x\"\n",
        "remote_storage: endpoint \"ftp://x\" is not an http:// or https:// URL with a host");
    assertBad(
        "[remote_storage]\nbucket = \"bkt\"\nprefix = \"a/../b\"\n",
        "remote_storage: bad remote key \"a/../b\"");
    assertThatThrownBy(() -> load("[remote_storage]\nbuckt = \"bkt\"\n"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageEndingWith("unknown setting 'buckt'");
  }

  @Test
  void servicesOpenWhatTheSectionNamesWithoutContactingIt() {
    org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(RemoteStorageConfigTest.class);
    assertThat(RemoteStorageConfig.open(null, dir, "test", log)).isNull();
    // S3 with the SDK's default credential chain: nothing is resolved or sent until a call
    RemoteStorageConfig s3 = RemoteStorageConfig.fromUrl("s3://bkt/p", "http://127.0.0.1:9", null);
    try (io.zenith.wal.remote.RemoteStorage storage =
        RemoteStorageConfig.open(s3, dir, "test", log)) {
      assertThat(storage).isInstanceOf(io.zenith.wal.remote.S3RemoteStorage.class);
      assertThat(storage.describe())
          .isEqualTo("S3 bucket bkt prefix p at http://127.0.0.1:9 (region us-east-1, path-style)");
    }
    try (io.zenith.wal.remote.RemoteStorage storage =
        RemoteStorageConfig.open(RemoteStorageConfig.local(Path.of("remote")), dir, "test", log)) {
      assertThat(storage.describe()).isEqualTo("local directory " + dir.resolve("remote"));
      assertThat(dir.resolve("remote")).isDirectory();
    }
  }

  @Test
  void initUrls() {
    assertThat(RemoteStorageConfig.fromUrl("s3://bkt", null, null))
        .isEqualTo(new RemoteStorageConfig(null, "bkt", null, null, null, null));
    assertThat(RemoteStorageConfig.fromUrl("s3://bkt/p/q", "http://127.0.0.1:1", "r1"))
        .isEqualTo(new RemoteStorageConfig(null, "bkt", "p/q", "http://127.0.0.1:1", "r1", null));
    assertThat(RemoteStorageConfig.fromUrl("file:///srv/remote", null, null).localPath())
        .isEqualTo("/srv/remote");
    assertThat(
            RemoteStorageConfig.fromUrl("/srv/remote", null, null)
                .relativeTo(Path.of("/srv/repo/pageserver"))
                .localPath())
        .isEqualTo("../../remote");
    for (String[] bad :
        new String[][] {
          {"s3://", "no bucket"},
          {"s3:///prefix", "no bucket"},
          {"s3://bkt?x=1", "expected s3://BUCKET[/PREFIX]"},
          {"s3://UPPER/p", "is not a valid S3 bucket name"},
          {"gs://bkt", "expected s3://BUCKET[/PREFIX], file:///PATH or a directory"},
        }) {
      assertThatThrownBy(() -> RemoteStorageConfig.fromUrl(bad[0], null, null))
          .as(bad[0])
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining(bad[1])
          .message()
          .doesNotContain("\n");
    }
    assertThatThrownBy(() -> RemoteStorageConfig.fromUrl("/srv/remote", "http://x:1", null))
        .hasMessage("--remote-endpoint and --remote-region apply to s3:// URLs only");
  }

  @Test
  void initRefusesABadRemoteAsUsageBeforeTouchingAnything() {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int exit;
    try (PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8);
        PrintStream o =
            new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8)) {
      exit = Main.run(new String[] {"init", "--remote", "s3://"}, o, e);
    }
    assertThat(exit).isEqualTo(2);
    assertThat(err.toString(StandardCharsets.UTF_8)).contains("--remote s3://: no bucket");
    // refused while parsing: the repository ($ZENITH_REPO_DIR or ./.zenith) is not even located
  }

  private void assertBad(String toml, String message) {
    assertThatThrownBy(() -> load(toml))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith(message);
    assertThatThrownBy(() -> loadSafekeeper(toml))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining(message);
  }

  private PageserverConfig load(String toml) throws IOException {
    Files.writeString(dir.resolve(PageserverConfig.FILE_NAME), toml);
    return PageserverConfig.load(dir);
  }

  private SafekeeperSettings loadSafekeeper(String toml) throws IOException {
    Files.writeString(dir.resolve(SafekeeperSettings.FILE_NAME), toml);
    return SafekeeperSettings.load(dir);
  }
}
