package io.zenith.replication.pgwire;

import io.netty.buffer.ByteBuf;
import io.zenith.replication.pgwire.FrontendMessage.CancelRequest;
import io.zenith.replication.pgwire.FrontendMessage.CopyFail;
import io.zenith.replication.pgwire.FrontendMessage.GssEncRequest;
import io.zenith.replication.pgwire.FrontendMessage.PasswordMessage;
import io.zenith.replication.pgwire.FrontendMessage.Query;
import io.zenith.replication.pgwire.FrontendMessage.SslRequest;
import io.zenith.replication.pgwire.FrontendMessage.StartupMessage;
import io.zenith.replication.pgwire.FrontendMessage.Terminate;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Server side: bytes from a client in, {@link FrontendMessage} records out.
 *
 * <p>Starts in the startup phase, where packets have no type byte: SSLRequest and GSSENCRequest
 * keep it there (the client sends its StartupMessage next), a StartupMessage or CancelRequest ends
 * it. A startup packet longer than {@link PgWire#MAX_STARTUP_PACKET_SIZE} or shorter than 8 bytes
 * is a protocol error, as in PostgreSQL. After that, see {@link FrameDecoder}. Message types of the
 * extended query protocol and replication feedback outside COPY are not supported: unknown type,
 * protocol error.
 *
 * <p>One instance per channel; not thread-safe.
 */
public final class FrontendMessageDecoder extends FrameDecoder {
  private boolean startupPhase = true;

  public FrontendMessageDecoder() {
    this(PgWire.DEFAULT_MAX_MESSAGE_SIZE);
  }

  /**
   * @param maxMessageSize largest length word accepted for Query and CopyData messages
   */
  public FrontendMessageDecoder(int maxMessageSize) {
    super(maxMessageSize);
  }

  @Override
  String direction() {
    return "frontend";
  }

  @Override
  void decodeOne(ByteBuf in, List<Object> out) {
    if (startupPhase) {
      decodeStartup(in, out);
    } else {
      decodeTyped(in, out);
    }
  }

  private void decodeStartup(ByteBuf in, List<Object> out) {
    if (in.readableBytes() < 4) {
      return;
    }
    int r = in.readerIndex();
    int length = in.getInt(r);
    if (length < 8 || length > PgWire.MAX_STARTUP_PACKET_SIZE) {
      throw PgWireException.protocol(
          "invalid length of startup packet: "
              + Integer.toUnsignedString(length)
              + " bytes (must be 8 to "
              + PgWire.MAX_STARTUP_PACKET_SIZE
              + ")");
    }
    if (in.readableBytes() < length) {
      return;
    }
    MessageReader body = new MessageReader(in.slice(r + 4, length - 4), "startup packet");
    int code = body.int32();
    FrontendMessage m;
    if (code == PgWire.SSL_REQUEST_CODE || code == PgWire.GSSENC_REQUEST_CODE) {
      body.end();
      m = code == PgWire.SSL_REQUEST_CODE ? SslRequest.INSTANCE : GssEncRequest.INSTANCE;
    } else if (code == PgWire.CANCEL_REQUEST_CODE) {
      m = new CancelRequest(body.int32(), body.int32());
      body.end();
      startupPhase = false;
    } else {
      Map<String, String> params = new LinkedHashMap<>();
      for (String name = body.cstring(); !name.isEmpty(); name = body.cstring()) {
        String value = body.cstring();
        if (params.putIfAbsent(name, value) != null) {
          throw body.malformed("parameter \"" + name + "\" given twice");
        }
      }
      body.end();
      m = new StartupMessage(code, params);
      startupPhase = false;
    }
    in.skipBytes(length);
    out.add(m);
  }

  @Override
  int lengthLimit(byte type) {
    return switch (type) {
      case 'p', 'c', 'X' -> SMALL_MESSAGE_LIMIT;
      case 'Q', 'd', 'f' -> maxMessageSize;
      default -> 0;
    };
  }

  @Override
  Object decodeBody(char type, ByteBuf body) {
    MessageReader r = new MessageReader(body, name(type));
    FrontendMessage m =
        switch (type) {
          case 'p' -> new PasswordMessage(r.cstring());
          case 'Q' -> new Query(r.cstring());
          case 'd' -> new CopyData(r.rest());
          case 'c' -> CopyDone.INSTANCE;
          case 'f' -> new CopyFail(r.cstring());
          case 'X' -> Terminate.INSTANCE;
          default -> throw new IllegalStateException("type checked by lengthLimit: " + type);
        };
    r.end();
    return m;
  }

  private static String name(char type) {
    String name =
        switch (type) {
          case 'p' -> "PasswordMessage";
          case 'Q' -> "Query";
          case 'd' -> "CopyData";
          case 'c' -> "CopyDone";
          case 'f' -> "CopyFail";
          case 'X' -> "Terminate";
          default -> "unknown";
        };
    return name + " ('" + type + "')";
  }
}
