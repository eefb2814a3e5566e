package io.zenith.layer;

import io.zenith.wal.DurableFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A layer file read at positions by many threads, which survives interrupts and may be absent
 * locally. A {@link FileChannel} is interruptible: an interrupt of any thread while it reads (a
 * cancelled compaction task, a disposed scheduler) closes the channel for every thread. This
 * reopens it for the others; the interrupted thread itself gets the error.
 *
 * <p>Residency (ADR 0027): a file with a {@link LayerStub} may be only in remote storage. Then its
 * header and footer come from the stub, and any other read first has the {@link Fetcher} bring the
 * file back (one download for all waiting readers). {@link #evict} closes and deletes the local
 * file only when no read is in progress (each read holds the residency lock's read side), so a
 * reader never sees a closed file. Thread-safe.
 */
final class ReadOnlyFile implements AutoCloseable {
  /** Brings a layer file back from remote storage into {@code path}, durably and checked. */
  interface Fetcher {
    void fetch(Path path, LayerStub stub) throws IOException;
  }

  /** Where the bytes are when they are not here. */
  private record Remote(LayerStub stub, Fetcher fetcher) {}

  /** How often a read fetches the file again when evictions keep taking it away. */
  private static final int FETCH_ATTEMPTS = 3;

  private final Path path;
  private final ReentrantReadWriteLock residency = new ReentrantReadWriteLock();
  private volatile FileChannel ch; // null while the file is only in remote storage
  private volatile Remote remote;
  private volatile boolean closed;
  private volatile long lastAccessNanos = System.nanoTime();

  ReadOnlyFile(Path path) throws IOException {
    this.path = path;
    this.ch = FileChannel.open(path, StandardOpenOption.READ);
  }

  /** A file that is in remote storage only, described by its stub. */
  ReadOnlyFile(Path path, LayerStub stub, Fetcher fetcher) {
    this.path = path;
    this.remote = new Remote(stub, fetcher);
  }

  Path path() {
    return path;
  }

  long size() throws IOException {
    FileChannel c = ch;
    if (c != null) {
      return c.size();
    }
    Remote r = remote;
    if (r == null) {
      throw new ClosedChannelException();
    }
    return r.stub().size();
  }

  /** Makes the file fetchable again once evicted (its stub, from an uploaded index). */
  void remoteCopy(LayerStub stub, Fetcher fetcher) {
    remote = new Remote(stub, fetcher);
  }

  boolean resident() {
    return ch != null;
  }

  long lastAccessNanos() {
    return lastAccessNanos;
  }

  /**
   * Reads exactly {@code length} bytes at {@code offset} into a fresh buffer, fetching the file
   * first if it is not here (header and footer excepted).
   *
   * @return the bytes, flipped; null if the file ends before
   */
  ByteBuffer read(long offset, int length) throws IOException {
    lastAccessNanos = System.nanoTime();
    for (int fetches = 0; ; fetches++) {
      residency.readLock().lock();
      try {
        FileChannel c = ch;
        if (c != null) {
          return readResident(c, offset, length);
        }
      } finally {
        residency.readLock().unlock();
      }
      Remote r = remote;
      if (closed || r == null) {
        throw new ClosedChannelException();
      }
      ByteBuffer meta = r.stub().serve(offset, length);
      if (meta != null) {
        return meta;
      }
      if (fetches == FETCH_ATTEMPTS) {
        throw new IOException(
            "layer file " + path + " was evicted " + fetches + " times while being read");
      }
      r.fetcher().fetch(path, r.stub());
      openFetched();
    }
  }

  private ByteBuffer readResident(FileChannel first, long offset, int length) throws IOException {
    FileChannel c = first;
    for (int attempt = 1; ; attempt++) {
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
        c = ch;
      }
    }
  }

  private synchronized void openFetched() throws IOException {
    if (!closed && ch == null) {
      ch = FileChannel.open(path, StandardOpenOption.READ);
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

  /**
   * Deletes the local file if no read is in progress and it can be fetched again: the stub first
   * (durable), then the file. A crash in between leaves both, and the file is used.
   *
   * @return the bytes freed; 0 when it was not evicted (being read, not resident, no remote copy,
   *     closed)
   */
  synchronized long evict() throws IOException {
    Remote r = remote;
    FileChannel c = ch;
    if (closed || c == null || r == null || !residency.writeLock().tryLock()) {
      return 0;
    }
    try {
      r.stub().write(path);
      long size = c.size();
      ch = null;
      c.close();
      Files.delete(path);
      DurableFiles.fsyncDirectory(path.getParent());
      return size;
    } finally {
      residency.writeLock().unlock();
    }
  }

  /** Idempotent; reads after it fail. */
  @Override
  public synchronized void close() {
    closed = true;
    FileChannel c = ch;
    if (c == null) {
      return;
    }
    try {
      c.close();
    } catch (IOException ignored) {
      // nothing to lose on a read-only channel
    }
  }
}
