package io.zenith.replication.pgwire;

import io.netty.buffer.ByteBuf;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationCleartextPassword;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationMd5Password;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationOk;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationOther;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationSasl;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationSaslContinue;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationSaslFinal;
import io.zenith.replication.pgwire.BackendMessage.BackendKeyData;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.CopyBothResponse;
import io.zenith.replication.pgwire.BackendMessage.CopyInResponse;
import io.zenith.replication.pgwire.BackendMessage.CopyOutResponse;
import io.zenith.replication.pgwire.BackendMessage.DataRow;
import io.zenith.replication.pgwire.BackendMessage.EmptyQueryResponse;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.Field;
import io.zenith.replication.pgwire.BackendMessage.NegotiateProtocolVersion;
import io.zenith.replication.pgwire.BackendMessage.NoticeResponse;
import io.zenith.replication.pgwire.BackendMessage.NotificationResponse;
import io.zenith.replication.pgwire.BackendMessage.ParameterStatus;
import io.zenith.replication.pgwire.BackendMessage.ReadyForQuery;
import io.zenith.replication.pgwire.BackendMessage.RowDescription;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Client side: bytes from a server in, {@link BackendMessage} records out. See {@link FrameDecoder}
 * for framing, limits and errors (a {@link PgWireException} of kind PROTOCOL, wrapped by Netty in a
 * {@code DecoderException}).
 *
 * <p>Emits records that own copies of their data; releases nothing downstream. One instance per
 * channel; not thread-safe.
 */
public final class BackendMessageDecoder extends FrameDecoder {

  public BackendMessageDecoder() {
    this(PgWire.DEFAULT_MAX_MESSAGE_SIZE);
  }

  /**
   * @param maxMessageSize largest length word accepted for messages that carry data
   */
  public BackendMessageDecoder(int maxMessageSize) {
    super(maxMessageSize);
  }

  @Override
  String direction() {
    return "backend";
  }

  @Override
  int lengthLimit(byte type) {
    return switch (type) {
      case 'R', 'K', 'Z', 'C', 'I', 'c' -> SMALL_MESSAGE_LIMIT;
      case 'S', 'T', 'D', 'E', 'N', 'G', 'H', 'W', 'd', 'A', 'v' -> maxMessageSize;
      default -> 0;
    };
  }

  @Override
  Object decodeBody(char type, ByteBuf body) {
    MessageReader r = new MessageReader(body, name(type));
    BackendMessage m =
        switch (type) {
          case 'R' -> authentication(r);
          case 'S' -> new ParameterStatus(r.cstring(), r.cstring());
          case 'K' -> new BackendKeyData(r.int32(), r.int32());
          case 'Z' -> readyForQuery(r);
          case 'T' -> rowDescription(r);
          case 'D' -> dataRow(r);
          case 'C' -> new CommandComplete(r.cstring());
          case 'I' -> EmptyQueryResponse.INSTANCE;
          case 'E' -> new ErrorResponse(notice(r));
          case 'N' -> new NoticeResponse(notice(r));
          case 'G' -> {
            int format = r.int8();
            yield new CopyInResponse(format, formats(r));
          }
          case 'H' -> {
            int format = r.int8();
            yield new CopyOutResponse(format, formats(r));
          }
          case 'W' -> {
            int format = r.int8();
            yield new CopyBothResponse(format, formats(r));
          }
          case 'd' -> new CopyData(r.rest());
          case 'c' -> CopyDone.INSTANCE;
          case 'A' -> new NotificationResponse(r.int32(), r.cstring(), r.cstring());
          case 'v' -> negotiate(r);
          default -> throw new IllegalStateException("type checked by lengthLimit: " + type);
        };
    r.end();
    return m;
  }

  private static BackendMessage authentication(MessageReader r) {
    int code = r.int32();
    return switch (code) {
      case 0 -> AuthenticationOk.INSTANCE;
      case 3 -> AuthenticationCleartextPassword.INSTANCE;
      case 5 -> new AuthenticationMd5Password(r.bytes(4));
      case 10 -> {
        List<String> mechanisms = new ArrayList<>();
        for (String m = r.cstring(); !m.isEmpty(); m = r.cstring()) {
          mechanisms.add(m);
        }
        yield new AuthenticationSasl(mechanisms);
      }
      case 11 -> new AuthenticationSaslContinue(r.rest());
      case 12 -> new AuthenticationSaslFinal(r.rest());
      default -> new AuthenticationOther(code, r.rest());
    };
  }

  private static ReadyForQuery readyForQuery(MessageReader r) {
    byte status = r.int8();
    if (status != 'I' && status != 'T' && status != 'E') {
      throw r.malformed("transaction status " + describeType(status) + " is not I, T or E");
    }
    return new ReadyForQuery((char) status);
  }

  private static RowDescription rowDescription(MessageReader r) {
    int n = r.count16("fields");
    List<Field> fields = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      fields.add(
          new Field(r.cstring(), r.int32(), r.int16(), r.int32(), r.int16(), r.int32(), r.int16()));
    }
    return new RowDescription(fields);
  }

  private static DataRow dataRow(MessageReader r) {
    int n = r.count16("columns");
    List<byte[]> values = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      int len = r.int32();
      if (len < -1) {
        throw r.malformed("column " + i + " has length " + len);
      }
      values.add(len == -1 ? null : r.bytes(len));
    }
    return new DataRow(values);
  }

  private static List<Integer> formats(MessageReader r) {
    int n = r.count16("column formats");
    List<Integer> formats = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      formats.add((int) r.int16());
    }
    return formats;
  }

  private static NegotiateProtocolVersion negotiate(MessageReader r) {
    int minor = r.int32();
    int n = r.int32();
    if (n < 0 || n > r.remaining()) {
      throw r.malformed("impossible number of options " + n);
    }
    List<String> options = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      options.add(r.cstring());
    }
    return new NegotiateProtocolVersion(minor, options);
  }

  /** Error and notice fields: a type byte and a string each, ended by a zero byte. */
  static PgNotice notice(MessageReader r) {
    Map<Character, String> fields = new LinkedHashMap<>();
    for (byte t = r.int8(); t != 0; t = r.int8()) {
      fields.put((char) (t & 0xFF), r.cstring());
    }
    return PgNotice.fromFields(fields);
  }

  private static String name(char type) {
    String name =
        switch (type) {
          case 'R' -> "Authentication";
          case 'S' -> "ParameterStatus";
          case 'K' -> "BackendKeyData";
          case 'Z' -> "ReadyForQuery";
          case 'T' -> "RowDescription";
          case 'D' -> "DataRow";
          case 'C' -> "CommandComplete";
          case 'I' -> "EmptyQueryResponse";
          case 'E' -> "ErrorResponse";
          case 'N' -> "NoticeResponse";
          case 'G' -> "CopyInResponse";
          case 'H' -> "CopyOutResponse";
          case 'W' -> "CopyBothResponse";
          case 'd' -> "CopyData";
          case 'c' -> "CopyDone";
          case 'A' -> "NotificationResponse";
          case 'v' -> "NegotiateProtocolVersion";
          default -> "unknown";
        };
    return name + " ('" + type + "')";
  }
}
