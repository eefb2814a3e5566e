package io.zenith.wal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One complete WAL record, reassembled from its pages: the record's bytes as PostgreSQL wrote them
 * (header included, page headers removed), with its position.
 *
 * <p>{@code end} is PostgreSQL's {@code EndRecPtr}: the MAXALIGNed position after the record, or
 * the start of the next segment for {@code XLOG_SWITCH}. It is the LSN redo stamps on pages the
 * record touches. The next record starts at {@code end}, or after the page header if {@code end} is
 * a page boundary.
 *
 * <p>The array is owned by this record and must not be modified.
 */
public record WalRecord(Lsn lsn, Lsn end, RecordHeader header, byte[] bytes) {

  /** A read-only little-endian view of the whole record. */
  public ByteBuffer buffer() {
    return ByteBuffer.wrap(bytes).asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
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
