package io.zenith.ingest.wal;

import io.zenith.ingest.pg.PageLayout;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.LittleEndian;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalRecord;
import java.util.List;

/**
 * Splits a record's body into block references, block data, images and main data, with the same
 * validation as PostgreSQL 15's {@code DecodeXLogRecord}. The body layout after the 24-byte header:
 *
 * <pre>
 * headers, each starting with an id byte, in this order:
 *   0..32  XLogRecordBlockHeader: id u8, fork_flags u8, data_length u16,
 *          [if HAS_IMAGE: bimg_len u16, hole_offset u16, bimg_info u8,
 *                         [if compressed and HAS_HOLE: hole_length u16]],
 *          [unless SAME_REL: RelFileNode (spc u32, db u32, rel u32)], blkno u32
 *   253    origin u16
 *   252    top-level xid u32
 *   255    main data length u8  (last header)
 *   254    main data length u32 (last header)
 * then, per block in id order: image bytes, block data bytes; then the main data.
 * </pre>
 *
 * Stateless and thread-safe.
 */
public final class RecordDecoder {
  private RecordDecoder() {}

  private static final int XLR_MAX_BLOCK_ID = 32;
  private static final int XLR_BLOCK_ID_DATA_SHORT = 255;
  private static final int XLR_BLOCK_ID_DATA_LONG = 254;
  private static final int XLR_BLOCK_ID_ORIGIN = 253;
  private static final int XLR_BLOCK_ID_TOPLEVEL_XID = 252;

  /**
   * Decodes the body of {@code record}.
   *
   * @throws WalFormatException of kind {@code BAD_RECORD_CONTENT} when the body is malformed
   */
  public static DecodedRecord decode(WalRecord record) {
    byte[] b = record.array();
    Lsn lsn = record.lsn();
    Cursor c =
        new Cursor(
            b,
            record.offset() + WalFormat.RECORD_HEADER_SIZE,
            record.offset() + record.totalLength(),
            lsn);

    // Pass 1 validates the headers and finds where the payload starts; pass 2 (below) walks the
    // validated headers again to build the block references with absolute payload offsets.
    int blockCount = 0;
    long dataTotal = 0;
    int mainDataLength = 0;
    int origin = 0;
    int toplevelXid = 0;
    int maxBlockId = -1;
    boolean haveRel = false;
    while (c.remaining() > dataTotal) {
      int id = c.u8();
      if (id == XLR_BLOCK_ID_DATA_SHORT) {
        mainDataLength = c.u8();
        dataTotal += mainDataLength;
        break;
      } else if (id == XLR_BLOCK_ID_DATA_LONG) {
        long len = c.u32();
        if (len > Integer.MAX_VALUE) {
          throw bad(lsn, "main data length " + len + " too large at " + lsn);
        }
        mainDataLength = (int) len;
        dataTotal += mainDataLength;
        break;
      } else if (id == XLR_BLOCK_ID_ORIGIN) {
        origin = c.u16();
      } else if (id == XLR_BLOCK_ID_TOPLEVEL_XID) {
        toplevelXid = c.i32();
      } else if (id <= XLR_MAX_BLOCK_ID) {
        if (id <= maxBlockId) {
          throw bad(lsn, "out-of-order block_id " + id + " at " + lsn);
        }
        maxBlockId = id;
        blockCount++;
        dataTotal += checkBlockHeader(c, lsn, haveRel);
        haveRel = true;
      } else {
        throw bad(lsn, "invalid block_id " + id + " at " + lsn);
      }
    }
    if (c.remaining() != dataTotal) {
      throw bad(
          lsn, "record with invalid length at " + lsn + ": block and main data do not add up");
    }

    int off = c.position();
    BlockRef[] blocks = new BlockRef[blockCount];
    RelTag rel = null;
    int p = record.offset() + WalFormat.RECORD_HEADER_SIZE;
    for (int i = 0; i < blockCount; ) {
      int id = LittleEndian.u8(b, p);
      switch (id) {
        case XLR_BLOCK_ID_ORIGIN -> p += 3;
        case XLR_BLOCK_ID_TOPLEVEL_XID -> p += 5;
        default -> {
          int flags = LittleEndian.u8(b, p + 1);
          int dataLength = LittleEndian.u16(b, p + 2);
          p += 4;
          BlockImage image = null;
          if ((flags & BlockRef.HAS_IMAGE) != 0) {
            int imageLength = LittleEndian.u16(b, p);
            int holeOffset = LittleEndian.u16(b, p + 2);
            int info = LittleEndian.u8(b, p + 4);
            p += 5;
            int holeLength;
            if ((info & COMPRESSED) == 0) {
              holeLength = PageLayout.BLCKSZ - imageLength;
            } else if ((info & BlockImage.HAS_HOLE) != 0) {
              holeLength = LittleEndian.u16(b, p);
              p += 2;
            } else {
              holeLength = 0;
            }
            image = new BlockImage(imageLength, holeOffset, holeLength, info, off);
            off += imageLength;
          }
          if ((flags & BlockRef.SAME_REL) == 0) {
            rel =
                new RelTag(
                    LittleEndian.i32(b, p), LittleEndian.i32(b, p + 4), LittleEndian.i32(b, p + 8));
            p += 12;
          }
          int block = LittleEndian.i32(b, p);
          p += 4;
          ForkNumber fork = ForkNumber.ofNumber(flags & BlockRef.FORK_MASK);
          blocks[i++] = new BlockRef(id, rel, fork, block, flags, image, off, dataLength, b);
          off += dataLength;
        }
      }
    }
    List<BlockRef> list =
        switch (blockCount) {
          case 0 -> List.of();
          case 1 -> List.of(blocks[0]);
          case 2 -> List.of(blocks[0], blocks[1]);
          default -> List.of(blocks);
        };
    return new DecodedRecord(record, list, off, mainDataLength, origin, toplevelXid);
  }

