package io.zenith.page.fuse;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Why FUSE is unusable, as {@code zenith pg create} reports it: a missing device, a device this
 * user cannot open, and a non-root user without {@code user_allow_other}.
 */
class FuseSupportTest {
  @TempDir Path dir;

  @Test
  void aMissingOrClosedDeviceAndAMissingAllowOtherAreReasons() throws IOException {
    Path none = dir.resolve("fuse");
    assertThat(FuseSupport.unusable(none, dir.resolve("fuse.conf"), true))
        .contains(none + " does not exist (no FUSE in this kernel or container)");
    Path device = Files.createFile(dir.resolve("dev"));
    Files.setPosixFilePermissions(device, java.util.Set.of());
    if (!Files.isReadable(device)) { // root reads any file
      assertThat(FuseSupport.unusable(device, dir.resolve("fuse.conf"), false))
          .contains(device + " is not readable and writable by this user");
    }
    Files.setPosixFilePermissions(
        device,
        java.util.Set.of(
            java.nio.file.attribute.PosixFilePermission.OWNER_READ,
            java.nio.file.attribute.PosixFilePermission.OWNER_WRITE));
    // an open device: what remains depends on libfuse3 and fusermount3 being installed
    if (FuseSupport.unusable(device, dir.resolve("fuse.conf"), true).isEmpty()) {
      Path conf = Files.writeString(dir.resolve("fuse.conf"), "# mount_max = 1000\n");
      assertThat(FuseSupport.unusable(device, conf, false).orElseThrow())
          .startsWith(conf + " does not set user_allow_other");
      Files.writeString(conf, "user_allow_other\n");
      assertThat(FuseSupport.unusable(device, conf, false)).isEmpty();
    }
  }
}
