package io.zenith.replication.client;

import io.zenith.wal.Lsn;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * A run of WAL bytes from one XLogData message: {@code array[offset, offset + length)} are the WAL
 * bytes from {@code start} on. Chunks of one stream are contiguous: each starts where the previous
 * ended.
 *
 * <p><b>Ownership:</b> the array is a heap copy made once when the message was decoded (the socket
 * buffer is released at once); the client never touches it again after emitting the chunk, so the
 * subscriber owns it and may hand it on without copying — {@link #data()} is exactly what {@link
 * io.zenith.wal.WalStream} consumes, and records it assembles in place share the array. The array
 * also holds the 25-byte XLogData header before {@code offset}; never modify it.
 *
 * @param start LSN of the first byte
 * @param serverWalEnd the server's WAL end when it sent the message
 * @param serverSendTimeMicros server clock at sending, microseconds since 2000-01-01 UTC
 */
public record WalChunk(
    Lsn start, Lsn serverWalEnd, long serverSendTimeMicros, byte[] array, int offset, int length) {

  public WalChunk {
    if (offset < 0 || length < 0 || offset + length > array.length) {
      throw new IllegalArgumentException(
          "chunk ["
              + offset
              + ", "
              + offset
              + "+"
              + length
              + ") exceeds its array of "
              + array.length);
    }
  }

  /** LSN after the last byte. */
  public Lsn end() {
    return start.plus(length);
  }

  /**
   * A new heap buffer over the bytes (position 0, limit {@code length}) sharing the array; each
   * call returns an independent buffer, so several consumers may read it.
   */
  public ByteBuffer data() {
    return ByteBuffer.wrap(array, offset, length).slice();
  }

  /** A copy of exactly the WAL bytes. */
  public byte[] copyBytes() {
    return Arrays.copyOfRange(array, offset, offset + length);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof WalChunk c
        && start.equals(c.start)
        && serverWalEnd.equals(c.serverWalEnd)
        && serverSendTimeMicros == c.serverSendTimeMicros
        && Arrays.equals(array, offset, offset + length, c.array, c.offset, c.offset + c.length);
  }

  @Override
  public int hashCode() {
    return 31 * start.hashCode() + length;
  }

  @Override
  public String toString() {
    return "WalChunk[" + start + ".." + end() + ", " + length + " bytes]";
  }
}
