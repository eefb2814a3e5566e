package io.zenith.wal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * One complete WAL record, reassembled from its pages: the record's bytes as PostgreSQL wrote them
 * (header included, page headers removed), with its position.
 *
 * <p>{@code end} is PostgreSQL's {@code EndRecPtr}: the MAXALIGNed position after the record, or
 * the start of the next segment for {@code XLOG_SWITCH}. It is the LSN redo stamps on pages the
 * record touches. The next record starts at {@code end}, or after the page header if {@code end} is
 * a page boundary.
 *
 * <p>The record occupies {@code array[offset, offset + totalLength())}. The array may be shared
 * with other records (it can be the chunk the record was read from): never modify it, and copy
 * ({@link #copyBytes()}) what must outlive the stream. Offsets that decoders hand out ({@code
 * BlockRef}, {@code DecodedRecord}) are absolute indexes into this array.
 */
public record WalRecord(Lsn lsn, Lsn end, RecordHeader header, byte[] array, int offset) {

  public WalRecord {
    if (offset < 0 || offset + header.totalLength() > array.length) {
      throw new IllegalArgumentException(
          "record of " + header.totalLength() + " bytes at " + offset + " exceeds its array");
    }
  }

  /** A record that owns {@code bytes}, which hold exactly the record. */
  public WalRecord(Lsn lsn, Lsn end, RecordHeader header, byte[] bytes) {
    this(lsn, end, header, bytes, 0);
  }

  /** A read-only little-endian view of the whole record. */
  public ByteBuffer buffer() {
    return ByteBuffer.wrap(array, offset, header.totalLength())
        .slice()
        .asReadOnlyBuffer()
        .order(ByteOrder.LITTLE_ENDIAN);
  }

  /** A copy of exactly the record's bytes. */
  public byte[] copyBytes() {
    return Arrays.copyOfRange(array, offset, offset + header.totalLength());
  }

  public int totalLength() {
    return header.totalLength();
  }

  public int rmid() {
    return header.rmid();
  }

  public int info() {
    return header.info();
  }

  public int xid() {
    return header.xid();
  }

  public Lsn prev() {
    return header.prev();
  }
}
