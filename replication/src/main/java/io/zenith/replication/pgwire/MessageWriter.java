package io.zenith.replication.pgwire;

import io.netty.buffer.ByteBuf;
import java.nio.charset.StandardCharsets;

/** Writing helpers shared by the encoders: type byte, back-patched length, C strings. */
final class MessageWriter {
  private MessageWriter() {}

  /** Writes the type byte and a placeholder length; returns the length word's index. */
  static int begin(ByteBuf out, char type) {
    out.writeByte(type);
    int at = out.writerIndex();
    out.writeInt(0);
    return at;
  }

  /** Writes a length word without a type byte (startup packets); returns its index. */
  static int beginUntyped(ByteBuf out) {
    int at = out.writerIndex();
    out.writeInt(0);
    return at;
  }

  /** Back-patches the length word at {@code at}: it counts itself and the body. */
  static void finish(ByteBuf out, int at) {
    out.setInt(at, out.writerIndex() - at);
  }

  static void cstring(ByteBuf out, String s) {
    if (s.indexOf('\0') >= 0) {
      throw new IllegalArgumentException("protocol strings cannot contain a zero byte: " + s);
    }
    out.writeCharSequence(s, StandardCharsets.UTF_8);
    out.writeByte(0);
  }
}
