package io.zenith.gateway.control;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A compute's storage (ADR 0021): the default is full for now; with lazy as the default, lazy where
 * FUSE works and full otherwise with one warning line saying why; lazy asked for where FUSE does
 * not work is refused with the reason; the kind is kept in node.toml, a node.toml without one (made
 * before lazy storage existed) is full, and an unknown kind is one error line naming the file.
 */
class ComputeStorageTest {
  @TempDir Path dir;

  private final StringWriter warnings = new StringWriter();
  private final PrintWriter err = new PrintWriter(warnings, true);

  @Test
  void fullByDefaultForNow() {
    assertThat(Computes.LAZY_BY_DEFAULT).isFalse();
    assertThat(Computes.storage(Optional.empty(), false, Optional.empty(), err))
        .isEqualTo(ComputeSpec.Storage.FULL);
    assertThat(Computes.storage(Optional.empty(), false, Optional.of("no /dev/fuse"), err))
        .isEqualTo(ComputeSpec.Storage.FULL);
    assertThat(warnings.toString()).isEmpty();
  }

  @Test
  void lazyByDefaultWhereFuseWorksElseFullWithOneWarningLine() {
    assertThat(Computes.storage(Optional.empty(), true, Optional.empty(), err))
        .isEqualTo(ComputeSpec.Storage.LAZY);
    assertThat(warnings.toString()).isEmpty();
    assertThat(
            Computes.storage(Optional.empty(), true, Optional.of("/dev/fuse does not exist"), err))
        .isEqualTo(ComputeSpec.Storage.FULL);
    assertThat(warnings.toString().lines().toList())
        .containsExactly(
            "warning: the compute's storage is full (a full basebackup at every start), not lazy:"
                + " /dev/fuse does not exist");
  }

  @Test
  void whatIsAskedForIsKeptAndLazyWithoutFuseIsRefused() {
    assertThat(Computes.storage(Optional.of(ComputeSpec.Storage.FULL), true, Optional.empty(), err))
        .isEqualTo(ComputeSpec.Storage.FULL);
    assertThat(
            Computes.storage(
                Optional.of(ComputeSpec.Storage.FULL), true, Optional.of("no /dev/fuse"), err))
        .isEqualTo(ComputeSpec.Storage.FULL);
    assertThatThrownBy(
            () ->
                Computes.storage(
                    Optional.of(ComputeSpec.Storage.LAZY), false, Optional.of("no /dev/fuse"), err))
        .isInstanceOf(ControlPlaneException.class)
        .hasMessage("cannot create a lazy compute: no /dev/fuse; use --storage full, or fix FUSE");
    assertThat(warnings.toString()).isEmpty();
  }

  @Test
  void nodeTomlKeepsTheKindAndAnOldOneIsFull() throws IOException {
    ComputeSpec lazy =
        new ComputeSpec(
            "main",
            TenantId.generate().toString(),
            TimelineId.generate().toString(),
            "main",
            null,
            55432,
            null,
            null,
            "lazy");
    Path f = dir.resolve("node.toml");
    lazy.write(f);
    assertThat(Files.readString(f)).contains("storage = \"lazy\"");
    ComputeSpec back = ComputeSpec.load(f);
    assertThat(back).isEqualTo(lazy);
    assertThat(back.lazy()).isTrue();

    String old = Files.readString(f).replaceAll("(?m)^storage = .*\n", "");
    Files.writeString(f, old);
    assertThat(ComputeSpec.load(f).storageKind()).isEqualTo(ComputeSpec.Storage.FULL);

    Files.writeString(f, old + "storage = \"fast\"\n");
    assertThatThrownBy(() -> ComputeSpec.load(f))
        .isInstanceOf(ControlPlaneException.class)
        .hasMessage("cannot read " + f + ": storage must be lazy or full, not 'fast'");
  }
}
