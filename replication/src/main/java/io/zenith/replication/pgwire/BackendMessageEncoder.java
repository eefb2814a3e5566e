package io.zenith.replication.pgwire;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler.Sharable;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.MessageToByteEncoder;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationCleartextPassword;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationMd5Password;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationOk;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationOther;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationSasl;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationSaslContinue;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationSaslFinal;
import io.zenith.replication.pgwire.BackendMessage.BackendKeyData;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.CopyResponse;
import io.zenith.replication.pgwire.BackendMessage.DataRow;
import io.zenith.replication.pgwire.BackendMessage.EmptyQueryResponse;
import io.zenith.replication.pgwire.BackendMessage.EncryptionRefused;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.Field;
import io.zenith.replication.pgwire.BackendMessage.NegotiateProtocolVersion;
import io.zenith.replication.pgwire.BackendMessage.NoticeResponse;
import io.zenith.replication.pgwire.BackendMessage.NotificationResponse;
import io.zenith.replication.pgwire.BackendMessage.ParameterStatus;
import io.zenith.replication.pgwire.BackendMessage.ReadyForQuery;
import io.zenith.replication.pgwire.BackendMessage.RowDescription;
import io.zenith.wal.Lsn;
import java.util.Map;

/**
 * Server side: {@link BackendMessage} records in, bytes out. Other outbound objects (raw {@code
 * ByteBuf}s such as streamed COPY payloads) pass through untouched. Stateless and {@link Sharable}.
 */
@Sharable
public final class BackendMessageEncoder extends MessageToByteEncoder<BackendMessage> {

  public BackendMessageEncoder() {
    super(BackendMessage.class);
  }

  @Override
  protected ByteBuf allocateBuffer(
      ChannelHandlerContext ctx, BackendMessage msg, boolean preferDirect) {
    int size = msg instanceof CopyData d ? 5 + d.data().length : 256;
    return preferDirect ? ctx.alloc().ioBuffer(size) : ctx.alloc().heapBuffer(size);
  }

  @Override
  protected void encode(ChannelHandlerContext ctx, BackendMessage msg, ByteBuf out) {
    encode(msg, out);
  }

