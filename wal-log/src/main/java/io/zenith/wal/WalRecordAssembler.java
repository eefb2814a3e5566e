package io.zenith.wal;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.zip.CRC32C;

/**
 * Reassembles complete WAL records from WAL bytes that arrive in chunks of any size, validating
 * page headers and record CRCs the way PostgreSQL 15's {@code xlogreader.c} does.
 *
 * <p>The input is a contiguous byte range of the WAL starting at the position given to the
 * constructor, which must be either a record boundary or a page boundary. At a page boundary a
 * record continued from the previous page is skipped, as PostgreSQL's {@code XLogFindNextRecord}
 * does, so reading can start at any segment or page start.
 *
 * <p>Reading ends cleanly ("end of WAL", {@link #ended()}) where PostgreSQL's own recovery would: a
 * zero record length, or a page that was never written (all-zero header). Any other malformed byte
 * is a {@link WalFormatException} naming the LSN. When the input simply stops, records completed so
 * far have been returned and {@link #incompleteRecordStart()} tells whether a record was cut short.
 *
 * <p>Zero-copy: a record that lies within one chunk and one page (most records) is returned in
 * place, sharing the chunk's backing array; the producer must not reuse a chunk's memory after
 * handing it over, and consumers copy what they keep for long. Other records are copied into a
 * buffer of their own, grown as their bytes arrive (never beyond the record's length). Besides that
 * buffer, the assembler holds 40 bytes for a split page header.
 *
 * <p>Not thread-safe: one assembler per stream, fed from one thread at a time.
 */
public final class WalRecordAssembler {

  /**
   * How to read.
   *
   * @param segmentSize WAL segment size, or 0 to learn it from the first long page header (then
   *     reading must start at a segment start)
   * @param systemId expected system identifier, or 0 to accept the first one seen
   * @param verifyCrc whether to check each record's CRC32C (only benchmarks turn this off)
   */
  public record Options(int segmentSize, long systemId, boolean verifyCrc) {
    public static final Options DEFAULT = new Options(0, 0, true);

    public Options {
      if (segmentSize != 0 && !WalFormat.isValidSegmentSize(segmentSize)) {
        throw new IllegalArgumentException(
            "WAL segment size must be a power of two between 1 MiB and 1 GiB, got " + segmentSize);
      }
    }

    public Options withSegmentSize(int size) {
      return new Options(size, systemId, verifyCrc);
    }
  }

  private enum State {
    PAGE_HEADER,
    RECORD_START,
    RECORD_BODY,
    SKIP,
    END
  }

  private static final int INITIAL_RECORD_CAPACITY = 64 * 1024;

  private final boolean verifyCrc;
  private final CRC32C crc = new CRC32C();
  private final PageHeaderValidator pages;

  /** LSN of the next input byte. */
  private long pos;

  private State state;

  private final byte[] pageHeader = new byte[WalFormat.LONG_PAGE_HEADER_SIZE];
  private int pageHeaderLen;

  /** True until the first page header has been seen, when reading started at a page boundary. */
  private boolean atStartPage;

  /** Bytes of a leading continuation record (one we did not see start) still to skip. */
  private long continuationToSkip;

  private long skipRemaining;

  private byte[] record;
  private int recordLen;
  private int recordTotal;
  private long recordStart;

  /** Header of the record being assembled, once its 24 bytes are in and checked. */
  private RecordHeader recordHeader;

  private final byte[] lengthField = new byte[4];
  private int lengthFieldLen;

  /** Start of the previous record, for the xl_prev check; 0 when unknown. */
  private long prevRecordStart;

  private long lastRecordEnd;
  private String endReason;

  public WalRecordAssembler(Lsn start, Options options) {
    this.verifyCrc = options.verifyCrc();
    this.pages = new PageHeaderValidator(options.segmentSize(), options.systemId());
    this.pos = start.value();
    this.lastRecordEnd = start.value();
    if (start.pageOffset() == 0) {
      state = State.PAGE_HEADER;
      atStartPage = true;
    } else if ((start.value() & 7) != 0) {
      throw new IllegalArgumentException("WAL reading must start at a record boundary: " + start);
    } else {
      state = State.RECORD_START;
    }
    if (options.segmentSize() == 0 && (start.pageOffset() != 0 || state != State.PAGE_HEADER)) {
      throw new IllegalArgumentException(
          "the WAL segment size must be given unless reading starts at a segment start");
    }
  }

