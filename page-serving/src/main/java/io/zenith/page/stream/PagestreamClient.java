package io.zenith.page.stream;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A blocking client of the pageserver's pagestream endpoint over a plain socket: the libpq startup
 * (trust or cleartext password), {@code pagestream <tenant> <timeline> [<lsn>]}, then requests and
 * answers as CopyData messages ({@code docs/formats/pagestream.md}). Requests may be pipelined:
 * {@link #send} any number (up to the server's window they are worked on at once; beyond it TCP
 * holds them), {@link #flush}, then {@link #receive} the answers in the same order.
 *
 * <p>Chosen over a reactor-netty client because its user, the compute agent's FUSE threads, block
 * anyway; a socket per FUSE worker keeps requests of different files apart.
 *
 * <p>Thread-safety: one thread may send while another receives ({@link #send}/{@link #flush} lock
 * the output, {@link #receive} the input); {@link #call} and {@link #close} take both.
 */
public final class PagestreamClient implements AutoCloseable {
  /** Largest message accepted from the server: a batch of pages plus its header, with room. */
  static final int MAX_MESSAGE = 512 * 1024;

  private final Socket socket;
  private final DataInputStream in;
  private final DataOutputStream out;
  private final Object sendLock = new Object();
  private final Object receiveLock = new Object();

  private PagestreamClient(Socket socket) throws IOException {
    this.socket = socket;
    this.in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 64 * 1024));
    this.out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream(), 64 * 1024));
  }

  /**
   * Connects and starts the pagestream of a timeline.
   *
   * @param password for cleartext password authentication; null if the server trusts
   * @param timeout bounds the connection and every read: longer than the server's LSN wait
   * @throws PagestreamException with the server's SQLSTATE if it refuses (unknown timeline: 42704)
   */
  public static PagestreamClient connect(
      String host,
      int port,
      String user,
      String password,
      TenantId tenant,
      TimelineId timeline,
      Duration timeout)
      throws IOException {
    return connect(host, port, user, password, tenant, timeline, null, timeout);
  }

  /**
   * As {@link #connect(String, int, String, String, TenantId, TimelineId, Duration)}; with {@code
   * pin}, the pageserver keeps that LSN of the timeline readable (GC does not pass it) for as long
   * as the stream runs, and refuses the stream ({@code 22023}) if GC has passed it already.
   *
   * @param pin the LSN to hold readable, or null for none
   */
  public static PagestreamClient connect(
      String host,
      int port,
      String user,
      String password,
      TenantId tenant,
      TimelineId timeline,
      Lsn pin,
      Duration timeout)
      throws IOException {
    Socket s = new Socket();
    try {
      s.setTcpNoDelay(true);
      s.connect(new InetSocketAddress(host, port), (int) timeout.toMillis());
      s.setSoTimeout((int) timeout.toMillis());
      PagestreamClient c = new PagestreamClient(s);
      c.startup(user, password);
      c.start(tenant, timeline, pin);
      return c;
    } catch (IOException | RuntimeException e) {
      s.close();
      throw e;
    }
  }

  private void startup(String user, String password) throws IOException {
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    DataOutputStream d = new DataOutputStream(body);
    d.writeInt(196608);
    for (String kv : new String[] {"user", user, "database", "postgres"}) {
      d.write(kv.getBytes(StandardCharsets.UTF_8));
      d.write(0);
    }
    d.write(0);
    out.writeInt(4 + body.size());
    body.writeTo(out);
    out.flush();
    while (true) {
      Message m = read();
      switch (m.type()) {
        case 'R' -> {
          int code = m.int32(0);
          if (code == 3 && password != null) {
            byte[] pw = (password + "\0").getBytes(StandardCharsets.UTF_8);
            write('p', pw);
            out.flush();
          } else if (code == 3) {
            throw new PagestreamException(
                null, "the server asks for a password and none was given");
          } else if (code != 0) {
            throw new PagestreamException(null, "authentication method " + code + " not supported");
          }
        }
        case 'Z' -> {
          return;
        }
        case 'E' -> throw m.error();
        default -> {} // ParameterStatus, BackendKeyData, NoticeResponse, NegotiateProtocolVersion
      }
    }
  }

  private void start(TenantId tenant, TimelineId timeline, Lsn pin) throws IOException {
    String command =
        "pagestream " + tenant + " " + timeline + (pin == null ? "" : " " + pin) + "\0";
    write('Q', command.getBytes(StandardCharsets.UTF_8));
    out.flush();
    while (true) {
      Message m = read();
      switch (m.type()) {
        case 'W' -> {
          return;
        }
        case 'E' -> {
          PagestreamException e = m.error();
          drainToReady();
          throw e;
        }
        case 'N' -> {}
        default -> throw unexpected(m);
      }
    }
  }

  /** Queues a request (written when the buffer fills or on {@link #flush}). */
  public void send(PagestreamRequest r) throws IOException {
    synchronized (sendLock) {
      write('d', PagestreamRequest.encode(r));
    }
  }

  public void flush() throws IOException {
    synchronized (sendLock) {
      out.flush();
    }
  }

  /**
   * The next answer, in request order (the parts of a relations answer joined).
   *
   * @throws PagestreamException for a malformed answer or an ErrorResponse that ends the stream
   */
  public PagestreamResponse receive() throws IOException {
    synchronized (receiveLock) {
      List<PagestreamResponse.Relation> parts = null;
      while (true) {
        PagestreamResponse.Decoded d = PagestreamResponse.decode(copyData());
        if (d.response() instanceof PagestreamResponse.Relations r && (d.more() || parts != null)) {
          if (parts == null) {
            parts = new ArrayList<>();
          }
          parts.addAll(r.relations());
          if (d.more()) {
            continue;
          }
          return new PagestreamResponse.Relations(r.id(), parts);
        }
        return d.response();
      }
    }
  }

  /** Sends one request and waits for its answer (no other request may be outstanding). */
  public PagestreamResponse call(PagestreamRequest r) throws IOException {
    synchronized (receiveLock) {
      synchronized (sendLock) {
        send(r);
        flush();
      }
      return receive();
    }
  }

  private byte[] copyData() throws IOException {
    while (true) {
      Message m = read();
      switch (m.type()) {
        case 'd' -> {
          return m.body();
        }
        case 'N' -> {}
        case 'E' -> throw m.error();
        case 'c' -> throw new PagestreamException(null, "the server ended the stream");
        default -> throw unexpected(m);
      }
    }
  }

  /**
   * Ends the stream: CopyDone, the answers still due are read and dropped up to ReadyForQuery
   * (bounded by the read timeout), Terminate, and the socket is closed.
   */
  @Override
  public void close() throws IOException {
    synchronized (receiveLock) {
      synchronized (sendLock) {
        try {
          if (!socket.isClosed()) {
            write('c', new byte[0]);
            out.flush();
            drainToReady();
            write('X', new byte[0]);
            out.flush();
          }
        } catch (IOException e) {
          // The connection is going away anyway; the socket is closed below.
        } finally {
          socket.close();
        }
      }
    }
  }

  /**
   * Closes the socket without ending the stream: for a connection that failed or timed out, whose
   * {@link #close} would wait for answers that may never come. May be called from any thread.
   */
  public void abort() {
    try {
      socket.close();
    } catch (IOException e) {
      // Nothing is left to release.
    }
  }

  private void drainToReady() throws IOException {
    while (true) {
      Message m = read();
      if (m.type() == 'Z') {
        return;
      }
    }
  }

  private void write(char type, byte[] body) throws IOException {
    out.write(type);
    out.writeInt(4 + body.length);
    out.write(body);
  }

  private Message read() throws IOException {
    int type = in.read();
    if (type < 0) {
      throw new EOFException("the pageserver closed the connection");
    }
    int len = in.readInt();
    if (len < 4 || len - 4 > MAX_MESSAGE) {
      throw new PagestreamException(
          null, "message '" + (char) type + "' of " + len + " bytes from the server");
    }
    byte[] body = new byte[len - 4];
    in.readFully(body);
    return new Message((char) type, body);
  }

  private static PagestreamException unexpected(Message m) {
    return new PagestreamException(null, "unexpected message '" + m.type() + "' from the server");
  }

  private record Message(char type, byte[] body) {
    int int32(int at) {
      return ((body[at] & 0xFF) << 24)
          | ((body[at + 1] & 0xFF) << 16)
          | ((body[at + 2] & 0xFF) << 8)
          | (body[at + 3] & 0xFF);
    }

    /** An ErrorResponse's SQLSTATE and message. */
    PagestreamException error() {
      Map<Character, String> fields = new HashMap<>();
      int i = 0;
      while (i < body.length && body[i] != 0) {
        char code = (char) body[i++];
        int end = i;
        while (end < body.length && body[end] != 0) {
          end++;
        }
        fields.put(code, new String(body, i, end - i, StandardCharsets.UTF_8));
        i = end + 1;
      }
      return new PagestreamException(
          fields.get('C'), fields.getOrDefault('S', "ERROR") + ": " + fields.get('M'));
    }
  }
}
