package io.zenith.page.fuse;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The kernel's readahead window of a FUSE mount, raised to the mount's largest read (ADR 0032). The
 * kernel caps a FUSE mount's readahead at its default of 128 KiB whatever the filesystem asks for
 * in {@code init} ({@code max_readahead} is only a further cap), so a sequential scan reaches the
 * agent as 128 KiB reads: one batch GetPage of 16 pages and one round trip through the agent and
 * the pageserver each, the scan's limit on a loaded machine. The window is the mount's backing
 * device's {@code /sys/class/bdi/<major>:<minor>/read_ahead_kb}, writable by root; without that
 * right the mount keeps the kernel's default (one warning). Static.
 */
final class MountReadahead {
  private static final Logger log = LoggerFactory.getLogger(MountReadahead.class);

  private MountReadahead() {}

  /**
   * Raises the readahead of the FUSE mount at {@code mountPoint} to {@code kib} if it is lower.
   *
   * @return the window now in force in KiB, or empty if it could not be read or set (logged)
   */
  static Optional<Integer> raise(Path mountPoint, int kib) {
    Path sysfs = Path.of("/sys/class/bdi");
    try {
      Optional<String> device =
          device(Files.readAllLines(Path.of("/proc/self/mountinfo")), mountPoint);
      if (device.isEmpty()) {
        log.warn("readahead of {} not raised: the mount is not in mountinfo", mountPoint);
        return Optional.empty();
      }
      Path file = sysfs.resolve(device.get()).resolve("read_ahead_kb");
      int now = Integer.parseInt(Files.readString(file, StandardCharsets.US_ASCII).strip());
      if (now >= kib) {
        return Optional.of(now);
      }
      Files.writeString(file, Integer.toString(kib), StandardCharsets.US_ASCII);
      return Optional.of(kib);
    } catch (IOException | RuntimeException e) {
      log.warn(
          "readahead of {} not raised to {} KiB (sequential reads stay 128 KiB each): {}",
          mountPoint,
          kib,
          e.toString());
      return Optional.empty();
    }
  }

  /**
   * The {@code major:minor} of the FUSE mount of ours at {@code mountPoint} in {@code
   * /proc/self/mountinfo}'s lines (fields: id, parent, major:minor, root, mount point, …, "-",
   * type).
   */
  static Optional<String> device(List<String> mountinfo, Path mountPoint) {
    String escaped = LazyMount.mountinfoForm(mountPoint);
    Optional<String> found = Optional.empty();
    for (String line : mountinfo) {
      String[] f = line.split(" ");
      if (f.length > 4
          && f[4].equals(escaped)
          && line.contains(" - fuse." + LazyMount.SUBTYPE + " ")) {
        found = Optional.of(f[2]); // the last one: a mount over an older one hides it
      }
    }
    return found;
  }
}
