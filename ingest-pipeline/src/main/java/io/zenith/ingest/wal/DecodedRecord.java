package io.zenith.ingest.wal;

import io.zenith.wal.Lsn;
import io.zenith.wal.WalRecord;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/**
 * A WAL record split into its parts ({@code DecodedXLogRecord}): the header, the block references
 * in block-id order, the main data, the replication origin and the top-level xid. Views into the
 * raw record's bytes; no copy. Immutable.
 *
 * @param raw the record as read from the WAL
 * @param blocks block references in increasing block id (unused ids omitted)
 * @param mainDataOffset where the main data starts in the record
 * @param mainDataLength its length (0 when there is none)
 * @param origin replication origin id ({@code XLR_BLOCK_ID_ORIGIN}), 0 when none
 * @param toplevelXid top-level xid of a subtransaction's record ({@code
 *     XLR_BLOCK_ID_TOPLEVEL_XID}), 0 when none
 */
public record DecodedRecord(
    WalRecord raw,
    List<BlockRef> blocks,
    int mainDataOffset,
    int mainDataLength,
    int origin,
    int toplevelXid) {

  public Lsn lsn() {
    return raw.lsn();
  }

  public Lsn end() {
    return raw.end();
  }

  public Lsn prev() {
    return raw.prev();
  }

  public int xid() {
    return raw.xid();
  }

  public int rmid() {
    return raw.rmid();
  }

  public int info() {
    return raw.info();
  }

  public int totalLength() {
    return raw.totalLength();
  }

  /** The builtin resource manager, or null for a custom one. */
  public ResourceManager rmgr() {
    return ResourceManager.ofId(raw.rmid());
  }

  /** The record type name as pg_waldump prints it (first word of its description). */
  public String typeName() {
    return ResourceManager.typeNameOf(raw.rmid(), raw.info());
  }

  /** The main data: a read-only little-endian view into the record. */
  public ByteBuffer mainData() {
    return ByteBuffer.wrap(raw.array(), mainDataOffset, mainDataLength)
        .slice()
        .asReadOnlyBuffer()
        .order(ByteOrder.LITTLE_ENDIAN);
  }

  /** The block reference with this id, or null. */
  public BlockRef block(int id) {
    for (BlockRef b : blocks) {
      if (b.id() == id) {
        return b;
      }
    }
    return null;
  }

  /** Bytes of full-page images in the record (pg_waldump's "tot - rec" length). */
  public int imageBytes() {
    int n = 0;
    for (BlockRef b : blocks) {
      if (b.image() != null) {
        n += b.image().length();
      }
    }
    return n;
  }
}
