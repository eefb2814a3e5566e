package io.zenith.page.fuse;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Finds Debian's {@code libfuse3.so.3}: it lives in the multiarch directory ({@code
 * /usr/lib/x86_64-linux-gnu}), which is not on {@code java.library.path}, so jfuse must be told its
 * path. Static.
 */
final class FuseLibrary {
  private FuseLibrary() {}

  static final String NAME = "libfuse3.so.3";

  /** The library's path; IOException naming the fix if it is not installed. */
  static Path find() throws IOException {
    List<Path> candidates = new ArrayList<>();
    String triplet =
        switch (System.getProperty("os.arch")) {
          case "amd64", "x86_64" -> "x86_64-linux-gnu";
          case "aarch64", "arm64" -> "aarch64-linux-gnu";
          default -> null;
        };
    if (triplet != null) {
      candidates.add(Path.of("/usr/lib", triplet, NAME));
      candidates.add(Path.of("/lib", triplet, NAME));
    }
    candidates.add(Path.of("/usr/lib64", NAME));
    candidates.add(Path.of("/usr/lib", NAME));
    for (Path p : candidates) {
      if (Files.isReadable(p)) {
        return p;
      }
    }
    // Another multiarch directory (an architecture the table above does not name).
    try (Stream<Path> dirs = Files.list(Path.of("/usr/lib"))) {
      for (Path d : dirs.filter(d -> d.getFileName().toString().endsWith("-linux-gnu")).toList()) {
        if (Files.isReadable(d.resolve(NAME))) {
          return d.resolve(NAME);
        }
      }
    } catch (IOException e) {
      // no /usr/lib to look in: reported below
    }
    throw new IOException(
        NAME
            + " not found (looked in "
            + candidates
            + "): install Debian's fuse3 and libfuse3-3 (`make deps`)");
  }
}
