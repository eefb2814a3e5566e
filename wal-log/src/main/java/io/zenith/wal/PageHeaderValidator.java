package io.zenith.wal;

import java.util.function.Supplier;

/**
 * Checks the WAL page headers of one stream the way PostgreSQL 15's {@code
 * XLogReaderValidatePageHeader} does: magic, flags, the long header of a segment's first page
 * (segment size, page size, system identifier), the page address, and that timelines never go back.
 * The segment size and system identifier are learned from the first long header when not given.
 *
 * <p>Not thread-safe: part of one {@link WalRecordAssembler}.
 */
final class PageHeaderValidator {
  private int segmentSize;
  private long systemId;
  private int lastTimeline;

  /** {@code segmentSize} and {@code systemId} as expected, or 0 to learn them. */
  PageHeaderValidator(int segmentSize, long systemId) {
    this.segmentSize = segmentSize;
    this.systemId = systemId;
  }

  /** The segment size in use; 0 until learned. */
  int segmentSize() {
    return segmentSize;
  }

  /** The system identifier seen in long page headers; 0 until one was seen. */
  long systemId() {
    return systemId;
  }

  /**
   * Checks the header of the (written, not all-zero) page at {@code page}.
   *
   * @throws WalFormatException naming the page and what is wrong
   */
  void check(PageHeader h, Lsn page) {
    if (h.magic() != WalFormat.XLOG_PAGE_MAGIC) {
      throw error(
          WalFormatException.Kind.BAD_PAGE_MAGIC,
          page,
          String.format(
              "invalid magic number %04X in WAL page at %s (PostgreSQL 15 writes %04X)",
              h.magic(), page, WalFormat.XLOG_PAGE_MAGIC));
    }
    if ((h.info() & ~WalFormat.XLP_ALL_FLAGS) != 0) {
      throw error(
          WalFormatException.Kind.BAD_PAGE_HEADER,
          page,
          String.format("invalid info bits %04X in WAL page at %s", h.info(), page));
    }
    if (h.isLong()) {
      checkLong(h, page);
    }
    if (segmentSize == 0) {
      throw error(
          WalFormatException.Kind.BAD_PAGE_HEADER,
          page,
          "WAL page at " + page + " has no long header, so the segment size is unknown");
    }
    boolean segmentStart = (page.value() & (segmentSize - 1)) == 0;
    if (segmentStart != h.isLong()) {
      throw error(
          WalFormatException.Kind.BAD_PAGE_HEADER,
          page,
          segmentStart
              ? "WAL page at " + page + " starts a segment but has a short header"
              : "WAL page at " + page + " has a long header but does not start a segment");
    }
    if (h.pageAddress().value() != page.value()) {
      throw error(
          WalFormatException.Kind.PAGE_ADDRESS_MISMATCH,
          page,
          "unexpected page address " + h.pageAddress() + " in WAL page at " + page);
    }
    if (Integer.compareUnsigned(h.timeline(), lastTimeline) < 0) {
      throw error(
          WalFormatException.Kind.TIMELINE_REGRESSION,
          page,
          "out-of-sequence timeline "
              + Integer.toUnsignedString(h.timeline())
              + " (after "
              + Integer.toUnsignedString(lastTimeline)
              + ") in WAL page at "
              + page);
    }
    lastTimeline = h.timeline();
  }

  private void checkLong(PageHeader h, Lsn page) {
    if (!WalFormat.isValidSegmentSize(Integer.toUnsignedLong(h.segmentSize()))) {
      throw error(
          WalFormatException.Kind.BAD_SEGMENT_SIZE,
          page,
          "invalid WAL segment size "
              + Integer.toUnsignedString(h.segmentSize())
              + " in the header of the segment at "
              + page
              + " (must be a power of two between 1 MiB and 1 GiB)");
    }
    segmentSize =
        (int)
            learnOrMatch(
                segmentSize,
                h.segmentSize(),
                WalFormatException.Kind.BAD_SEGMENT_SIZE,
                page,
                () ->
                    "WAL segment size "
                        + h.segmentSize()
                        + " in the header of the segment at "
                        + page
                        + " differs from the expected "
                        + segmentSize);
    if (h.blockSize() != WalFormat.XLOG_BLCKSZ) {
      throw error(
          WalFormatException.Kind.BAD_BLOCK_SIZE,
          page,
          "WAL page size "
              + Integer.toUnsignedString(h.blockSize())
              + " in the header of the segment at "
              + page
              + " is not "
              + WalFormat.XLOG_BLCKSZ);
    }
    systemId =
        learnOrMatch(
            systemId,
            h.systemId(),
            WalFormatException.Kind.SYSTEM_ID_MISMATCH,
            page,
            () ->
                "WAL segment at "
                    + page
                    + " belongs to database system "
                    + Long.toUnsignedString(h.systemId())
                    + ", expected "
                    + Long.toUnsignedString(systemId));
  }

  /**
   * A value the stream must keep: {@code seen} when nothing was expected yet (0), else {@code
   * expected}, which {@code seen} must equal.
   */
  private static long learnOrMatch(
      long expected, long seen, WalFormatException.Kind kind, Lsn page, Supplier<String> message) {
    if (expected == 0) {
      return seen;
    }
    if (expected != seen) {
      throw error(kind, page, message.get());
    }
    return expected;
  }

  private static WalFormatException error(WalFormatException.Kind kind, Lsn at, String message) {
    return new WalFormatException(kind, at, message);
  }
}
