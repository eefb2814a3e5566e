package io.zenith.replication.pgwire;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler.Sharable;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.MessageToByteEncoder;
import io.zenith.replication.pgwire.FrontendMessage.CancelRequest;
import io.zenith.replication.pgwire.FrontendMessage.CopyFail;
import io.zenith.replication.pgwire.FrontendMessage.GssEncRequest;
import io.zenith.replication.pgwire.FrontendMessage.PasswordMessage;
import io.zenith.replication.pgwire.FrontendMessage.Query;
import io.zenith.replication.pgwire.FrontendMessage.SslRequest;
import io.zenith.replication.pgwire.FrontendMessage.StartupMessage;
import io.zenith.replication.pgwire.FrontendMessage.Terminate;
import java.util.Map;

/**
 * Client side: {@link FrontendMessage} records in, bytes out. Other outbound objects (e.g. raw
 * {@code ByteBuf}s) pass through untouched. Stateless and {@link Sharable}.
 */
@Sharable
public final class FrontendMessageEncoder extends MessageToByteEncoder<FrontendMessage> {

  public FrontendMessageEncoder() {
    super(FrontendMessage.class);
  }

  @Override
  protected ByteBuf allocateBuffer(
      ChannelHandlerContext ctx, FrontendMessage msg, boolean preferDirect) {
    int size = msg instanceof CopyData d ? 5 + d.data().length : 64;
    return preferDirect ? ctx.alloc().ioBuffer(size) : ctx.alloc().heapBuffer(size);
  }

  @Override
  protected void encode(ChannelHandlerContext ctx, FrontendMessage msg, ByteBuf out) {
    encode(msg, out);
  }

  /** Appends the wire form of {@code msg} to {@code out}. */
  public static void encode(FrontendMessage msg, ByteBuf out) {
    switch (msg) {
      case SslRequest s -> requestCode(out, PgWire.SSL_REQUEST_CODE);
      case GssEncRequest g -> requestCode(out, PgWire.GSSENC_REQUEST_CODE);
      case CancelRequest c -> {
        int at = MessageWriter.beginUntyped(out);
        out.writeInt(PgWire.CANCEL_REQUEST_CODE).writeInt(c.processId()).writeInt(c.secretKey());
        MessageWriter.finish(out, at);
      }
      case StartupMessage s -> {
        int at = MessageWriter.beginUntyped(out);
        out.writeInt(s.protocolVersion());
        for (Map.Entry<String, String> e : s.parameters().entrySet()) {
          MessageWriter.cstring(out, e.getKey());
          MessageWriter.cstring(out, e.getValue());
        }
        out.writeByte(0);
        MessageWriter.finish(out, at);
      }
      case PasswordMessage p -> {
        int at = MessageWriter.begin(out, 'p');
        MessageWriter.cstring(out, p.password());
        MessageWriter.finish(out, at);
      }
      case Query q -> {
        int at = MessageWriter.begin(out, 'Q');
        MessageWriter.cstring(out, q.sql());
        MessageWriter.finish(out, at);
      }
      case CopyData d -> {
        int at = MessageWriter.begin(out, 'd');
        out.writeBytes(d.data());
        MessageWriter.finish(out, at);
      }
      case CopyDone d -> MessageWriter.finish(out, MessageWriter.begin(out, 'c'));
      case CopyFail f -> {
        int at = MessageWriter.begin(out, 'f');
        MessageWriter.cstring(out, f.message());
        MessageWriter.finish(out, at);
      }
      case Terminate t -> MessageWriter.finish(out, MessageWriter.begin(out, 'X'));
    }
  }

  private static void requestCode(ByteBuf out, int code) {
    out.writeInt(8).writeInt(code);
  }
}
