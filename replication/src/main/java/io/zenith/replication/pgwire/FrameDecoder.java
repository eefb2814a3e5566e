package io.zenith.replication.pgwire;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;

/**
 * Splits typed messages (type byte, int32 length, body) off the byte stream and hands each body to
 * {@link #decodeBody}. The declared length is checked as soon as its five bytes are in, before any
 * of the body is waited for: a length below 4, above the type's limit, or an unknown type byte is a
 * {@link PgWireException} of kind PROTOCOL, so garbage input never makes us buffer more than the
 * limit. After the first error every further byte is dropped (the connection is to be closed).
 *
 * <p>Bodies are decoded into records that copy what they keep; nothing downstream holds a reference
 * to the cumulation buffer, so no message needs releasing. Not thread-safe: one per channel, used
 * on its event loop.
 */
abstract class FrameDecoder extends ByteToMessageDecoder {
  /** Limit for messages that carry no bulk data (PostgreSQL's PQ_SMALL_MESSAGE_LIMIT). */
  static final int SMALL_MESSAGE_LIMIT = 10_000;

  final int maxMessageSize;
  private boolean failed;

  FrameDecoder(int maxMessageSize) {
    PgWire.checkMaxMessageSize(maxMessageSize);
    this.maxMessageSize = maxMessageSize;
  }

  /** True once a protocol error was raised; input is then discarded. */
  final boolean failed() {
    return failed;
  }

  @Override
  protected final void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
    if (failed) {
      in.skipBytes(in.readableBytes());
      return;
    }
    try {
      decodeOne(in, out);
    } catch (PgWireException e) {
      failed = true;
      in.skipBytes(in.readableBytes());
      throw e;
    }
  }

  /** Decodes at most one message from {@code in}; returns without consuming if incomplete. */
  void decodeOne(ByteBuf in, List<Object> out) {
    decodeTyped(in, out);
  }

  final void decodeTyped(ByteBuf in, List<Object> out) {
    if (in.readableBytes() < 5) {
      return;
    }
    int r = in.readerIndex();
    byte type = in.getByte(r);
    int length = in.getInt(r + 1);
    int limit = lengthLimit(type);
    if (limit == 0) {
      throw PgWireException.protocol(
          "unknown " + direction() + " message type " + describeType(type));
    }
    if (length < 4) {
      throw PgWireException.protocol(
          "message type " + describeType(type) + " has invalid length " + length);
    }
    if (length > limit) {
      throw PgWireException.protocol(
          "message type "
              + describeType(type)
              + " of "
              + Integer.toUnsignedString(length)
              + " bytes exceeds the limit of "
              + limit
              + " bytes");
    }
    if (in.readableBytes() < 1 + length) {
      return;
    }
    ByteBuf body = in.slice(r + 5, length - 4);
    Object message = decodeBody((char) (type & 0xFF), body);
    in.skipBytes(1 + length);
    out.add(message);
  }

  /** The largest length word allowed for this type, or 0 if the type is unknown. */
  abstract int lengthLimit(byte type);

  /** "backend" or "frontend", for messages. */
  abstract String direction();

  /** Decodes one body; {@code body} is a slice valid only during the call. */
  abstract Object decodeBody(char type, ByteBuf body);

  static String describeType(byte type) {
    int t = type & 0xFF;
    return t >= 0x20 && t < 0x7F
        ? "'" + (char) t + "'"
        : "0x" + (t < 16 ? "0" : "") + Integer.toHexString(t);
  }
}
