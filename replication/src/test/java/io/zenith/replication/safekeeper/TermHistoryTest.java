package io.zenith.replication.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.util.List;
import org.junit.jupiter.api.Test;

class TermHistoryTest {
  private static final Lsn START = Lsn.parse("0/1000000");

  private static TermEntry e(long term, String lsn) {
    return new TermEntry(term, Lsn.parse(lsn));
  }

  private static Lsn common(List<TermEntry> a, String aEnd, List<TermEntry> b, String bEnd) {
    Lsn x = TermHistory.commonPoint(a, Lsn.parse(aEnd), b, Lsn.parse(bEnd), START);
    // symmetric by construction
    assertThat(TermHistory.commonPoint(b, Lsn.parse(bEnd), a, Lsn.parse(aEnd), START)).isEqualTo(x);
    return x;
  }

  @Test
  void sameTermsShareUpToTheShorterLog() {
    var h = List.of(e(1, "0/1000000"), e(3, "0/2000000"));
    assertThat(common(h, "0/2500000", h, "0/2300000")).isEqualTo(Lsn.parse("0/2300000"));
  }

  @Test
  void aDivergentTailEndsWhereTheNextTermStarted() {
    // This log kept term 1's WAL up to 0/2800000; the other one's term 2 started at 0/2000000.
    var mine = List.of(e(1, "0/1000000"));
    var theirs = List.of(e(1, "0/1000000"), e(2, "0/2000000"));
    assertThat(common(mine, "0/2800000", theirs, "0/3000000")).isEqualTo(Lsn.parse("0/2000000"));
    // ... and if it had less of term 1 than where term 2 began, all of it is common.
    assertThat(common(mine, "0/1800000", theirs, "0/3000000")).isEqualTo(Lsn.parse("0/1800000"));
  }

  @Test
  void differentTermsAtTheSameLevelShareOnlyTheCommonPrefix() {
    var a = List.of(e(1, "0/1000000"), e(2, "0/2000000"));
    var b = List.of(e(1, "0/1000000"), e(3, "0/1800000"));
    assertThat(common(a, "0/2800000", b, "0/3000000")).isEqualTo(Lsn.parse("0/1800000"));
  }

  @Test
  void nothingSharedMeansTheTimelineStart() {
    assertThat(common(List.of(), "0/1000000", List.of(e(1, "0/1000000")), "0/3000000"))
        .isEqualTo(START);
  }

  @Test
  void appendingNeedsAHigherTerm() {
    var h = List.of(e(2, "0/1000000"));
    assertThat(TermHistory.append(h, 3, Lsn.parse("0/2000000")))
        .containsExactly(e(2, "0/1000000"), e(3, "0/2000000"));
    assertThatThrownBy(() -> TermHistory.append(h, 2, Lsn.parse("0/2000000")))
        .isInstanceOf(IllegalArgumentException.class);
    assertThat(TermHistory.format(TermHistory.append(h, 3, Lsn.parse("0/2000000"))))
        .isEqualTo("2@0/1000000, 3@0/2000000");
  }
}
