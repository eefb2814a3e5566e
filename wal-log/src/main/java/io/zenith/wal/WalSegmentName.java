package io.zenith.wal;

import java.util.Locale;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * The name of a WAL segment file, as in {@code pg_wal}: 24 upper-case hex digits, the timeline then
 * the segment number split in PostgreSQL's "xlogid / segment within it" halves ({@code
 * XLogFileName}). A name is only meaningful together with the segment size.
 */
public record WalSegmentName(int timeline, long segmentNumber)
    implements Comparable<WalSegmentName> {

  private static final Pattern NAME = Pattern.compile("[0-9A-F]{24}");

  /** Suffix of a segment that is still being written (safekeepers, {@code pg_receivewal}). */
  public static final String PARTIAL_SUFFIX = ".partial";

  public static WalSegmentName of(int timeline, Lsn lsn, int segmentSize) {
    return new WalSegmentName(timeline, lsn.segmentNumber(segmentSize));
  }

  /** Parses a plain segment file name; empty if the text is not one. */
  public static Optional<WalSegmentName> parse(String fileName, int segmentSize) {
    if (!NAME.matcher(fileName).matches()) {
      return Optional.empty();
    }
    long segmentsPerId = segmentsPerXLogId(segmentSize);
    int tli = Integer.parseUnsignedInt(fileName.substring(0, 8), 16);
    long hi = Long.parseLong(fileName.substring(8, 16), 16);
    long lo = Long.parseLong(fileName.substring(16, 24), 16);
    if (lo >= segmentsPerId) {
      return Optional.empty();
    }
    return Optional.of(new WalSegmentName(tli, hi * segmentsPerId + lo));
  }

  public static boolean looksLikeSegmentName(String fileName) {
    return NAME.matcher(fileName).matches();
  }

  public String fileName(int segmentSize) {
    long segmentsPerId = segmentsPerXLogId(segmentSize);
    return String.format(
        Locale.ROOT,
        "%08X%08X%08X",
        timeline,
        segmentNumber / segmentsPerId,
        segmentNumber % segmentsPerId);
  }

  public Lsn startLsn(int segmentSize) {
    return Lsn.of(segmentNumber * segmentSize);
  }

  public WalSegmentName next() {
    return new WalSegmentName(timeline, segmentNumber + 1);
  }

  private static long segmentsPerXLogId(int segmentSize) {
    if (!WalFormat.isValidSegmentSize(segmentSize)) {
      throw new IllegalArgumentException("invalid WAL segment size " + segmentSize);
    }
    return 0x1_0000_0000L / segmentSize;
  }

  @Override
  public int compareTo(WalSegmentName o) {
    int c = Integer.compareUnsigned(timeline, o.timeline);
    return c != 0 ? c : Long.compare(segmentNumber, o.segmentNumber);
  }
}
