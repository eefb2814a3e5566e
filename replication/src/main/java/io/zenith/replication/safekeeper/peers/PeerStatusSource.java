package io.zenith.replication.safekeeper.peers;

import io.zenith.replication.safekeeper.TimelineStatus;
import java.util.List;

/**
 * Where gossip learns what a peer says about its timelines: its HTTP API in a process (gateway's
 * {@code SafekeeperClient#allTimelines}: this module has no HTTP client), anything else in a test.
 * Implementations are thread-safe (peers are asked in parallel).
 */
@FunctionalInterface
public interface PeerStatusSource {
  /** Every timeline status peer {@code peerId} reports now. May block; throws if unreachable. */
  List<TimelineStatus> statuses(int peerId) throws Exception;
}
