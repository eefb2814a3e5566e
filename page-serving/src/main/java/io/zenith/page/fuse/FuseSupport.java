package io.zenith.page.fuse;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Whether this machine can mount the lazy relation filesystem: {@code /dev/fuse} readable and
 * writable by this process, Debian's {@code libfuse3.so.3} ({@link FuseLibrary}) and {@code
 * fusermount3} installed, and, for a process that is not root, {@code user_allow_other} in {@code
 * /etc/fuse.conf} (the mounts are made with {@code allow_other} so that PostgreSQL's OS user can
 * use them). What {@code zenith pg create} decides a compute's default storage on. Static.
 */
public final class FuseSupport {
  private FuseSupport() {}

  /** Why the lazy filesystem cannot be mounted here, as a clause; empty if it can. */
  public static Optional<String> unusable() {
    return unusable(Path.of("/dev/fuse"), Path.of("/etc/fuse.conf"), isRoot());
  }

  /** {@link #unusable()} for the given device and configuration files (tests). */
  static Optional<String> unusable(Path device, Path fuseConf, boolean root) {
    if (!Files.exists(device)) {
      return Optional.of(device + " does not exist (no FUSE in this kernel or container)");
    }
    if (!Files.isReadable(device) || !Files.isWritable(device)) {
      return Optional.of(device + " is not readable and writable by this user");
    }
    try {
      FuseLibrary.find();
    } catch (IOException e) {
      return Optional.of(e.getMessage());
    }
    if (!onPath("fusermount3")) {
      return Optional.of("fusermount3 is not installed (Debian's fuse3, `make deps`)");
    }
    if (!root && !allowsOther(fuseConf)) {
      return Optional.of(
          fuseConf
              + " does not set user_allow_other, which a mount usable by PostgreSQL's user"
              + " needs when zenith does not run as root");
    }
    return Optional.empty();
  }

  private static boolean isRoot() {
    try {
      return ((Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid")) == 0;
    } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
      return "root".equals(System.getProperty("user.name"));
    }
  }

  private static boolean allowsOther(Path fuseConf) {
    try {
      return Files.readAllLines(fuseConf).stream()
          .map(String::strip)
          .anyMatch(l -> l.equals("user_allow_other"));
    } catch (IOException e) {
      return false;
    }
  }

  private static boolean onPath(String program) {
    String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
    for (String dir : path.split(":")) {
      if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, program))) {
        return true;
      }
    }
    return Files.isExecutable(Path.of("/usr/bin", program))
        || Files.isExecutable(Path.of("/bin", program));
  }
}
