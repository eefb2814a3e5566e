package io.zenith.replication.pgwire;

import java.util.HexFormat;

/** A shared lower-case hex formatter. */
final class HexFormatHolder {
  private HexFormatHolder() {}

  static final HexFormat HEX = HexFormat.of();
}
