package io.zenith.ingest.wal.records;

import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalFormatException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Bounds-checked little-endian reads of one record's main data. Every read that would go past the
 * end becomes a {@link WalFormatException} of kind {@code BAD_RECORD_CONTENT} naming the record
 * type and LSN, so that parsers never see an {@link IndexOutOfBoundsException}.
 *
 * <p>Fixed-size structs are read at absolute offsets (their C padding is explicit in the offsets);
 * variable parts are read sequentially from {@link #position()}. Not thread-safe: one per parse.
 */
final class MainData {
  /** PostgreSQL's MAXALIGN on x86-64 and every other platform we read WAL of. */
  static final int MAXIMUM_ALIGNOF = 8;

  private final DecodedRecord record;
  private final ByteBuffer buf;
  private final String what;
  private int pos;

  MainData(DecodedRecord record, String rmgr, String type) {
    this.record = record;
    this.buf = record.mainData();
    this.what = rmgr + "/" + type;
  }

  DecodedRecord record() {
    return record;
  }

  int position() {
    return pos;
  }

  int remaining() {
    return buf.limit() - pos;
  }

  static int maxAlign(long n) {
    return (int) ((n + MAXIMUM_ALIGNOF - 1) & ~(long) (MAXIMUM_ALIGNOF - 1));
  }

  WalFormatException bad(String detail) {
    Lsn lsn = record.lsn();
    return new WalFormatException(
        WalFormatException.Kind.BAD_RECORD_CONTENT,
        lsn,
        what + " record at " + lsn + " is malformed: " + detail);
  }

  /** Requires the fixed part of a struct: at least {@code size} bytes of main data. */
  MainData requireAtLeast(int size, String struct) {
    if (buf.limit() < size) {
      throw bad("main data has " + buf.limit() + " bytes, " + struct + " needs at least " + size);
    }
    return this;
  }

  // Absolute reads within a size already checked by requireAtLeast.

  int u8(int off) {
    check(off, 1);
    return buf.get(off) & 0xFF;
  }

  int u16(int off) {
    check(off, 2);
    return buf.getShort(off) & 0xFFFF;
  }

  int i32(int off) {
    check(off, 4);
    return buf.getInt(off);
  }

  long i64(int off) {
    check(off, 8);
    return buf.getLong(off);
  }

  boolean bool(int off) {
    return u8(off) != 0;
  }

  RelTag relTag(int off) {
    return new RelTag(i32(off), i32(off + 4), i32(off + 8));
  }

  private void check(int off, int n) {
    if (off < 0 || off > buf.limit() - n) {
      throw bad(
          "main data has "
              + buf.limit()
              + " bytes, a field at offset "
              + off
              + " needs "
              + n
              + " more");
    }
  }

  // Sequential reads from position().

  MainData seek(int off) {
    if (off < 0 || off > buf.limit()) {
      throw bad("main data has " + buf.limit() + " bytes, the record points at offset " + off);
    }
    pos = off;
    return this;
  }

  private int take(int n, String field) {
    if (n < 0 || remaining() < n) {
      throw bad(
          "main data has "
              + remaining()
              + " bytes left at offset "
              + pos
              + ", "
              + field
              + " needs "
              + n);
    }
    int at = pos;
    pos += n;
    return at;
  }

  int nextI32(String field) {
    return buf.getInt(take(4, field));
  }

  long nextI64(String field) {
    return buf.getLong(take(8, field));
  }

  void skip(long n, String field) {
    if (n > Integer.MAX_VALUE) {
      throw bad(field + " needs " + n + " bytes");
    }
    take((int) n, field);
  }

  /** Checks a count read from the record against the bytes left for its elements. */
  int checkCount(int count, int elementSize, String field) {
    if (count < 0) {
      throw bad(field + " count is negative (" + count + ")");
    }
    long need = (long) count * elementSize;
    if (need > remaining()) {
      throw bad(
          field
              + " count "
              + count
              + " needs "
              + need
              + " bytes at offset "
              + pos
              + " but only "
              + remaining()
              + " are left");
    }
    return count;
  }

  /** {@code count} uint32 values (xids, OIDs) from the current position. */
  List<Integer> nextInts(int count, String field) {
    checkCount(count, 4, field);
    List<Integer> out = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      out.add(buf.getInt(take(4, field)));
    }
    return Collections.unmodifiableList(out);
  }

  /** {@code count} {@code RelFileNode}s (12 bytes each) from the current position. */
  List<RelTag> nextRelTags(int count, String field) {
    checkCount(count, 12, field);
    List<RelTag> out = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      int at = take(12, field);
      out.add(new RelTag(buf.getInt(at), buf.getInt(at + 4), buf.getInt(at + 8)));
    }
    return Collections.unmodifiableList(out);
  }

  /** A NUL-terminated string from the current position; the NUL is consumed. */
  String nextCString(String field) {
    int start = pos;
    for (int i = start; i < buf.limit(); i++) {
      if (buf.get(i) == 0) {
        byte[] b = new byte[i - start];
        buf.get(start, b);
        pos = i + 1;
        return new String(b, StandardCharsets.UTF_8);
      }
    }
    throw bad(field + " at offset " + start + " is not NUL-terminated");
  }

  /** Up to {@code max} bytes from the current position, cut at the first NUL (C's strncpy). */
  String nextFixedString(int max, String field) {
    int at = take(max, field);
    int end = at;
    while (end < at + max && buf.get(end) != 0) {
      end++;
    }
    byte[] b = new byte[end - at];
    buf.get(at, b);
    return new String(b, StandardCharsets.UTF_8);
  }

  byte[] nextBytes(int n, String field) {
    int at = take(n, field);
    byte[] b = new byte[n];
    buf.get(at, b);
    return b;
  }

  /** The block reference redo reads, or a malformed-record error when the record lacks it. */
  BlockRef block(int id) {
    BlockRef b = record.block(id);
    if (b == null) {
      throw bad("block reference " + id + " is missing");
    }
    return b;
  }
}
