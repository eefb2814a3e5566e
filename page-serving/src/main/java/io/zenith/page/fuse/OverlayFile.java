package io.zenith.page.fuse;

import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.BitSet;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * One file of the mount: a remote base (a segment of a relation fork at the compute's LSN, or none)
 * under a sparse overlay file that holds what the compute wrote. Block {@code b} reads from the
 * remote base if {@code b < remoteBlocks} and the overlay does not hold it; otherwise from the
 * overlay file (holes and what lies beyond its end read as zeros). Writes go to the overlay only; a
 * write or truncation that covers part of a remote block first copies that block into the overlay.
 * The file's size is its own: the remote size at first, then what writes and truncations make it.
 *
 * <p>Thread-safe: reads share a read lock (remote reads of one file run in parallel), writes and
 * truncations take the write lock, so a read never sees half of a write.
 */
final class OverlayFile {
  static final int BLOCK = 8192;

  private final PageSource source;
  private final RelTag rel;
  private final ForkNumber fork;
  private final long firstBlock;
  private final Path data;
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  // Guarded by lock.
  private int remoteBlocks;
  private long size;
  private final BitSet held = new BitSet();
  private FileChannel channel;

  /**
   * @param rel the relation whose fork this file is a segment of; null for a file with no remote
   *     base
   * @param data the overlay file (created on the first write)
   */
  OverlayFile(
      PageSource source,
      RelTag rel,
      ForkNumber fork,
      long firstBlock,
      int remoteBlocks,
      Path data) {
    this.source = source;
    this.rel = rel;
    this.fork = fork;
    this.firstBlock = firstBlock;
    this.remoteBlocks = rel == null ? 0 : remoteBlocks;
    this.size = (long) this.remoteBlocks * BLOCK;
    this.data = data;
  }

  /** Whether this file reads through to the pageserver for some block. */
  boolean hasRemoteBase() {
    return rel != null;
  }

  /** A file that is all overlay, with the content of {@code seed}. */
  static OverlayFile seeded(PageSource source, Path seed, Path data) throws IOException {
    Files.copy(seed, data);
    OverlayFile f = new OverlayFile(source, null, null, 0, 0, data);
    f.size = Files.size(data);
    return f;
  }

  long size() {
    lock.readLock().lock();
    try {
      return size;
    } finally {
      lock.readLock().unlock();
    }
  }

  /** Reads up to {@code length} bytes at {@code offset} into {@code out} from its position. */
  int read(ByteBuffer out, int length, long offset) throws IOException {
    lock.readLock().lock();
    try {
      long end = Math.min(size, offset + length);
      if (offset >= end) {
        return 0;
      }
      long pos = offset;
      while (pos < end) {
        long b = pos / BLOCK;
        boolean remote = isRemote(b);
        long runEnd = b + 1;
        while (runEnd * BLOCK < end && isRemote(runEnd) == remote) {
          runEnd++;
        }
        long to = Math.min(end, runEnd * BLOCK);
        if (remote) {
          int count = (int) (runEnd - b);
          ByteBuffer pages = ByteBuffer.allocate(count * BLOCK);
          source.read(rel, fork, firstBlock + b, count, pages);
          out.put(pages.array(), (int) (pos - b * BLOCK), (int) (to - pos));
        } else {
          readOverlay(out, pos, (int) (to - pos));
        }
        pos = to;
      }
      return (int) (end - offset);
    } finally {
      lock.readLock().unlock();
    }
  }

  private boolean isRemote(long block) {
    return block < remoteBlocks && !held.get((int) block);
  }

  private void readOverlay(ByteBuffer out, long pos, int length) throws IOException {
    int limit = out.limit();
    int start = out.position();
    out.limit(start + length);
    try {
      FileChannel c = channel();
      while (out.hasRemaining()) {
        if (c.read(out, pos + (out.position() - start)) < 0) {
          break;
        }
      }
      while (out.hasRemaining()) {
        out.put((byte) 0); // a hole beyond the overlay's end (an extension by truncation)
      }
    } finally {
      out.limit(limit);
    }
  }

  /** Writes the buffer's remaining bytes at {@code offset}. */
  int write(ByteBuffer in, long offset) throws IOException {
    lock.writeLock().lock();
    try {
      int length = in.remaining();
      if (length == 0) {
        return 0;
      }
      FileChannel c = channel();
      long first = offset / BLOCK;
      long last = (offset + length - 1) / BLOCK;
      if (offset % BLOCK != 0) {
        materialize(first);
      }
      if ((offset + length) % BLOCK != 0) {
        materialize(last);
      }
      long pos = offset;
      while (in.hasRemaining()) {
        pos += c.write(in, pos);
      }
      markHeld(first, last + 1);
      size = Math.max(size, offset + length);
      return length;
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** Sets the size; blocks of the remote base at or beyond it are gone for good. */
  void truncate(long newSize) throws IOException {
    lock.writeLock().lock();
    try {
      FileChannel c = channel();
      if (newSize % BLOCK != 0) {
        materialize(newSize / BLOCK);
      }
      if (c.size() > newSize) {
        c.truncate(newSize);
      }
      remoteBlocks = (int) Math.min(remoteBlocks, newSize / BLOCK);
      int keep = (int) Math.min(Integer.MAX_VALUE, (newSize + BLOCK - 1) / BLOCK);
      if (keep < held.length()) {
        held.clear(keep, held.length());
      }
      size = newSize;
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** Copies a remote block the overlay does not hold into it (before a partial write). */
  private void materialize(long block) throws IOException {
    if (!isRemote(block)) {
      return;
    }
    ByteBuffer page = ByteBuffer.allocate(BLOCK);
    source.read(rel, fork, firstBlock + block, 1, page);
    page.flip();
    long pos = block * BLOCK;
    while (page.hasRemaining()) {
      pos += channel.write(page, pos);
    }
    held.set((int) block);
  }

  private void markHeld(long from, long to) {
    // Only blocks of the remote base need a bit: the others read from the overlay anyway.
    long end = Math.min(to, remoteBlocks);
    if (from < end) {
      held.set((int) from, (int) end);
    }
  }

  /** Opens the overlay file; under the write lock, or the read lock (hence synchronized). */
  private synchronized FileChannel channel() throws IOException {
    if (channel == null) {
      channel =
          FileChannel.open(
              data, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
    }
    return channel;
  }

  /** Closes and deletes the overlay file (the file was unlinked or the mount is going away). */
  void discard() throws IOException {
    lock.writeLock().lock();
    try {
      synchronized (this) {
        if (channel != null) {
          channel.close();
          channel = null;
        }
      }
      Files.deleteIfExists(data);
    } finally {
      lock.writeLock().unlock();
    }
  }
}
