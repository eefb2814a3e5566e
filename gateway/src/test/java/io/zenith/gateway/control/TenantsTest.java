package io.zenith.gateway.control;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.TenantId;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tenants.toml}: names, resolution by name or id, the file's absence, durable round trip.
 */
class TenantsTest {
  @TempDir Path dir;

  private static final TenantId FIRST = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TenantId BETA = TenantId.parse("fedcba9876543210fedcba9876543210");

  @Test
  void aRepositoryWithoutTheFileHasItsFirstTenantNamedDefault() {
    Tenants t = Tenants.load(dir, FIRST);
    assertThat(t.byName()).containsExactly(Map.entry(Tenants.FIRST_TENANT, FIRST));
    assertThat(t.resolve("default")).isEqualTo(new Tenants.Ref("default", FIRST));
  }

  @Test
  void tenantsResolveByNameOrIdAndAnUnknownOneNamesTheOthers() throws Exception {
    new Tenants(Map.of("default", FIRST, "beta", BETA)).write(dir);
    assertThat(Files.readString(dir.resolve(Tenants.FILE_NAME))).contains("\"beta\" = \"" + BETA);
    Tenants t = Tenants.load(dir, FIRST);
    assertThat(t.resolve("beta")).isEqualTo(new Tenants.Ref("beta", BETA));
    assertThat(t.resolve(BETA.toString())).isEqualTo(new Tenants.Ref("beta", BETA));
    assertThatThrownBy(() -> t.resolve("gamma"))
        .isInstanceOf(ControlPlaneException.class)
        .hasMessage("unknown tenant 'gamma' (tenants: beta, default; see `zenith tenant list`)");
    assertThatThrownBy(() -> t.resolve(TenantId.generate().toString()))
        .isInstanceOf(ControlPlaneException.class)
        .hasMessageStartingWith("unknown tenant '");
    assertThat(t.without("beta").byName()).containsOnlyKeys("default");
  }

  @Test
  void namesAreCheckedAndNeverLookLikeAnId() {
    assertThat(Tenants.checkName("analytics-2")).isEqualTo("analytics-2");
    assertThatThrownBy(() -> Tenants.checkName("Beta!"))
        .hasMessage(
            "invalid tenant name 'Beta!': use 1 to 63 lower-case letters, digits, '_' and '-', not"
                + " starting with '-'");
    assertThatThrownBy(() -> Tenants.checkName(BETA.toString()))
        .hasMessage("invalid tenant name '" + BETA + "': it would read as a tenant id");
    assertThatThrownBy(() -> Tenants.checkName("")).isInstanceOf(ControlPlaneException.class);
  }

  @Test
  void aDamagedFileIsOneClearError() throws Exception {
    Files.writeString(dir.resolve(Tenants.FILE_NAME), "beta = \"nothex\"\n");
    assertThatThrownBy(() -> Tenants.load(dir, FIRST))
        .isInstanceOf(ControlPlaneException.class)
        .hasMessageStartingWith("cannot read " + dir.resolve(Tenants.FILE_NAME));
  }
}