  /**
   * Returns the records completed by {@code chunk}, decoding lazily: each {@code hasNext()}
   * consumes bytes of the chunk only up to the end of the next record. The chunk's position
   * advances as bytes are consumed; it must not be modified while the iterator is in use. Errors
   * surface as {@link WalFormatException} from {@code hasNext()}.
   */
  public Iterator<WalRecord> feed(ByteBuffer chunk) {
    return new Iterator<>() {
      private WalRecord next;

      @Override
      public boolean hasNext() {
        if (next == null) {
          next = step(chunk);
        }
        return next != null;
      }

      @Override
      public WalRecord next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        WalRecord r = next;
        next = null;
        return r;
      }
    };
  }

  /** Consumes bytes of {@code in} until a record completes (returned) or the input runs out. */
  public WalRecord step(ByteBuffer in) {
    while (true) {
      switch (state) {
        case END -> {
          in.position(in.limit());
          return null;
        }
        case PAGE_HEADER -> {
          if (!readPageHeader(in)) {
            return null;
          }
        }
        case SKIP -> {
          int n = (int) Math.min(skipRemaining, in.remaining());
          in.position(in.position() + n);
          pos += n;
          skipRemaining -= n;
          if (skipRemaining > 0) {
            return null;
          }
          state = pageOffset(pos) == 0 ? State.PAGE_HEADER : State.RECORD_START;
        }
        case RECORD_START -> {
          if (lengthFieldLen == 0 && in.remaining() >= 4) {
            int total = LittleEndian.i32(in, in.position());
            if (checkLength(total)) {
              if (in.hasArray()
                  && total <= in.remaining()
                  && pageOffset(pos) + total <= WalFormat.XLOG_BLCKSZ) {
                return wholeRecordInPlace(in, total);
              }
              allocateRecord(total);
              state = State.RECORD_BODY;
            }
          } else if (!readSplitLengthField(in)) {
            return null;
          }
        }
        case RECORD_BODY -> {
          WalRecord done = readBody(in);
          if (done != null) {
            return done;
          }
          if (state == State.RECORD_BODY) {
            return null;
          }
        }
      }
    }
  }

  /** True once the end of WAL was found; later input is ignored. */
  public boolean ended() {
    return state == State.END;
  }

  /** Why reading ended, when {@link #ended()}. */
  public Optional<String> endReason() {
    return Optional.ofNullable(endReason);
  }

  /** End of the last complete record (the start position if none was read yet). */
  public Lsn lastRecordEnd() {
    return Lsn.of(lastRecordEnd);
  }

  /** LSN of the next byte the assembler expects. */
  public Lsn position() {
    return Lsn.of(pos);
  }

  /** Start of a record whose bytes stopped before its end, if the input stopped mid-record. */
  public Optional<Lsn> incompleteRecordStart() {
    return record != null || state == State.RECORD_START && lengthFieldLen > 0
        ? Optional.of(Lsn.of(record != null ? recordStart : pos))
        : Optional.empty();
  }

  /** The segment size in use; 0 until learned. */
  public int segmentSize() {
    return pages.segmentSize();
  }

  /** The system identifier seen in long page headers; 0 until one was seen. */
  public long systemId() {
    return pages.systemId();
  }

  private boolean readPageHeader(ByteBuffer in) {
    int need = pageHeaderSize();
    while (pageHeaderLen < need) {
      if (!in.hasRemaining()) {
        return false;
      }
      int n = Math.min(need - pageHeaderLen, in.remaining());
      in.get(pageHeader, pageHeaderLen, n);
      pageHeaderLen += n;
      need = pageHeaderSize();
    }
    PageHeader header = PageHeader.read(pageHeader, 0, pageHeaderLen);
    pageHeaderLen = 0;
    long pageStart = pos;
    pos += header.size();
    acceptPageHeader(header, pageStart);
    return true;
  }

  /**
   * Bytes of the page header being read: short until its xlp_info (bytes 2..3) is in and says long.
   */
  private int pageHeaderSize() {
    if (pageHeaderLen >= 4) {
      int info = (pageHeader[2] & 0xFF) | (pageHeader[3] & 0xFF) << 8;
      if ((info & WalFormat.XLP_LONG_HEADER) != 0) {
        return WalFormat.LONG_PAGE_HEADER_SIZE;
      }
    }
    return WalFormat.SHORT_PAGE_HEADER_SIZE;
  }

  private void acceptPageHeader(PageHeader h, long pageStart) {
    Lsn page = Lsn.of(pageStart);
    if (h.isZero()) {
      end("page at " + page + " was never written");
      return;
    }
    pages.check(h, page);

    if (record != null) {
      continueRecord(h, page);
    } else if (continuationToSkip > 0 || atStartPage) {
      skipContinuation(h, page);
    } else if (h.isContinuation()) {
      throw error(
          WalFormatException.Kind.BAD_CONTRECORD,
          page,
          "WAL page at " + page + " continues a record, but the previous record ended before it");
    } else {
      state = State.RECORD_START;
    }
    atStartPage = false;
  }

  private void continueRecord(PageHeader h, Lsn page) {
    if (!h.isContinuation()) {
      if (h.isOverwriteContinuation()) {
        // The record was never finished (its writer crashed); PostgreSQL wrote an
        // OVERWRITE_CONTRECORD record here instead. Drop the fragment and read on.
        record = null;
        state = State.RECORD_START;
        return;
      }
      throw error(
          WalFormatException.Kind.BAD_CONTRECORD,
          page,
          "there is no continuation flag in WAL page at "
              + page
              + " for the record at "
              + Lsn.of(recordStart));
    }
    int expected = recordTotal - recordLen;
    if (h.remainingLength() != expected) {
      throw error(
          WalFormatException.Kind.BAD_CONTRECORD,
          page,
          "invalid continuation length "
              + Integer.toUnsignedString(h.remainingLength())
              + " in WAL page at "
              + page
              + " (the record at "
              + Lsn.of(recordStart)
              + " has "
              + expected
              + " bytes left)");
    }
    state = State.RECORD_BODY;
  }

  private void skipContinuation(PageHeader h, Lsn page) {
    if (continuationToSkip > 0) {
      if (!h.isContinuation()
          || Integer.toUnsignedLong(h.remainingLength()) != continuationToSkip) {
        if (h.isOverwriteContinuation()) {
          continuationToSkip = 0;
          state = State.RECORD_START;
          return;
        }
        throw error(
            WalFormatException.Kind.BAD_CONTRECORD,
            page,
            "invalid continuation in WAL page at "
                + page
                + ": expected "
                + continuationToSkip
                + " remaining bytes of the record continued from the previous page");
      }
    } else if (!h.isContinuation()) {
      state = State.RECORD_START;
      return;
    }
    long remaining = Integer.toUnsignedLong(h.remainingLength());
    long onPage = WalFormat.XLOG_BLCKSZ - pageOffset(pos);
    if (remaining > onPage) {
      continuationToSkip = remaining - onPage;
      skipRemaining = onPage;
    } else {
      continuationToSkip = 0;
      skipRemaining = (remaining + 7) & ~7L;
    }
    state = State.SKIP;
  }

  /**
   * Collects a record's length field when it arrives in more than one chunk; the bytes are consumed
   * and copied into the new record. False when the input ran out first.
   */
  private boolean readSplitLengthField(ByteBuffer in) {
    while (lengthFieldLen < 4) {
      if (!in.hasRemaining()) {
        return false;
      }
      lengthField[lengthFieldLen++] = in.get();
    }
    lengthFieldLen = 0;
    int total = LittleEndian.i32(lengthField, 0);
    if (checkLength(total)) {
      allocateRecord(total);
      System.arraycopy(lengthField, 0, record, 0, 4);
      recordLen = 4;
      pos += 4;
      state = State.RECORD_BODY;
    }
    return true;
  }

  /**
   * The common case: the whole record lies in this chunk's array and on this page, so it is
   * returned in place, sharing the chunk's array, without a copy.
   */
  private WalRecord wholeRecordInPlace(ByteBuffer in, int total) {
    byte[] array = in.array();
    int offset = in.arrayOffset() + in.position();
    in.position(in.position() + total);
    recordStart = pos;
    pos += total;
    return completeRecord(array, offset, total, checkRecordHeader(array, offset));
  }

  /** False (and END) for the end-of-WAL marker; throws for an impossible length. */
  private boolean checkLength(int total) {
    Lsn at = Lsn.of(pos);
    if (total == 0) {
      end("zero record length at " + at);
      return false;
    }
    if (total < WalFormat.RECORD_HEADER_SIZE || total > WalFormat.MAX_RECORD_SIZE) {
      throw error(
          WalFormatException.Kind.BAD_RECORD_LENGTH,
          at,
          "invalid record length at "
              + at
              + ": wanted at least "
              + WalFormat.RECORD_HEADER_SIZE
              + " and at most "
              + WalFormat.MAX_RECORD_SIZE
              + ", got "
              + Integer.toUnsignedString(total));
    }
    return true;
  }

  private void allocateRecord(int total) {
    record = new byte[Math.min(total, INITIAL_RECORD_CAPACITY)];
    recordTotal = total;
    recordLen = 0;
    recordStart = pos;
    recordHeader = null;
  }

  /** Copies body bytes; returns the record when complete. May switch state to PAGE_HEADER. */
  private WalRecord readBody(ByteBuffer in) {
    int onPage = WalFormat.XLOG_BLCKSZ - pageOffset(pos);
    int n = Math.min(Math.min(in.remaining(), onPage), recordTotal - recordLen);
    if (n > 0) {
      if (recordLen + n > record.length) {
        grow(recordLen + n);
      }
      in.get(record, recordLen, n);
      recordLen += n;
      pos += n;
    }
    if (recordHeader == null && recordLen >= WalFormat.RECORD_HEADER_SIZE) {
      recordHeader = checkRecordHeader(record, 0);
    }
    if (recordLen == recordTotal) {
      byte[] bytes = record.length == recordTotal ? record : Arrays.copyOf(record, recordTotal);
      record = null;
      return completeRecord(bytes, 0, recordTotal, recordHeader);
    }
    if (pageOffset(pos) == 0) {
      state = State.PAGE_HEADER;
    }
    return null;
  }

  private void grow(int needed) {
    int capacity = record.length;
    while (capacity < needed) {
      capacity = (int) Math.min((long) capacity * 2, recordTotal);
    }
    record = Arrays.copyOf(record, capacity);
  }

  private RecordHeader checkRecordHeader(byte[] array, int offset) {
    RecordHeader h = RecordHeader.read(array, offset);
    Lsn at = Lsn.of(recordStart);
    if (!WalFormat.isValidRmgrId(h.rmid())) {
      throw error(
          WalFormatException.Kind.BAD_RESOURCE_MANAGER,
          at,
          "invalid resource manager ID " + h.rmid() + " at " + at);
    }
    if (prevRecordStart != 0) {
      if (h.prev().value() != prevRecordStart) {
        throw error(
            WalFormatException.Kind.BAD_PREV_LINK,
            at,
            "record with incorrect prev-link "
                + h.prev()
                + " at "
                + at
                + " (previous record is at "
                + Lsn.of(prevRecordStart)
                + ")");
      }
    } else if (Long.compareUnsigned(h.prev().value(), recordStart) >= 0) {
      throw error(
          WalFormatException.Kind.BAD_PREV_LINK,
          at,
          "record with incorrect prev-link " + h.prev() + " at " + at);
    }
    return h;
  }

  /** Checks the CRC of the record at {@code array[offset, offset + total)} and moves past it. */
  private WalRecord completeRecord(byte[] array, int offset, int total, RecordHeader h) {
    Lsn start = Lsn.of(recordStart);
    if (verifyCrc) {
      crc.reset();
      crc.update(
          array, offset + WalFormat.RECORD_HEADER_SIZE, total - WalFormat.RECORD_HEADER_SIZE);
      crc.update(array, offset, WalFormat.RECORD_CRC_OFFSET);
      int actual = (int) crc.getValue();
      if (actual != h.crc()) {
        throw error(
            WalFormatException.Kind.CRC_MISMATCH,
            start,
            String.format(
                "incorrect resource manager data checksum in record at %s (stored %08X, computed %08X)",
                start, h.crc(), actual));
      }
    }
    long end;
    if (h.isSwitch()) {
      // The rest of the segment is unused: the next record starts in the next segment.
      int segmentSize = pages.segmentSize();
      end = (pos + segmentSize - 1) & -(long) segmentSize;
    } else {
      end = (pos + 7) & ~7L;
    }
    skipRemaining = end - pos;
    state =
        skipRemaining > 0
            ? State.SKIP
            : pageOffset(pos) == 0 ? State.PAGE_HEADER : State.RECORD_START;
    prevRecordStart = recordStart;
    lastRecordEnd = end;
    return new WalRecord(start, Lsn.of(end), h, array, offset);
  }

  private void end(String reason) {
    state = State.END;
    record = null;
    endReason = reason;
  }

  private static int pageOffset(long lsn) {
    return (int) (lsn & (WalFormat.XLOG_BLCKSZ - 1));
  }

  private static WalFormatException error(WalFormatException.Kind kind, Lsn at, String message) {
    return new WalFormatException(kind, at, message);
  }
}
