package io.zenith.layer;

import io.zenith.wal.Lsn;
import java.util.Locale;

/** The names of the files in a timeline's directory, defined in one place. Static. */
final class TimelineFiles {
  static final String EPHEMERAL = ".ephemeral";
  static final String LAYER = ".layer";

  private TimelineFiles() {}

  /** A layer file's name: its id (so that names sort in creation order), then its LSN range. */
  static String layerFileName(long id, Lsn from, Lsn to) {
    return String.format(Locale.ROOT, "%016x__%016X-%016X" + LAYER, id, from.value(), to.value());
  }
}
