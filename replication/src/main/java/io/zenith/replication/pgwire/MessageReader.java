package io.zenith.replication.pgwire;

import io.netty.buffer.ByteBuf;
import java.nio.charset.StandardCharsets;

/**
 * Bounds-checked reads of one message body. Every read that would pass the end of the body, a
 * string without its terminating zero and bytes left over at the end are protocol errors naming the
 * message. Reads in bulk (one buffer access per field), which matters under Netty's paranoid leak
 * detector, where every access is recorded.
 *
 * <p>Not thread-safe; used inside one {@code decode} call.
 */
final class MessageReader {
  private final ByteBuf body;
  private final String what;

  /**
   * @param body the message body (after type byte and length); read from its reader index to its
   *     writer index; not retained
   * @param what the message's name for error messages, e.g. {@code "RowDescription ('T')"}
   */
  MessageReader(ByteBuf body, String what) {
    this.body = body;
    this.what = what;
  }

  int remaining() {
    return body.readableBytes();
  }

  byte int8() {
    need(1, "a byte");
    return body.readByte();
  }

  short int16() {
    need(2, "an int16");
    return body.readShort();
  }

  int int32() {
    need(4, "an int32");
    return body.readInt();
  }

  long int64() {
    need(8, "an int64");
    return body.readLong();
  }

  /** A count (int16) that must be non-negative. */
  int count16(String of) {
    short n = int16();
    if (n < 0) {
      throw malformed("negative number of " + of + ": " + n);
    }
    return n;
  }

  byte[] bytes(int n) {
    if (n < 0) {
      throw malformed("negative length " + n);
    }
    need(n, n + " bytes");
    byte[] b = new byte[n];
    body.readBytes(b);
    return b;
  }

  byte[] rest() {
    return bytes(body.readableBytes());
  }

  /** A zero-terminated UTF-8 string. */
  String cstring() {
    int len = body.bytesBefore((byte) 0);
    if (len < 0) {
      throw malformed("string without terminating zero byte");
    }
    String s = body.toString(body.readerIndex(), len, StandardCharsets.UTF_8);
    body.skipBytes(len + 1);
    return s;
  }

  /** Fails unless the whole body was read. */
  void end() {
    if (body.isReadable()) {
      throw malformed(body.readableBytes() + " unexpected bytes at the end");
    }
  }

  PgWireException malformed(String problem) {
    return PgWireException.protocol("malformed " + what + " message: " + problem);
  }

  private void need(int n, String item) {
    if (body.readableBytes() < n) {
      throw malformed(
          "expected "
              + item
              + " but only "
              + body.readableBytes()
              + " bytes of the message are left");
    }
  }
}
