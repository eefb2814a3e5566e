package io.zenith.replication.server;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessageEncoder;
import io.zenith.replication.pgwire.CopyDone;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes a {@link QueryResponse.CopyOut} payload: each buffer as a CopyData message (header, then
 * the buffer), then CopyDone and CommandComplete, or an ErrorResponse if the source fails. Not
 * thread-safe: confined to the channel's event loop.
 */
final class CopyOutWriter extends DemandWriter<ByteBuf> {
  private static final Logger log = LoggerFactory.getLogger(CopyOutWriter.class);

  private final ServerConnectionHandler session;
  private final String tag;
  private long buffers;
  private long bytes;

  CopyOutWriter(ChannelHandlerContext ctx, ServerConnectionHandler session, String tag) {
    super(ctx);
    this.session = session;
    this.tag = tag;
  }

  @Override
  void write(ByteBuf buf) {
    int n = buf.readableBytes();
    ByteBuf header = ctx.alloc().buffer(5);
    BackendMessageEncoder.copyDataHeader(header, n);
    ctx.write(header);
    ctx.writeAndFlush(buf);
    buffers++;
    bytes += n;
  }

  @Override
  void sourceFailed(Throwable t) {
    log.warn("[{}] COPY stream failed after {} bytes", session.context(), bytes, t);
    ctx.write(new ErrorResponse(ServerConnectionHandler.errorNotice(t, "COPY failed: ")));
    session.finishQuery();
  }

  @Override
  void sourceCompleted() {
    log.debug("[{}] COPY done: {} buffers, {} bytes", session.context(), buffers, bytes);
    ctx.write(CopyDone.INSTANCE);
    ctx.write(new CommandComplete(tag));
    session.finishQuery();
  }

  @Override
  void sessionClosed() {
    if (cancel()) {
      log.debug("[{}] COPY cancelled after {} bytes: connection closed", session.context(), bytes);
    }
  }
}
