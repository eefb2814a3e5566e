package io.zenith.replication.client;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.zenith.replication.pgwire.BackendMessage;
import io.zenith.replication.pgwire.BackendMessageEncoder;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import org.jspecify.annotations.Nullable;

/**
 * A scripted walsender on a plain socket, for server behaviour a test cannot make PostgreSQL
 * produce on demand (CopyDone with a next timeline, a gap, an error mid-stream). Accepts one
 * connection and runs the script on a virtual thread. Not thread-safe.
 */
final class FakeWalsender implements AutoCloseable {
  private final ServerSocket server;
  private final CompletableFuture<Void> done = new CompletableFuture<>();

  interface Script {
    void run(Conn conn) throws Exception;
  }

  /** One message from the client. */
  record Message(char type, byte[] body) {
    String text() {
      return new String(body, 0, Math.max(0, body.length - 1), StandardCharsets.UTF_8);
    }
  }

  FakeWalsender(Script script) throws IOException {
    server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
    Thread.ofVirtual()
        .start(
            () -> {
              try (Socket s = server.accept()) {
                s.setSoTimeout(20_000);
                script.run(new Conn(s));
                done.complete(null);
              } catch (Throwable t) {
                done.completeExceptionally(t);
              }
            });
  }

  int port() {
    return server.getLocalPort();
  }

  /** Completes when the script has run; fails with what the script threw. */
  CompletableFuture<Void> done() {
    return done;
  }

  @Override
  public void close() throws IOException {
    server.close();
  }

  static final class Conn {
    private final DataInputStream in;
    private final OutputStream out;

    Conn(Socket s) throws IOException {
      in = new DataInputStream(s.getInputStream());
      out = s.getOutputStream();
    }

    /** Reads the startup packet, answers AuthenticationOk, BackendKeyData, ReadyForQuery. */
    void acceptStartup() throws IOException {
      int len = in.readInt();
      in.readFully(new byte[len - 4]);
      send(BackendMessage.AuthenticationOk.INSTANCE);
      send(new BackendMessage.BackendKeyData(1, 2));
      send(BackendMessage.ReadyForQuery.IDLE);
    }

    void send(BackendMessage m) throws IOException {
      ByteBuf b = Unpooled.buffer();
      try {
        BackendMessageEncoder.encode(m, b);
        byte[] bytes = new byte[b.readableBytes()];
        b.readBytes(bytes);
        out.write(bytes);
        out.flush();
      } finally {
        b.release();
      }
    }

    /** The next message from the client, or null at end of stream. */
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

    /** Reads messages until one of {@code type}; returns it. */
    Message readUntil(char type) throws IOException {
      for (Message m = read(); m != null; m = read()) {
        if (m.type() == type) {
          return m;
        }
      }
      throw new IOException("client closed before sending '" + type + "'");
    }
  }
}
