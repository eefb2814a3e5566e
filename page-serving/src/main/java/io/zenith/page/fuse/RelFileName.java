package io.zenith.page.fuse;

import io.zenith.wal.ForkNumber;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A PostgreSQL relation segment file name, {@code <relfilenode>[_fsm|_vm|_init][.<segno>]}, as md.c
 * names them in {@code base/<dboid>/} and {@code global/}: segment {@code n} holds blocks {@code n
 * × 131072} to {@code (n + 1) × 131072 - 1} (1 GiB of 8 KiB blocks). Immutable.
 */
record RelFileName(int relNumber, ForkNumber fork, int segno) {
  /** Blocks per segment file: PostgreSQL's {@code RELSEG_SIZE} (1 GiB / 8 KiB). */
  static final int SEGMENT_BLOCKS = 131072;

  private static final Pattern NAME =
      Pattern.compile("([1-9][0-9]{0,9})(?:_(fsm|vm|init))?(?:\\.([1-9][0-9]{0,5}))?");

  /** The relation file a name means, or null for any other file ({@code PG_VERSION}, …). */
  static RelFileName parse(String name) {
    Matcher m = NAME.matcher(name);
    if (!m.matches()) {
      return null;
    }
    long rel = Long.parseLong(m.group(1));
    if (rel > 0xFFFF_FFFFL) {
      return null;
    }
    ForkNumber fork =
        m.group(2) == null
            ? ForkNumber.MAIN
            : switch (m.group(2)) {
              case "fsm" -> ForkNumber.FSM;
              case "vm" -> ForkNumber.VISIBILITY_MAP;
              default -> ForkNumber.INIT;
            };
    int segno = m.group(3) == null ? 0 : Integer.parseInt(m.group(3));
    return new RelFileName((int) rel, fork, segno);
  }

  /** The file name PostgreSQL gives this segment. */
  String fileName() {
    return Integer.toUnsignedString(relNumber)
        + (fork == ForkNumber.MAIN ? "" : "_" + fork.pgName())
        + (segno == 0 ? "" : "." + segno);
  }

  /** The first block of the fork that this segment holds. */
  long firstBlock() {
    return (long) segno * SEGMENT_BLOCKS;
  }

  /** Blocks of a fork of {@code forkBlocks} blocks that fall into this segment. */
  int blocksIn(long forkBlocks) {
    return (int) Math.max(0, Math.min(SEGMENT_BLOCKS, forkBlocks - firstBlock()));
  }
}
