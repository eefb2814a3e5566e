package io.zenith.gateway.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.replication.safekeeper.PageserverSource;
import io.zenith.wal.log.ControlFile.LagLimits;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafekeeperSettingsTest {
  @TempDir Path dir;

  private SafekeeperSettings load(String toml) throws IOException {
    Files.writeString(dir.resolve(SafekeeperSettings.FILE_NAME), toml);
    return SafekeeperSettings.load(dir);
  }

  @Test
  void noFileMeansOneSafekeeperWithTheDocumentedDefaults() {
    SafekeeperSettings s = SafekeeperSettings.load(dir);
    assertThat(s.id()).isEqualTo(1);
    assertThat(s.peers()).isEmpty();
    assertThat(s.coreConfig().members()).isEqualTo(1);
    assertThat(s.coreConfig().quorum()).isEqualTo(1);
    assertThat(s.lagLimits()).isEqualTo(new LagLimits(15L << 20, 10L << 30, 0));
    assertThat(s.httpAddress().getPort()).isEqualTo(7676);
    assertThat(s.pgAddress().getPort()).isEqualTo(5454);
    assertThat(s.coreConfig().pageserver()).isEqualTo(PageserverSource.LOCAL);
  }

  @Test
  void aFullFileWithPeers() throws IOException {
    SafekeeperSettings s =
        load(
            """
            id = 2
            listen_http = "127.0.0.1:7677"
            listen_pg = "127.0.0.1:5455"
            max_replication_write_lag = "1MiB"
            max_replication_flush_lag = "0"
            max_replication_apply_lag = "4096"

            [pageserver]
            application_name = "ps-main"
            addresses = ["10.0.0.7", "fd00::7"]

            [[peers]]
            id = 1
            http = "127.0.0.1:7676"
            pg = "127.0.0.1:5454"

            [[peers]]
            id = 3
            http = "127.0.0.1:7678"
            pg = "127.0.0.1:5456"
            """);
    assertThat(s.id()).isEqualTo(2);
    assertThat(s.lagLimits()).isEqualTo(new LagLimits(1 << 20, 0, 4096));
    assertThat(s.coreConfig().members()).isEqualTo(3);
    assertThat(s.coreConfig().quorum()).isEqualTo(2);
    assertThat(s.coreConfig().name()).isEqualTo("sk_2");
    assertThat(s.peer(3).pgAddress().getPort()).isEqualTo(5456);
    assertThat(s.peer(2)).isNull();
    assertThat(s.coreConfig().pageserver())
        .isEqualTo(
            new PageserverSource(
                "ps-main",
                List.of(InetAddress.ofLiteral("10.0.0.7"), InetAddress.ofLiteral("fd00::7"))));
    // What the control plane writes reads back the same.
    Path other = dir.resolve("copy");
    Files.createDirectories(other);
    s.write(other);
    assertThat(SafekeeperSettings.load(other)).isEqualTo(s);
  }

  @Test
  void mistakesAreOneLineNamingTheSetting() {
    assertThatThrownBy(() -> load("id = 1\nlisten_htp = \"127.0.0.1:1\"\n"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageEndingWith("safekeeper.toml: unknown setting 'listen_htp'");
    assertThatThrownBy(() -> load("max_replication_write_lag = \"lots\"\n"))
        .hasMessageEndingWith(
            "safekeeper.toml: max_replication_write_lag = \"lots\" is not a size (e.g. 256MiB)");
    assertThatThrownBy(() -> load("listen_pg = \"nowhere\"\n"))
        .hasMessageEndingWith("safekeeper.toml: listen_pg = \"nowhere\" is not host:port");
    assertThatThrownBy(() -> load("id = 0\n")).hasMessageEndingWith("id must be at least 1, got 0");
    assertThatThrownBy(
            () -> load("id = 1\n[[peers]]\nid = 1\nhttp = \"127.0.0.1:1\"\npg = \"127.0.0.1:2\"\n"))
        .hasMessageEndingWith("safekeeper id 1 is used twice (this safekeeper's id is 1)");
    assertThatThrownBy(() -> load("[[peers]]\nid = 2\nhttp = \"127.0.0.1:1\"\n"))
        .hasMessageEndingWith("every [[peers]] entry needs id, http and pg");
    assertThatThrownBy(
            () -> load("[pageserver]\napplication_name = \"ps\"\naddresses = [\"ps.local\"]\n"))
        .hasMessageEndingWith(
            "safekeeper.toml: pageserver.addresses: \"ps.local\" is not an IP address");
    assertThatThrownBy(() -> load("[pageserver]\napplication_name = \"ps\"\naddresses = []\n"))
        .hasMessageEndingWith("pageserver.addresses must name at least one IP address");
    assertThatThrownBy(() -> load("[pageserver]\naddresses = [\"127.0.0.1\"]\n"))
        .hasMessageEndingWith("pageserver.application_name must not be empty");
    assertThatThrownBy(() -> load("[pageserver]\nname = \"ps\"\n"))
        .hasMessageContaining("unknown setting");
  }

  @Test
  void theWithersChangeTheirOwnKeysOnly() {
    SafekeeperSettings base =
        SafekeeperSettings.DEFAULT.withRemoteStorage(
            io.zenith.gateway.config.RemoteStorageConfig.local(dir.resolve("remote")));
    SafekeeperSettings moved = base.withListen("127.0.0.1:8001", "127.0.0.1:8002");
    assertThat(moved.httpAddress().getPort()).isEqualTo(8001);
    assertThat(moved.pgAddress().getPort()).isEqualTo(8002);
    assertThat(moved.withListen(base.listenHttp(), base.listenPg())).isEqualTo(base);

    SafekeeperSettings.Pageserver ps =
        new SafekeeperSettings.Pageserver("ps-2", List.of("10.0.0.9"));
    assertThat(base.withPageserver(ps).pageserver()).isEqualTo(ps);
    assertThat(base.withPageserver(ps).withPageserver(base.pageserver())).isEqualTo(base);

    SafekeeperSettings authed = base.withAuth(true, "../key.pem", "token");
    assertThat(authed.auth()).isTrue();
    assertThat(authed.authPublicKeyPath()).isEqualTo("../key.pem");
    assertThat(authed.authTokenPath()).isEqualTo("token");
    assertThat(authed.remoteStorage()).isEqualTo(base.remoteStorage());
    assertThat(base.withRemoteStorage(null)).isEqualTo(SafekeeperSettings.DEFAULT);
  }
}
