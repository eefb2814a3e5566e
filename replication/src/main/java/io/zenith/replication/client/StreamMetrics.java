package io.zenith.replication.client;

/**
 * Live counters of a {@link ReplicationClient}'s streams, for tests and metrics export.
 *
 * <p>Thread-safe for readers: every field is written only by the connection's event loop and is
 * volatile; values read together may come from slightly different moments.
 */
public final class StreamMetrics {
  volatile int bufferedChunks;
  volatile long bufferedBytes;
  volatile int maxBufferedChunksSeen;
  volatile long maxBufferedBytesSeen;
  volatile long readPauses;
  volatile long readResumes;
  volatile boolean reading;
  volatile long chunksReceived;
  volatile long bytesReceived;
  volatile long statusUpdatesSent;
  volatile long keepalivesAnswered;
  volatile long receivedEnd;
  volatile long serverWalEnd;
  volatile boolean waiting;

  StreamMetrics() {}

  /** Chunks received and not yet taken by the subscriber. */
  public int bufferedChunks() {
    return bufferedChunks;
  }

  /** WAL bytes in {@link #bufferedChunks()}. */
  public long bufferedBytes() {
    return bufferedBytes;
  }

  /** High-water mark of {@link #bufferedChunks()}. */
  public int maxBufferedChunksSeen() {
    return maxBufferedChunksSeen;
  }

  /** High-water mark of {@link #bufferedBytes()}. */
  public long maxBufferedBytesSeen() {
    return maxBufferedBytesSeen;
  }

  /**
   * Times socket auto-read was switched off because the subscriber had no demand left and the
   * read-ahead queue was full.
   */
  public long readPauses() {
    return readPauses;
  }

  /** Times socket auto-read was switched back on by new demand. */
  public long readResumes() {
    return readResumes;
  }

  /** Whether socket auto-read is on, as the stream last set it. */
  public boolean reading() {
    return reading;
  }

  /** XLogData messages received (all streams of the client). */
  public long chunksReceived() {
    return chunksReceived;
  }

  /** WAL bytes received (all streams of the client). */
  public long bytesReceived() {
    return bytesReceived;
  }

  /** Standby status updates ('r') sent. */
  public long statusUpdatesSent() {
    return statusUpdatesSent;
  }

  /** Keepalives with reply-requested that were answered. */
  public long keepalivesAnswered() {
    return keepalivesAnswered;
  }

  /** End LSN of the last WAL received (raw value; 0 before any). */
  public long receivedEnd() {
    return receivedEnd;
  }

  /**
   * The highest WAL end the server reported, in XLogData and keepalives (raw value; 0 before any):
   * how far the server could stream now.
   */
  public long serverWalEnd() {
    return serverWalEnd;
  }

  /**
   * Whether the stream is waiting for the server: the subscriber has demand and nothing is queued
   * for it.
   */
  public boolean waiting() {
    return waiting;
  }

  @Override
  public String toString() {
    return "StreamMetrics[buffered="
        + bufferedChunks
        + " chunks/"
        + bufferedBytes
        + " bytes, max="
        + maxBufferedChunksSeen
        + "/"
        + maxBufferedBytesSeen
        + ", pauses="
        + readPauses
        + ", resumes="
        + readResumes
        + ", received="
        + chunksReceived
        + "/"
        + bytesReceived
        + ", status="
        + statusUpdatesSent
        + "]";
  }
}