  /** Appends the wire form of {@code msg} to {@code out}. */
  public static void encode(BackendMessage msg, ByteBuf out) {
    switch (msg) {
      case AuthenticationOk m -> auth(out, 0, null);
      case AuthenticationCleartextPassword m -> auth(out, 3, null);
      case AuthenticationMd5Password m -> auth(out, 5, m.salt());
      case AuthenticationSasl m -> {
        int at = MessageWriter.begin(out, 'R');
        out.writeInt(10);
        m.mechanisms().forEach(s -> MessageWriter.cstring(out, s));
        out.writeByte(0);
        MessageWriter.finish(out, at);
      }
      case AuthenticationSaslContinue m -> auth(out, 11, m.data());
      case AuthenticationSaslFinal m -> auth(out, 12, m.data());
      case AuthenticationOther m -> auth(out, m.code(), m.data());
      case ParameterStatus m -> {
        int at = MessageWriter.begin(out, 'S');
        MessageWriter.cstring(out, m.name());
        MessageWriter.cstring(out, m.value());
        MessageWriter.finish(out, at);
      }
      case BackendKeyData m -> {
        int at = MessageWriter.begin(out, 'K');
        out.writeInt(m.processId()).writeInt(m.secretKey());
        MessageWriter.finish(out, at);
      }
      case ReadyForQuery m -> {
        int at = MessageWriter.begin(out, 'Z');
        out.writeByte(m.transactionStatus());
        MessageWriter.finish(out, at);
      }
      case RowDescription m -> {
        int at = MessageWriter.begin(out, 'T');
        out.writeShort(m.fields().size());
        for (Field f : m.fields()) {
          MessageWriter.cstring(out, f.name());
          out.writeInt(f.tableOid()).writeShort(f.columnAttribute()).writeInt(f.typeOid());
          out.writeShort(f.typeSize()).writeInt(f.typeModifier()).writeShort(f.format());
        }
        MessageWriter.finish(out, at);
      }
      case DataRow m -> {
        int at = MessageWriter.begin(out, 'D');
        out.writeShort(m.values().size());
        for (byte[] v : m.values()) {
          if (v == null) {
            out.writeInt(-1);
          } else {
            out.writeInt(v.length).writeBytes(v);
          }
        }
        MessageWriter.finish(out, at);
      }
      case CommandComplete m -> {
        int at = MessageWriter.begin(out, 'C');
        MessageWriter.cstring(out, m.tag());
        MessageWriter.finish(out, at);
      }
      case EmptyQueryResponse m -> MessageWriter.finish(out, MessageWriter.begin(out, 'I'));
      case ErrorResponse m -> notice(out, 'E', m.notice());
      case NoticeResponse m -> notice(out, 'N', m.notice());
      case CopyResponse m -> {
        int at = MessageWriter.begin(out, m.type());
        out.writeByte(m.format());
        out.writeShort(m.columnFormats().size());
        m.columnFormats().forEach(out::writeShort);
        MessageWriter.finish(out, at);
      }
      case NotificationResponse m -> {
        int at = MessageWriter.begin(out, 'A');
        out.writeInt(m.processId());
        MessageWriter.cstring(out, m.channel());
        MessageWriter.cstring(out, m.payload());
        MessageWriter.finish(out, at);
      }
      case NegotiateProtocolVersion m -> {
        int at = MessageWriter.begin(out, 'v');
        out.writeInt(m.newestMinorVersion()).writeInt(m.unrecognizedOptions().size());
        m.unrecognizedOptions().forEach(s -> MessageWriter.cstring(out, s));
        MessageWriter.finish(out, at);
      }
      case EncryptionRefused m -> out.writeByte('N');
      case CopyData m -> {
        int at = MessageWriter.begin(out, 'd');
        out.writeBytes(m.data());
        MessageWriter.finish(out, at);
      }
      case CopyDone m -> MessageWriter.finish(out, MessageWriter.begin(out, 'c'));
    }
  }

  /** Writes the header of a CopyData message whose {@code payloadLength} bytes follow. */
  public static void copyDataHeader(ByteBuf out, int payloadLength) {
    out.writeByte('d').writeInt(4 + payloadLength);
  }

  /** Bytes {@link #xLogDataHeader} writes: the CopyData header and the XLogData header. */
  public static final int XLOG_DATA_FRAME_HEADER_SIZE =
      5 + ReplicationMessage.XLOG_DATA_HEADER_SIZE;

  /**
   * Writes the headers of a CopyData message carrying XLogData ({@code 'w'}) whose {@code
   * payloadLength} WAL bytes follow, so that a server can send WAL buffers as they are.
   */
  public static void xLogDataHeader(
      ByteBuf out, Lsn dataStart, Lsn walEnd, long sendTimeMicros, int payloadLength) {
    copyDataHeader(out, ReplicationMessage.XLOG_DATA_HEADER_SIZE + payloadLength);
    out.writeByte('w');
    out.writeLong(dataStart.value()).writeLong(walEnd.value()).writeLong(sendTimeMicros);
  }

  private static void auth(ByteBuf out, int code, byte[] data) {
    int at = MessageWriter.begin(out, 'R');
    out.writeInt(code);
    if (data != null) {
      out.writeBytes(data);
    }
    MessageWriter.finish(out, at);
  }

  private static void notice(ByteBuf out, char type, PgNotice notice) {
    int at = MessageWriter.begin(out, type);
    for (Map.Entry<Character, String> e : notice.fields().entrySet()) {
      out.writeByte(e.getKey());
      MessageWriter.cstring(out, e.getValue());
    }
    out.writeByte(0);
    MessageWriter.finish(out, at);
  }
}
