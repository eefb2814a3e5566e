package io.zenith.replication.client;

import java.time.Duration;
import java.time.InstantSource;
import java.util.Objects;

/**
 * How a {@link ReplicationClient} streams. Immutable and thread-safe.
 *
 * @param maxBufferedChunks how many chunks the client may read ahead of the subscriber's demand
 *     (default 16; a chunk is at most 128 KiB of WAL). Socket reads go on while the subscriber has
 *     outstanding demand or fewer chunks than this wait in the client's queue, and stop otherwise:
 *     a subscriber that stops requesting stops the reads once the queue is full, the TCP window
 *     closes and the server stops sending. 0 reads only while there is outstanding demand.
 * @param statusInterval how often a standby status update is sent without being asked (like {@code
 *     wal_receiver_status_interval}); {@link Duration#ZERO} sends only on {@link
 *     ReplicationClient#reportProgress} and keepalive requests (default 1 s)
 * @param clock source of the send time in status updates (default the system clock)
 */
public record ReplicationOptions(
    int maxBufferedChunks, Duration statusInterval, InstantSource clock) {

  public static final ReplicationOptions DEFAULT =
      new ReplicationOptions(16, Duration.ofSeconds(1), InstantSource.system());

  public ReplicationOptions {
    if (maxBufferedChunks < 0) {
      throw new IllegalArgumentException(
          "maxBufferedChunks must not be negative, got " + maxBufferedChunks);
    }
    Objects.requireNonNull(statusInterval, "statusInterval");
    if (statusInterval.isNegative()) {
      throw new IllegalArgumentException("statusInterval must not be negative: " + statusInterval);
    }
    Objects.requireNonNull(clock, "clock");
  }

  public ReplicationOptions withMaxBufferedChunks(int n) {
    return new ReplicationOptions(n, statusInterval, clock);
  }

  public ReplicationOptions withStatusInterval(Duration interval) {
    return new ReplicationOptions(maxBufferedChunks, interval, clock);
  }

  public ReplicationOptions withClock(InstantSource c) {
    return new ReplicationOptions(maxBufferedChunks, statusInterval, c);
  }
}
