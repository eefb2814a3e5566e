package io.zenith.gateway.safekeeper;

import io.zenith.replication.safekeeper.TimelineStatus;
import java.util.List;

/**
 * Where gossip learns what a peer says about its timelines: its HTTP API in a process ({@link
 * SafekeeperClient#allTimelines}), anything else in a test.
 */
@FunctionalInterface
public interface PeerStatusSource {
  /** Every timeline status peer {@code peerId} reports now. May block; throws if unreachable. */
  List<TimelineStatus> statuses(int peerId) throws Exception;
}