  private static final int COMPRESSED =
      BlockImage.COMPRESS_PGLZ | BlockImage.COMPRESS_LZ4 | BlockImage.COMPRESS_ZSTD;

  /**
   * Validates one block header (after its id byte) as DecodeXLogRecord does; returns the payload
   * bytes it announces (image + data).
   */
  private static int checkBlockHeader(Cursor c, Lsn lsn, boolean haveRel) {
    int flags = c.u8();
    int dataLength = c.u16();
    boolean hasData = (flags & BlockRef.HAS_DATA) != 0;
    if (hasData && dataLength == 0) {
      throw bad(lsn, "BKPBLOCK_HAS_DATA set, but no data included at " + lsn);
    }
    if (!hasData && dataLength != 0) {
      throw bad(lsn, "BKPBLOCK_HAS_DATA not set, but data length is " + dataLength + " at " + lsn);
    }
    if (ForkNumber.ofNumber(flags & BlockRef.FORK_MASK) == null) {
      throw bad(lsn, "invalid fork number " + (flags & BlockRef.FORK_MASK) + " at " + lsn);
    }
    int payload = dataLength;
    if ((flags & BlockRef.HAS_IMAGE) != 0) {
      int imageLength = c.u16();
      int holeOffset = c.u16();
      int info = c.u8();
      boolean compressed = (info & COMPRESSED) != 0;
      boolean hole = (info & BlockImage.HAS_HOLE) != 0;
      int holeLength = compressed ? (hole ? c.u16() : 0) : PageLayout.BLCKSZ - imageLength;
      payload += imageLength;
      if (hole && (holeOffset == 0 || holeLength == 0 || imageLength == PageLayout.BLCKSZ)) {
        throw bad(
            lsn,
            "BKPIMAGE_HAS_HOLE set, but hole offset "
                + holeOffset
                + " length "
                + holeLength
                + " block image length "
                + imageLength
                + " at "
                + lsn);
      }
      if (!hole && (holeOffset != 0 || holeLength != 0)) {
        throw bad(
            lsn,
            "BKPIMAGE_HAS_HOLE not set, but hole offset "
                + holeOffset
                + " length "
                + holeLength
                + " at "
                + lsn);
      }
      if (compressed && imageLength == PageLayout.BLCKSZ) {
        throw bad(
            lsn, "BKPIMAGE_COMPRESSED set, but block image length " + imageLength + " at " + lsn);
      }
      if (!hole && !compressed && imageLength != PageLayout.BLCKSZ) {
        throw bad(
            lsn,
            "neither BKPIMAGE_HAS_HOLE nor BKPIMAGE_COMPRESSED set, but block image length is "
                + imageLength
                + " at "
                + lsn);
      }
      if (holeOffset + holeLength > PageLayout.BLCKSZ) {
        throw bad(lsn, "block image hole beyond the page end at " + lsn);
      }
    }
    if ((flags & BlockRef.SAME_REL) == 0) {
      c.i32();
      c.i32();
      c.i32();
    } else if (!haveRel) {
      throw bad(lsn, "BKPBLOCK_SAME_REL set but no previous rel at " + lsn);
    }
    c.i32();
    return payload;
  }

  private static WalFormatException bad(Lsn lsn, String message) {
    return new WalFormatException(WalFormatException.Kind.BAD_RECORD_CONTENT, lsn, message);
  }

  /** Little-endian reads within [pos, end), failing with PostgreSQL's "invalid record length". */
  private static final class Cursor {
    private final byte[] b;
    private int pos;
    private final int end;
    private final Lsn lsn;

    Cursor(byte[] b, int pos, int end, Lsn lsn) {
      this.b = b;
      this.pos = pos;
      this.end = end;
      this.lsn = lsn;
    }

    int remaining() {
      return end - pos;
    }

    int position() {
      return pos;
    }

    private void need(int n) {
      if (end - pos < n) {
        throw bad(lsn, "record with invalid length at " + lsn + ": headers run past its end");
      }
    }

    int u8() {
      need(1);
      return b[pos++] & 0xFF;
    }

    int u16() {
      need(2);
      int v = LittleEndian.u16(b, pos);
      pos += 2;
      return v;
    }

    int i32() {
      need(4);
      int v = LittleEndian.i32(b, pos);
      pos += 4;
      return v;
    }

    long u32() {
      return Integer.toUnsignedLong(i32());
    }
  }
}
