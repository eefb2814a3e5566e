package io.zenith.replication.server;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.util.ReferenceCounted;
import io.zenith.wal.Lsn;
import java.util.Objects;

/**
 * WAL bytes from {@code start} on, as a {@link QueryResponse.Replication} stream serves them: the
 * readable bytes of {@code data} are the WAL at {@code [start, end())}. A piece may be any size;
 * the server cuts it into XLogData messages of at most 128 KiB.
 *
 * <p><b>Ownership:</b> the piece holds one reference to {@code data} and is reference-counted
 * through it, so Netty's and Reactor's release utilities (and Reactor's discard hooks) release it.
 * A piece handed to the server becomes the server's: it writes the bytes without copying (slices of
 * {@code data} after a header) and releases the piece once written, or when it arrives after the
 * stream ended. Hand over pieces whose bytes nobody modifies afterwards: a log segment's mapped or
 * pooled buffer may be shared with {@code retainedSlice}, never reused while still referenced.
 *
 * <p>Not thread-safe, like its buffer: hand a piece from one thread to the next (a reactive signal
 * does), do not share it.
 *
 * @param start LSN of the first readable byte
 * @param data the bytes; its reader index and readable length are not changed by the server until
 *     it releases its reference
 */
public record WalPiece(Lsn start, ByteBuf data) implements ReferenceCounted {
  public WalPiece {
    Objects.requireNonNull(start);
    Objects.requireNonNull(data);
  }

  /** A piece over {@code bytes} (wrapped, not copied). */
  public static WalPiece of(Lsn start, byte[] bytes) {
    return new WalPiece(start, Unpooled.wrappedBuffer(bytes));
  }

  /** Number of WAL bytes. */
  public int length() {
    return data.readableBytes();
  }

  /** LSN after the last byte. */
  public Lsn end() {
    return start.plus(data.readableBytes());
  }

  @Override
  public int refCnt() {
    return data.refCnt();
  }

  @Override
  public WalPiece retain() {
    data.retain();
    return this;
  }

  @Override
  public WalPiece retain(int increment) {
    data.retain(increment);
    return this;
  }

  @Override
  public WalPiece touch() {
    data.touch();
    return this;
  }

  @Override
  public WalPiece touch(Object hint) {
    data.touch(hint);
    return this;
  }

  @Override
  public boolean release() {
    return data.release();
  }

  @Override
  public boolean release(int decrement) {
    return data.release(decrement);
  }

  @Override
  public String toString() {
    return "WalPiece[" + start + ".." + end() + ", " + length() + " bytes]";
  }
}
