package io.zenith.gateway.pageserver;

import io.zenith.wal.Lsn;
import java.time.Duration;
import java.util.List;

/**
 * The WAL receiver's rules for leaving a source: a stalled stream, a safekeeper that lags. Pure
 * functions of their arguments (tested without processes by {@code WalReceiverSwitchTest}).
 */
final class WalSourceChoice {
  private WalSourceChoice() {}

  /**
   * Why a stream is stuck, empty if it is not: the ingest pipeline waits for WAL (the stream has
   * demand and nothing queued), the source itself reported WAL beyond what arrived (in XLogData or
   * keepalives), and nothing arrived for {@link WalReceiver#STALL}. A source that stops sending
   * what it has is broken on its side (a lost wake-up in its sender, issue 9), and the compute it
   * holds back by the lag limits would wait forever: a new connection starts a new sender. A pure
   * function of its arguments.
   *
   * @param received the end of the last WAL the stream brought (its start before any)
   * @param sourceEnd the highest WAL end the source reported
   * @param waiting whether the pipeline has demand that nothing queued can meet
   * @param idle how long ago the stream last brought WAL (or started)
   */
  static String stallReason(
      WalReceiver.Endpoint current, Lsn received, Lsn sourceEnd, boolean waiting, Duration idle) {
    if (!waiting || idle.compareTo(WalReceiver.STALL) <= 0 || !sourceEnd.isAfter(received)) {
      return "";
    }
    return "nothing arrived for "
        + idle.toSeconds()
        + " s although "
        + current
        + " reports WAL up to "
        + sourceEnd
        + " and ingest waits for WAL from "
        + received;
  }

  /**
   * Why to leave {@code current} given what the safekeepers said; empty to stay. A pure function of
   * its arguments.
   *
   * @param received the end of the last WAL the current stream brought (its start before any)
   * @param idle how long ago the current stream last brought WAL (or started)
   */
  static String switchReason(
      WalReceiver.Endpoint current, List<WalReceiver.Probe> probes, Lsn received, Duration idle) {
    Lsn mine = null;
    WalReceiver.Probe best = null;
    for (WalReceiver.Probe p : probes) {
      if (p.commitLsn() == null) {
        continue;
      }
      if (p.endpoint().equals(current)) {
        mine = p.commitLsn();
      } else if (best == null || p.commitLsn().isAfter(best.commitLsn())) {
        best = p;
      }
    }
    if (best == null) {
      return "";
    }
    if (mine != null && best.commitLsn().minus(mine) > WalReceiver.SWITCH_LAG) {
      return "its commit LSN "
          + mine
          + " lags "
          + best.endpoint()
          + "'s "
          + best.commitLsn()
          + " by more than "
          + (WalReceiver.SWITCH_LAG >> 20)
          + " MiB";
    }
    // A stream that brings nothing although its safekeeper has more is slow on this side
    // (backpressure): another safekeeper would not help. One whose safekeeper has nothing more
    // (or does not answer) while another has, is stuck behind.
    boolean currentHasMore = mine != null && mine.isAfter(received);
    if (idle.compareTo(WalReceiver.STALL) > 0
        && !currentHasMore
        && best.commitLsn().isAfter(received)) {
      return "nothing arrived for "
          + idle.toSeconds()
          + " s while "
          + best.endpoint()
          + " has WAL up to "
          + best.commitLsn();
    }
    return "";
  }
}
