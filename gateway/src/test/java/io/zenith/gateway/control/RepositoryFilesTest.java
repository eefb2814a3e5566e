package io.zenith.gateway.control;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The repository's files: what is written reads back, and mistakes in them are clear errors. */
class RepositoryFilesTest {
  @TempDir Path dir;

  private RepoConfig config() {
    return new RepoConfig(
        TenantId.generate().toString(),
        null,
        55432,
        dir.resolve("computes").toString(),
        new RepoConfig.PageserverAddresses("127.0.0.1:9898", "0.0.0.0:64000"),
        RepoInit.safekeeperAddresses(3, 7676));
  }

  @Test
  void configReadsBackWhatWasWritten() throws IOException {
    RepoConfig c = config();
    c.write(dir);
    assertThat(Files.readString(dir.resolve("config.toml")))
        .contains("# pg_os_user = \"postgres\"")
        .contains("[pageserver]");
    RepoConfig back = RepoConfig.load(dir);
    assertThat(back).isEqualTo(c);
    assertThat(back.pageserverPg().getHostString())
        .as("wildcard reached on loopback")
        .isEqualTo("127.0.0.1");
    assertThat(back.pageserverHttp().getPort()).isEqualTo(9898);
  }

  @Test
  void configMistakesNameTheFileAndTheSetting() throws IOException {
    config().write(dir);
    Path f = dir.resolve("config.toml");
    Files.writeString(f, Files.readString(f).replace("compute_port_base", "compute_port_bse"));
    assertThatThrownBy(() -> RepoConfig.load(dir))
        .isInstanceOf(ControlPlaneException.class)
        .hasMessage(f + ": unknown setting 'compute_port_bse'");
    config().write(dir);
    Files.writeString(f, Files.readString(f).replace("127.0.0.1:9898", "nowhere"));
    assertThatThrownBy(() -> RepoConfig.load(dir))
        .hasMessage(f + ": listen_http = \"nowhere\" is not host:port");
  }

  @Test
  void safekeepersReadBackAndAConfigWithoutThemHasNone() throws IOException {
    config().write(dir);
    RepoConfig back = RepoConfig.load(dir);
    assertThat(back.safekeepers())
        .containsExactly(
            new RepoConfig.SafekeeperAddresses(1, "127.0.0.1:7676", "127.0.0.1:7677"),
            new RepoConfig.SafekeeperAddresses(2, "127.0.0.1:7678", "127.0.0.1:7679"),
            new RepoConfig.SafekeeperAddresses(3, "127.0.0.1:7680", "127.0.0.1:7681"));
    assertThat(back.quorum()).isEqualTo(2);
    assertThat(back.safekeeper(2).orElseThrow().pg().getPort()).isEqualTo(7679);

    // a repository made before safekeepers: no [[safekeepers]] at all
    Path f = dir.resolve("config.toml");
    String text = Files.readString(f);
    Files.writeString(
        f, text.substring(0, text.indexOf("\n# Where the CLI reaches each safekeeper")));
    assertThat(RepoConfig.load(dir).safekeepers()).isEmpty();

    Files.writeString(f, text.replace("id = 3", "id = 2"));
    assertThatThrownBy(() -> RepoConfig.load(dir))
        .isInstanceOf(ControlPlaneException.class)
        .hasMessageContaining(f + ": safekeeper ids must be distinct");
  }

