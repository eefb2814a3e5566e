package io.zenith.gateway.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.config.RemoteStorageConfig;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The withers change their own keys and nothing else; a written file reads back the same. */
class PageserverConfigTest {
  private static final PageserverConfig BASE =
      PageserverConfig.DEFAULT
          .withRemoteStorage(RemoteStorageConfig.local(Path.of("../remote")))
          .withMaxLocalLayerBytes("4MiB");

  @Test
  void withAuthSetsTheThreeAuthKeysOnly() {
    PageserverConfig c = BASE.withAuth(true, "../key.pem", "token");
    assertThat(c.auth()).isTrue();
    assertThat(c.authPublicKeyPath()).isEqualTo("../key.pem");
    assertThat(c.authTokenPath()).isEqualTo("token");
    assertThat(c.withAuth(false, null, null)).isEqualTo(BASE.withAuth(false, null, null));
    assertThat(c)
        .usingRecursiveComparison()
        .ignoringFields("auth", "authPublicKeyPath", "authTokenPath")
        .isEqualTo(BASE);
  }

  @Test
  void withHistorySetsTheHistoryKeysOnly() {
    PageserverConfig c = BASE.withHistory("64MiB", 3, 2, "1s", "16MiB", "0s", "5s");
    assertThat(c.compactionTargetSize()).isEqualTo("64MiB");
    assertThat(c.compactionThreshold()).isEqualTo(3);
    assertThat(c.imageCreationThreshold()).isEqualTo(2);
    assertThat(c.compactionPeriod()).isEqualTo("1s");
    assertThat(c.gcHorizon()).isEqualTo("16MiB");
    assertThat(c.pitrInterval()).isEqualTo("0s");
    assertThat(c.gcPeriod()).isEqualTo("5s");
    assertThat(c)
        .usingRecursiveComparison()
        .ignoringFields(
            "compactionTargetSize",
            "compactionThreshold",
            "imageCreationThreshold",
            "compactionPeriod",
            "gcHorizon",
            "pitrInterval",
            "gcPeriod")
        .isEqualTo(BASE);
  }

  @Test
  void remoteStorageAndBudgetAreSetAndUnset() {
    assertThat(BASE.remoteStorage()).isEqualTo(RemoteStorageConfig.local(Path.of("../remote")));
    assertThat(BASE.maxLocalLayerBytes()).isEqualTo("4MiB");
    PageserverConfig none = BASE.withRemoteStorage(null).withMaxLocalLayerBytes(null);
    assertThat(none.remoteStorage()).isNull();
    assertThat(none.maxLocalLayerBytes()).isNull();
    assertThat(none).isEqualTo(PageserverConfig.DEFAULT);
  }

  @Test
  void aWrittenConfigurationReadsBackEqual(@TempDir Path dir) throws Exception {
    PageserverConfig c = BASE.withAuth(true, "../key.pem", "token");
    c.write(dir);
    assertThat(PageserverConfig.load(dir)).isEqualTo(c);
  }
}
