package io.zenith.page.redo;

import io.zenith.ingest.pg.PageLayout;
import io.zenith.wal.WalRecord;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Serial;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Version 1 of the byte protocol between the pageserver and the {@code zenith_walredo} module
 * ({@code docs/formats/walredo-protocol.md}). All integers little-endian. Stateless; the streams
 * passed in belong to one process and are used by one thread at a time.
 */
final class WalRedoProtocol {
  private WalRedoProtocol() {}

  static final int VERSION = 1;
  static final byte[] MAGIC = {(byte) 0x89, 'Z', 'W', 'R', 'E', 'D', 'O', '\n'};
  static final int HANDSHAKE_SIZE = 28;
  static final int FLAG_DATA_CHECKSUMS = 0x0001;
  static final int FLAG_WAL_LOG_HINTS = 0x0002;

  static final int MSG_REDO = 'R';
  static final int MSG_EXIT = 'X';
  static final int REPLY_PAGE = 'P';
  static final int REPLY_ERROR = 'E';
  static final int ERROR_REJECTED = 1;
  static final int ERROR_REDO = 2;
  static final int ERROR_FATAL = 3;

  static final int REQUEST_HEADER_SIZE = 24;
  static final int RECORD_HEADER_SIZE = 20;

  /** Largest request body the module reads; larger ones are refused unread. */
  static final int MAX_BODY = 512 * 1024 * 1024;

  /** Longest error message the module sends. */
  static final int MAX_ERROR_MESSAGE = 65536;

  /** What the module announces when its loop starts. */
  record Handshake(
      int version, int flags, int pgVersionNum, int blockSize, int xlogPageMagic, long pid) {
    boolean dataChecksums() {
      return (flags & FLAG_DATA_CHECKSUMS) != 0;
    }

    boolean walLogHints() {
      return (flags & FLAG_WAL_LOG_HINTS) != 0;
    }
  }

  /** A reply: a page, or an error of one of the {@code ERROR_*} kinds. */
  sealed interface Reply {
    record Page(byte[] page) implements Reply {}

    record Error(int kind, String message) implements Reply {}
  }

  /** The magic did not appear, or the bytes after it are not a handshake. */
  static final class ProtocolException extends IOException {
    @Serial private static final long serialVersionUID = 1L;

    ProtocolException(String message) {
      super(message);
    }
  }

  /**
   * Skips the text the backend prints before the module's loop starts (banner, prompt, the row
   * description of the SELECT) and reads the handshake after the magic.
   *
   * @throws EOFException if the process closes stdout first
   * @throws ProtocolException if more than {@code maxPreamble} bytes come before the magic
   */
  static Handshake readHandshake(InputStream in, int maxPreamble) throws IOException {
    int matched = 0;
    int skipped = 0;
    StringBuilder preamble = new StringBuilder();
    while (matched < MAGIC.length) {
      int b = in.read();
      if (b < 0) {
        throw new EOFException(
            "stdout closed before the handshake (after: " + preamble.toString().strip() + ")");
      }
      if (b == (MAGIC[matched] & 0xFF)) {
        matched++;
        continue;
      }
      matched = b == (MAGIC[0] & 0xFF) ? 1 : 0;
      if (++skipped > maxPreamble) {
        throw new ProtocolException(
            "no handshake in the first " + maxPreamble + " bytes of the process's stdout");
      }
      if (preamble.length() < 200) {
        preamble.append((char) b);
      }
    }
    ByteBuffer b = ByteBuffer.wrap(readFully(in, HANDSHAKE_SIZE - MAGIC.length));
    b.order(ByteOrder.LITTLE_ENDIAN);
    return new Handshake(
        Short.toUnsignedInt(b.getShort()),
        Short.toUnsignedInt(b.getShort()),
        b.getInt(),
        b.getInt(),
        b.getInt(),
        Integer.toUnsignedLong(b.getInt()));
  }

  /** Size of the body (everything after the length field) of a request. */
  static long bodySize(RedoRequest r) {
    long n = REQUEST_HEADER_SIZE + (r.hasBaseImage() ? PageLayout.BLCKSZ : 0);
    for (WalRecord rec : r.records()) {
      n += RECORD_HEADER_SIZE + rec.totalLength();
    }
    return n;
  }

  /** Writes one request (not flushed). */
  static void writeRequest(OutputStream out, RedoRequest r) throws IOException {
    long body = bodySize(r);
    if (body > MAX_BODY) {
      throw new IllegalArgumentException(
          "request body of " + body + " bytes exceeds the protocol limit of " + MAX_BODY);
    }
    ByteBuffer h = ByteBuffer.allocate(1 + 4 + REQUEST_HEADER_SIZE).order(ByteOrder.LITTLE_ENDIAN);
    h.put((byte) MSG_REDO);
    h.putInt((int) body);
    h.putInt(r.rel().spcOid());
    h.putInt(r.rel().dbOid());
    h.putInt(r.rel().relNumber());
    h.put((byte) r.fork().ordinal());
    h.put((byte) (r.hasBaseImage() ? 1 : 0));
    h.putShort((short) 0);
    h.putInt(r.blockNumber());
    h.putInt(r.records().size());
    out.write(h.array());
    if (r.hasBaseImage()) {
      out.write(r.baseImage());
    }
    ByteBuffer rh = ByteBuffer.allocate(RECORD_HEADER_SIZE).order(ByteOrder.LITTLE_ENDIAN);
    for (WalRecord rec : r.records()) {
      rh.clear();
      rh.putLong(rec.lsn().value());
      rh.putLong(rec.end().value());
      rh.putInt(rec.totalLength());
      out.write(rh.array());
      out.write(rec.array(), rec.offset(), rec.totalLength());
    }
  }

  static void writeExit(OutputStream out) throws IOException {
    out.write(MSG_EXIT);
  }

  /**
   * Reads one reply.
   *
   * @throws EOFException if the process closes stdout (it died)
   * @throws ProtocolException if the bytes are not a reply
   */
  static Reply readReply(InputStream in) throws IOException {
    int status = in.read();
    if (status < 0) {
      throw new EOFException("stdout closed");
    }
    if (status == REPLY_PAGE) {
      return new Reply.Page(readFully(in, PageLayout.BLCKSZ));
    }
    if (status != REPLY_ERROR) {
      throw new ProtocolException(String.format("unexpected reply status byte 0x%02X", status));
    }
    byte[] head = readFully(in, 5);
    int kind = head[0] & 0xFF;
    int len = ByteBuffer.wrap(head, 1, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
    if (kind < ERROR_REJECTED || kind > ERROR_FATAL || len < 0 || len > MAX_ERROR_MESSAGE) {
      throw new ProtocolException(
          "malformed error reply (kind "
              + kind
              + ", length "
              + Integer.toUnsignedString(len)
              + ")");
    }
    return new Reply.Error(kind, new String(readFully(in, len), StandardCharsets.UTF_8));
  }

  private static byte[] readFully(InputStream in, int n) throws IOException {
    byte[] b = in.readNBytes(n);
    if (b.length < n) {
      throw new EOFException("stdout closed after " + b.length + " of " + n + " bytes");
    }
    return b;
  }
}
