package io.zenith.layer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A file read at positions by many threads that survives interrupts. A {@link FileChannel} is
 * interruptible: an interrupt of any thread while it reads (a cancelled compaction task, a disposed
 * scheduler) closes the channel for every thread. This reopens it for the others; the interrupted
 * thread itself gets the error. Thread-safe.
 */
final class ReadOnlyFile implements AutoCloseable {
  private final Path path;
  private volatile FileChannel ch;
  private volatile boolean closed;

  ReadOnlyFile(Path path) throws IOException {
    this.path = path;
    this.ch = FileChannel.open(path, StandardOpenOption.READ);
  }

  Path path() {
    return path;
  }

  long size() throws IOException {
    return ch.size();
  }

  /**
   * Reads exactly {@code length} bytes at {@code offset} into a fresh buffer.
   *
   * @return the bytes, flipped; null if the file ends before
   */
  ByteBuffer read(long offset, int length) throws IOException {
    for (int attempt = 1; ; attempt++) {
      FileChannel c = ch;
      ByteBuffer b = ByteBuffer.allocate(length);
      try {
        while (b.hasRemaining()) {
          if (c.read(b, offset + b.position()) < 0) {
            return null;
          }
        }
        return b.flip();
      } catch (ClosedChannelException e) {
        if (closed || attempt == 3) {
          throw e;
        }
        reopen(c);
        if (Thread.currentThread().isInterrupted()) {
          throw e;
        }
      }
    }
  }

  private synchronized void reopen(FileChannel broken) throws IOException {
    if (closed) {
      throw new ClosedChannelException();
    }
    if (ch == broken) {
      ch = FileChannel.open(path, StandardOpenOption.READ);
    }
  }

  /** Idempotent; reads after it fail. */
  @Override
  public synchronized void close() {
    closed = true;
    try {
      ch.close();
    } catch (IOException ignored) {
      // nothing to lose on a read-only channel
    }
  }
}
