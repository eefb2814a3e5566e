package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import io.zenith.wal.Lsn;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/** The names of the files in a timeline's directory, defined in one place. Static. */
final class TimelineFiles {
  static final String EPHEMERAL = ".ephemeral";
  static final String LAYER = ".layer";

  private TimelineFiles() {}

  /** A layer file's name: its id (so that names sort in creation order), then its LSN range. */
  static String layerFileName(long id, Lsn from, Lsn to) {
    return String.format(Locale.ROOT, "%016x__%016X-%016X" + LAYER, id, from.value(), to.value());
  }

  /** The layer files in a timeline's directory, by name (so in id order). */
  static List<Path> layerFiles(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> p.getFileName().toString().endsWith(LAYER))
          .sorted(Comparator.comparing(p -> p.getFileName().toString()))
          .toList();
    }
  }

  /** Deletes what a crash leaves in a timeline's directory: temporary and ephemeral files. */
  static void deleteLeftovers(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      for (Path f : s.toList()) {
        String n = f.getFileName().toString();
        if (n.endsWith(DurableFiles.TEMP_SUFFIX) || n.endsWith(EPHEMERAL)) {
          Files.delete(f);
        }
      }
    }
  }
}