  @Test
  void everySafekeeperDirectoryListsTheOthersAsPeers() throws IOException {
    Path remote = dir.resolve("remote").toAbsolutePath();
    Safekeepers.createDataDirs(
        dir,
        RepoInit.safekeeperAddresses(3, 7676),
        false,
        io.zenith.gateway.config.RemoteStorageConfig.local(remote));
    for (int id = 1; id <= 3; id++) {
      io.zenith.gateway.safekeeper.SafekeeperSettings s =
          io.zenith.gateway.safekeeper.SafekeeperSettings.load(dir.resolve("sk" + id));
      assertThat(s.id()).isEqualTo(id);
      assertThat(s.listenHttp()).isEqualTo("127.0.0.1:" + (7676 + 2 * (id - 1)));
      assertThat(s.listenPg()).isEqualTo("127.0.0.1:" + (7677 + 2 * (id - 1)));
      int self = id;
      assertThat(s.peers())
          .extracting(io.zenith.gateway.safekeeper.SafekeeperSettings.Peer::id)
          .containsExactlyElementsOf(
              java.util.stream.IntStream.rangeClosed(1, 3).filter(i -> i != self).boxed().toList());
      assertThat(s.coreConfig().members()).isEqualTo(3);
      // the repository's remote storage, named relative to the data directory (movable repos)
      assertThat(s.remoteStorage().localPath()).isEqualTo("../remote");
      assertThat(s.remoteStorage().settings(dir.resolve("sk" + id).toAbsolutePath()))
          .isEqualTo(new io.zenith.wal.remote.RemoteStorageSettings.Local(remote));
      // The file names the local pageserver: its feedback alone moves retention (ADR 0007).
      assertThat(s.pageserver())
          .isEqualTo(io.zenith.gateway.safekeeper.SafekeeperSettings.Pageserver.LOCAL);
      assertThat(java.nio.file.Files.readString(dir.resolve("sk" + id).resolve("safekeeper.toml")))
          .contains("application_name")
          .contains("127.0.0.1");
    }
  }

  @Test
  void noRepositoryIsAClearError() {
    assertThatThrownBy(() -> Repository.open(dir.resolve("none")))
        .isInstanceOf(ControlPlaneException.class)
        .hasMessageStartingWith("no Zenith repository at " + dir.resolve("none"))
        .hasMessageContaining("zenith init");
  }

  @Test
  void branchesReadBackAndNamesAreChecked() throws IOException {
    TimelineId main = TimelineId.generate();
    TimelineId b1 = TimelineId.generate();
    new Branches(Map.of("main", main)).with("b-1.x", b1).write(dir);
    Branches back = Branches.load(dir);
    assertThat(back.byName()).containsExactly(Map.entry("b-1.x", b1), Map.entry("main", main));
    assertThat(back.nameOf(b1)).contains("b-1.x");
    assertThatThrownBy(() -> back.get("nope"))
        .hasMessage("unknown branch 'nope' (branches: b-1.x, main)");
    assertThatThrownBy(() -> Branches.checkName("list")).hasMessageContaining("subcommand");
    assertThatThrownBy(() -> Branches.checkName("-x")).hasMessageContaining("invalid branch name");
    assertThatThrownBy(() -> Branches.checkName("a b")).hasMessageContaining("invalid branch name");
    assertThat(Branches.checkName("feature_1.2-x")).isEqualTo("feature_1.2-x");
  }

  @Test
  void computeSpecsReadBack() throws IOException {
    ComputeSpec primary =
        new ComputeSpec(
            "main",
            TenantId.generate().toString(),
            TimelineId.generate().toString(),
            "main",
            null,
            55432);
    ComputeSpec ro =
        new ComputeSpec("ro", primary.tenantId(), primary.timelineId(), "main", "0/16B3748", 55433);
    primary.write(dir.resolve("p.toml"));
    ro.write(dir.resolve("r.toml"));
    assertThat(ComputeSpec.load(dir.resolve("p.toml"))).isEqualTo(primary);
    assertThat(ComputeSpec.load(dir.resolve("r.toml"))).isEqualTo(ro);
    assertThat(ComputeSpec.load(dir.resolve("p.toml")).primary()).isTrue();
    assertThat(ComputeSpec.load(dir.resolve("r.toml")).pinnedLsn()).isPresent();
    assertThatThrownBy(() -> ComputeSpec.checkName("Main")).hasMessageContaining("invalid");
  }

  @Test
  void aDirectoryBehindA0700ParentIsNotTraversableForOthers() throws IOException {
    Path closed = dir.resolve("closed");
    Files.createDirectory(closed);
    Files.setPosixFilePermissions(closed, PosixFilePermissions.fromString("rwx------"));
    Path open = dir.resolve("open");
    Files.createDirectory(open);
    Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxr-xr-x"));
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
    String other = "nobody";
    assertThat(Repository.traversableBy(closed.resolve("a/b"), other)).isFalse();
    // the temp directory's own ancestors decide the rest; /tmp is traversable
    assertThat(Repository.traversableBy(open.resolve("a/b"), other))
        .isEqualTo(Repository.traversableBy(dir, other));
  }
}
