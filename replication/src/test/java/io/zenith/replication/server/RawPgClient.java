package io.zenith.replication.server;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.zenith.replication.pgwire.FrontendMessage;
import io.zenith.replication.pgwire.FrontendMessageEncoder;
import io.zenith.replication.pgwire.PgWire;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * A blocking protocol client on a plain socket, for sending bytes a real client never would and for
 * not reading at all. Not thread-safe.
 */
final class RawPgClient implements AutoCloseable {
  final Socket socket;
  private final DataInputStream in;

  /** One message from the server: type and body. */
  record Message(char type, byte[] body) {
    String text() {
      return new String(body, StandardCharsets.UTF_8);
    }

    /** The value of an error field ('C' SQLSTATE, 'M' message, 'S' severity). */
    @Nullable String field(char code) {
      int i = 0;
      while (i < body.length && body[i] != 0) {
        int end = i + 1;
        while (body[end] != 0) {
          end++;
        }
        if (body[i] == code) {
          return new String(body, i + 1, end - i - 1, StandardCharsets.UTF_8);
        }
        i = end + 1;
      }
      return null;
    }
  }

  RawPgClient(int port) throws IOException {
    socket = new Socket();
    socket.connect(new InetSocketAddress("127.0.0.1", port), 5000);
    socket.setSoTimeout(10_000);
    in = new DataInputStream(socket.getInputStream());
  }

  void send(byte[] bytes) throws IOException {
    socket.getOutputStream().write(bytes);
    socket.getOutputStream().flush();
  }

  void send(FrontendMessage m) throws IOException {
    ByteBuf b = Unpooled.buffer();
    try {
      FrontendMessageEncoder.encode(m, b);
      byte[] bytes = new byte[b.readableBytes()];
      b.readBytes(bytes);
      send(bytes);
    } finally {
      b.release();
    }
  }

  void startup(String user) throws IOException {
    startup(user, Map.of());
  }

  /** A StartupMessage with more parameters, e.g. {@code replication=true}. */
  void startup(String user, Map<String, String> parameters) throws IOException {
    Map<String, String> p = new LinkedHashMap<>();
    p.put("user", user);
    p.putAll(parameters);
    send(new FrontendMessage.StartupMessage(PgWire.PROTOCOL_3_0, p));
  }

  /** The next message that is not CopyData; fails at end of stream. */
  Message readSkippingCopyData() throws IOException {
    Message m = readSkippingCopyDataOrEnd();
    if (m == null) {
      throw new EOFException("connection closed");
    }
    return m;
  }

  /** The next message that is not CopyData, or null at end of stream. */
  @Nullable Message readSkippingCopyDataOrEnd() throws IOException {
    for (Message m = read(); m != null; m = read()) {
      if (m.type() != 'd') {
        return m;
      }
    }
    return null;
  }

  /** Reads up to and including ReadyForQuery; returns the last message before it. */
  @Nullable Message untilReady() throws IOException {
    Message last = null;
    for (Message m = read(); m != null; m = read()) {
      if (m.type() == 'Z') {
        return last;
      }
      last = m;
    }
    throw new EOFException("connection closed before ReadyForQuery");
  }

  int readByte() throws IOException {
    return in.read();
  }

  /** The next message, or null at end of stream. */
  @Nullable Message read() throws IOException {
    int type = in.read();
    if (type < 0) {
      return null;
    }
    int len = in.readInt();
    byte[] body = new byte[len - 4];
    in.readFully(body);
    return new Message((char) type, body);
  }

  @Override
  public void close() throws IOException {
    socket.close();
  }
}
