package io.zenith.wal;

import java.io.Serial;
import java.util.Optional;

/**
 * WAL bytes that are not valid PostgreSQL 15 WAL. Carries what a caller needs to react or to tell
 * the user precisely: the kind of problem, the LSN where it was found and, once known, the file.
 *
 * <p>"End of WAL" (zeros where a record or page should start, a recycled page) is not an error and
 * is never reported with this exception.
 */
public final class WalFormatException extends RuntimeException {
  @Serial private static final long serialVersionUID = 1L;

  /** What was wrong. Callers switch on it; the message has the details. */
  public enum Kind {
    /** A page header whose magic is not PostgreSQL 15's. */
    BAD_PAGE_MAGIC,
    /** A page header with unknown flag bits, or a long header where a short one belongs. */
    BAD_PAGE_HEADER,
    /** A page whose {@code xlp_pageaddr} is not its position. */
    PAGE_ADDRESS_MISMATCH,
    /** A page of a timeline older than the pages before it. */
    TIMELINE_REGRESSION,
    /** A segment of another database system (different system identifier). */
    SYSTEM_ID_MISMATCH,
    /** A segment size that PostgreSQL does not support or that differs from the others. */
    BAD_SEGMENT_SIZE,
    /** A page size other than 8 KiB. */
    BAD_BLOCK_SIZE,
    /** A continuation page missing, or its remaining length inconsistent with the record. */
    BAD_CONTRECORD,
    /** A record header with an impossible length. */
    BAD_RECORD_LENGTH,
    /** A record of an unknown resource manager. */
    BAD_RESOURCE_MANAGER,
    /** A record whose back-link does not point to the previous record. */
    BAD_PREV_LINK,
    /** A record whose CRC32C does not match its contents. */
    CRC_MISMATCH,
    /** A record whose body (block references, lengths, resource-manager data) is malformed. */
    BAD_RECORD_CONTENT,
    /** Segment files that do not form a contiguous sequence. */
    BAD_SEGMENT_SEQUENCE
  }

  private final Kind kind;
  private final Lsn lsn;
  private final String file;

  public WalFormatException(Kind kind, Lsn lsn, String message) {
    this(kind, lsn, null, message, null);
  }

  public WalFormatException(Kind kind, Lsn lsn, String message, Throwable cause) {
    this(kind, lsn, null, message, cause);
  }

  private WalFormatException(Kind kind, Lsn lsn, String file, String message, Throwable cause) {
    super(message, cause);
    this.kind = kind;
    this.lsn = lsn;
    this.file = file;
  }

  public Kind kind() {
    return kind;
  }

  /** Where the problem was found. */
  public Lsn lsn() {
    return lsn;
  }

  /** The file that holds {@link #lsn()}, when the WAL came from files. */
  public Optional<String> file() {
    return Optional.ofNullable(file);
  }

  /** The same error, attributed to a file. */
  public WalFormatException inFile(String fileName) {
    return new WalFormatException(kind, lsn, fileName, getMessage(), getCause());
  }

  /** One line for a user: the problem, where, and in which file. */
  public String describe() {
    return getMessage() + (file == null ? "" : " (file " + file + ")");
  }
}
