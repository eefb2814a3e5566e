package io.zenith.gateway.pageserver;

import static io.zenith.gateway.pageserver.WalReceiver.STALL;
import static io.zenith.gateway.pageserver.WalReceiver.SWITCH_LAG;
import static io.zenith.gateway.pageserver.WalSourceChoice.stallReason;
import static io.zenith.gateway.pageserver.WalSourceChoice.switchReason;
import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.WalReceiver.Endpoint;
import io.zenith.gateway.pageserver.WalReceiver.Probe;
import io.zenith.wal.Lsn;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The WAL receiver's decision to leave the safekeeper it streams from ({@link
 * WalReceiver#switchReason}): a commit LSN lagging the best other one's by more than {@link
 * WalReceiver#SWITCH_LAG}, or a stall of more than {@link WalReceiver#STALL} while the current one
 * has nothing more (or does not answer) and another has. The stall rule also runs end to end
 * against stopped safekeeper processes ({@code PageserverFromSafekeepersTest} in {@code
 * integration}); a 16 MiB lag does not arise there without contrivance.
 */
class WalReceiverSwitchTest {
  private static final Endpoint SK1 = new Endpoint(1, "127.0.0.1", 5001);
  private static final Endpoint SK2 = new Endpoint(2, "127.0.0.1", 5002);
  private static final Endpoint SK3 = new Endpoint(3, "127.0.0.1", 5003);

  private static final Lsn BASE = Lsn.parse("0/3000000");
  private static final Duration NO_IDLE = Duration.ZERO;
  private static final Duration STALLED = STALL.plusSeconds(1);

  private static Probe at(Endpoint e, Lsn commit) {
    return new Probe(e, commit, null);
  }

  private static Probe down(Endpoint e) {
    return new Probe(e, null, e + ": no answer in time");
  }

  @Test
  void aCommitLsnLaggingTheBestOtherByMoreThan16MiBSwitchesNamingBothLsns() {
    Lsn ahead = BASE.plus(SWITCH_LAG + 1);
    String reason =
        switchReason(
            SK1,
            List.of(at(SK1, BASE), at(SK2, BASE.plus(1 << 20)), at(SK3, ahead)),
            BASE,
            NO_IDLE);
    assertThat(reason)
        .isEqualTo(
            "its commit LSN 0/3000000 lags safekeeper 3 at 127.0.0.1:5003's 0/4000001 by more"
                + " than 16 MiB");
  }

  @Test
  void aLagOfAtMost16MiBStays() {
    assertThat(
            switchReason(
                SK1, List.of(at(SK1, BASE), at(SK2, BASE.plus(SWITCH_LAG))), BASE, NO_IDLE))
        .isEmpty();
    assertThat(switchReason(SK1, List.of(at(SK1, BASE), at(SK2, BASE.plus(1))), BASE, NO_IDLE))
        .isEmpty();
    // Even while nothing arrives: the current one has more than arrived (backpressure).
    assertThat(
            switchReason(
                SK1,
                List.of(at(SK1, BASE.plus(SWITCH_LAG)), at(SK2, BASE.plus(SWITCH_LAG))),
                BASE,
                STALLED))
        .isEmpty();
  }

  @Test
  void aStallWhileTheCurrentOneHasMoreIsBackpressureAndStays() {
    Lsn received = BASE;
    List<Probe> probes = List.of(at(SK1, BASE.plus(4096)), at(SK2, BASE.plus(8192)));
    assertThat(switchReason(SK1, probes, received, Duration.ofMinutes(5))).isEmpty();
  }

  @Test
  void aStallWhileTheCurrentOneHasNothingMoreAndAnotherHasSwitches() {
    Lsn received = BASE;
    List<Probe> probes = List.of(at(SK1, received), at(SK2, BASE.plus(4096)), at(SK3, received));
    assertThat(switchReason(SK1, probes, received, Duration.ofSeconds(11)))
        .isEqualTo(
            "nothing arrived for 11 s while safekeeper 2 at 127.0.0.1:5002 has WAL up to"
                + " 0/3001000");
  }

  @Test
  void noStallYetStays() {
    List<Probe> probes = List.of(at(SK1, BASE), at(SK2, BASE.plus(4096)));
    assertThat(switchReason(SK1, probes, BASE, NO_IDLE)).isEmpty();
    assertThat(switchReason(SK1, probes, BASE, STALL)).as("exactly STALL").isEmpty();
    assertThat(switchReason(SK1, probes, BASE, STALL.plusNanos(1))).isNotEmpty();
  }

  @Test
  void aStallWhileTheCurrentOneDoesNotAnswerAndAnotherIsAheadSwitches() {
    List<Probe> probes = List.of(down(SK1), at(SK2, BASE.plus(4096)), down(SK3));
    assertThat(switchReason(SK1, probes, BASE, STALLED))
        .startsWith("nothing arrived for 11 s while safekeeper 2 at 127.0.0.1:5002");
    assertThat(switchReason(SK1, probes, BASE, NO_IDLE))
        .as("not answering one probe is no reason by itself")
        .isEmpty();
  }

  @Test
  void aStallWithNobodyAheadOfWhatArrivedStays() {
    List<Probe> probes = List.of(down(SK1), at(SK2, BASE), at(SK3, BASE.plus(-8)));
    assertThat(switchReason(SK1, probes, BASE, STALLED)).isEmpty();
  }

  @Test
  void noOtherAnsweringStays() {
    assertThat(switchReason(SK1, List.of(at(SK1, BASE), down(SK2), down(SK3)), BASE, STALLED))
        .isEmpty();
    assertThat(switchReason(SK1, List.of(down(SK1), down(SK2), down(SK3)), BASE, STALLED))
        .isEmpty();
  }

  // ---- a stalled stream, whatever the source (issue 9) ----

  @Test
  void aStreamWaitingForWalItsSourceHasIsLeftAfterTheStallNamingBothLsns() {
    assertThat(stallReason(SK1, BASE, BASE.plus(15 << 20), true, STALLED))
        .isEqualTo(
            "nothing arrived for 11 s although safekeeper 1 at 127.0.0.1:5001 reports WAL up to"
                + " 0/3F00000 and ingest waits for WAL from 0/3000000");
  }

  @Test
  void aStalledComputeStreamIsLeftToo() {
    Endpoint compute = new Endpoint(null, "127.0.0.1", 55432);
    assertThat(stallReason(compute, BASE, BASE.plus(1), true, STALLED))
        .startsWith("nothing arrived for 11 s although 127.0.0.1:55432 reports WAL up to");
  }

  @Test
  void aStreamIsKeptWhileItsSourceHasNothingMore() {
    assertThat(stallReason(SK1, BASE, BASE, true, STALLED)).isEmpty();
    assertThat(stallReason(SK1, BASE, Lsn.INVALID, true, STALLED)).isEmpty();
  }

  @Test
  void aStreamHeldBackByIngestIsKept() {
    // No demand: the pipeline is slow (backpressure), not the source.
    assertThat(stallReason(SK1, BASE, BASE.plus(15 << 20), false, STALLED)).isEmpty();
  }

  @Test
  void aStreamIsKeptUntilTheStallTimeHasPassed() {
    assertThat(stallReason(SK1, BASE, BASE.plus(15 << 20), true, STALL)).isEmpty();
  }
}
