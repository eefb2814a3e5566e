package io.zenith.wal.testing;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A TCP proxy on a loopback port in front of a real HTTP server (s3proxy) that injects the faults
 * of a misbehaving S3 endpoint: {@link Mode#ERRORS} answers every request with {@code 500
 * InternalError} (S3's XML error body) without forwarding it, {@link Mode#SLOW} forwards with a
 * delay before every chunk the client sends, {@link Mode#PASS} forwards as is. A mode applies to
 * connections accepted after it is set, and {@link #mode} closes the open ones, so that the
 * clients' kept-alive connections see it at once. Bytes pass unchanged (the Host header too), so
 * request signatures stay valid. Threads are virtual, one per direction per connection.
 * Thread-safe.
 */
public final class FaultProxy implements AutoCloseable {
  /** What the proxy does with new connections. */
  public enum Mode {
    PASS,
    ERRORS,
    SLOW
  }

  private static final byte[] ERROR_BODY =
      ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>"
              + "injected by the test's fault proxy</Message></Error>")
          .getBytes(StandardCharsets.UTF_8);

  private final int upstreamPort;
  private final ServerSocket server;
  private final ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor();
  private final Set<Socket> open = ConcurrentHashMap.newKeySet();
  private final AtomicLong errorsAnswered = new AtomicLong();
  private volatile Mode mode = Mode.PASS;
  private volatile Duration delay = Duration.ofMillis(500);
  private volatile boolean closed;

  private FaultProxy(int upstreamPort) throws IOException {
    this.upstreamPort = upstreamPort;
    this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    threads.submit(this::acceptLoop);
  }

  /** A proxy to {@code upstreamPort} on loopback, passing everything. */
  public static FaultProxy start(int upstreamPort) {
    try {
      return new FaultProxy(upstreamPort);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public int port() {
    return server.getLocalPort();
  }

  /** {@code http://127.0.0.1:<port>}, the endpoint clients use. */
  public String endpoint() {
    return "http://127.0.0.1:" + port();
  }

  /** Sets the mode (SLOW with {@code slowDelay} per chunk) and closes the open connections. */
  public void mode(Mode m, Duration slowDelay) {
    this.delay = slowDelay;
    this.mode = m;
    for (Socket s : open) {
      closeQuietly(s);
    }
  }

  /** Sets the mode, closing the open connections. */
  public void mode(Mode m) {
    mode(m, delay);
  }

  /** Requests answered with 500 so far. */
  public long errorsAnswered() {
    return errorsAnswered.get();
  }

  private void acceptLoop() {
    while (!closed) {
      try {
        Socket client = server.accept();
        open.add(client);
        Mode m = mode;
        threads.submit(() -> serve(client, m));
      } catch (IOException e) {
        if (!closed) {
          System.err.println("fault proxy: accept failed: " + e);
        }
      }
    }
  }

  private void serve(Socket client, Mode m) {
    try (client) {
      if (m == Mode.ERRORS) {
        answerErrors(client);
        return;
      }
      try (Socket up = new Socket()) {
        up.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), upstreamPort), 5000);
        open.add(up);
        InputStream fromUp = up.getInputStream();
        OutputStream toClient = client.getOutputStream();
        threads.submit(() -> pump(fromUp, toClient, null, up, client));
        pump(
            client.getInputStream(),
            up.getOutputStream(),
            m == Mode.SLOW ? delay : null,
            client,
            up);
      } finally {
        open.remove(client);
      }
    } catch (IOException e) {
      // a connection refused upstream (s3proxy stopped) or closed by a mode change: the client
      // sees its connection closed, as it would with a dead server
    }
  }

  private void pump(InputStream in, OutputStream out, Duration delayEach, Socket from, Socket to) {
    byte[] buf = new byte[64 * 1024];
    try {
      int n;
      while ((n = in.read(buf)) >= 0) {
        if (delayEach != null) {
          Thread.sleep(delayEach.toMillis());
        }
        out.write(buf, 0, n);
        out.flush();
      }
    } catch (IOException | InterruptedException e) {
      // closed by the other direction or a mode change
    } finally {
      open.remove(from);
      open.remove(to);
      closeQuietly(from);
      closeQuietly(to);
    }
  }

  /**
   * Answers each request on the connection with a 500: reads its head and, unless the client waits
   * for {@code 100-continue}, its body (Content-Length), then writes the error; ends with the
   * connection.
   */
  private void answerErrors(Socket client) throws IOException {
    InputStream in = client.getInputStream();
    OutputStream out = client.getOutputStream();
    while (true) {
      String head = readHead(in);
      if (head == null) {
        return;
      }
      String lower = head.toLowerCase(Locale.ROOT);
      boolean expectContinue = lower.contains("\r\nexpect: 100-continue");
      long length = contentLength(lower);
      if (!expectContinue && length > 0) {
        in.skipNBytes(length);
      }
      String response =
          "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: "
              + ERROR_BODY.length
              + "\r\n"
              + (expectContinue ? "Connection: close\r\n" : "")
              + "\r\n";
      out.write(response.getBytes(StandardCharsets.US_ASCII));
      out.write(ERROR_BODY);
      out.flush();
      errorsAnswered.incrementAndGet();
      if (expectContinue) {
        return; // its body was never sent: this connection cannot carry another request
      }
    }
  }

  private static long contentLength(String lowerHead) {
    int i = lowerHead.indexOf("\r\ncontent-length:");
    if (i < 0) {
      return 0;
    }
    int end = lowerHead.indexOf("\r\n", i + 2);
    return Long.parseLong(lowerHead.substring(i + 17, end < 0 ? lowerHead.length() : end).trim());
  }

  /** The request head up to the empty line; null at the end of the stream. */
  private static String readHead(InputStream in) throws IOException {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    int state = 0;
    while (state < 4) {
      int c = in.read();
      if (c < 0) {
        return null;
      }
      b.write(c);
      state =
          (c == '\r' && (state == 0 || state == 2)) || (c == '\n' && (state == 1 || state == 3))
              ? state + 1
              : (c == '\r' ? 1 : 0);
      if (b.size() > 64 * 1024) {
        throw new IOException("request head too large");
      }
    }
    return b.toString(StandardCharsets.US_ASCII);
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // closing
    }
  }

  @Override
  public void close() {
    closed = true;
    try {
      server.close();
    } catch (IOException e) {
      // closing
    }
    for (Socket s : open) {
      closeQuietly(s);
    }
    threads.shutdownNow();
  }
}
