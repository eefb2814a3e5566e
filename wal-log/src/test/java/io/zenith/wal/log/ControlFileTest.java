package io.zenith.wal.log;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ControlFileTest {
  @TempDir Path dir;

  static ControlFile sample() {
    return new ControlFile(
        new ControlFile.Identity(
            TenantId.generate(),
            TimelineId.generate(),
            7_000_000_000_000_000_001L,
            15,
            16 << 20,
            Lsn.parse("0/1696F10")),
        7,
        List.of(
            new ControlFile.TermEntry(1, Lsn.parse("0/1696F10")),
            new ControlFile.TermEntry(7, Lsn.parse("0/2C00028"))),
        new ControlFile.Positions(
            Lsn.parse("0/3000000"), Lsn.parse("0/2000000"), Lsn.INVALID, Lsn.parse("0/2FFFF28")),
        new ControlFile.PageserverFeedback(
            Lsn.parse("0/2F00000"), Lsn.parse("0/2E00000"), Lsn.parse("0/2E00000")),
        new ControlFile.LagLimits(15 << 20, 1L << 30, 0),
        new ControlFile.ComputeSource(7, "127.0.0.1", 55432, "zenith_admin"),
        6);
  }

  @Test
  void roundTripsDurably() throws IOException {
    ControlFile c = sample();
    assertThat(ControlFile.read(dir)).isEmpty();
    c.write(dir);
    assertThat(ControlFile.read(dir)).contains(c);
    assertThat(c.lastLogTerm()).isEqualTo(7);
    ControlFile voted = c.withPromisedTerm(8).withCompute(null);
    voted.write(dir);
    assertThat(ControlFile.read(dir)).contains(voted);
    ControlFile stopped = voted.withStoppedComputeTerm(8);
    stopped.write(dir);
    assertThat(ControlFile.read(dir)).contains(stopped);
    assertThat(stopped.withPromisedTerm(9).stoppedComputeTerm()).isEqualTo(8);
    ControlFile fresh = ControlFile.create(c.identity(), ControlFile.LagLimits.NONE);
    fresh.write(dir);
    assertThat(ControlFile.read(dir)).contains(fresh);
    assertThat(fresh.lastLogTerm()).isZero();
    assertThat(Files.list(dir).map(p -> p.getFileName().toString()))
        .containsExactly(ControlFile.FILE_NAME);
  }

  /** Version 1 (no stopped compute term) is still read: the term is 0, everything else kept. */
  @Test
  void version1IsReadWithoutAStoppedComputeTerm() throws IOException {
    ControlFile c = sample().withStoppedComputeTerm(0);
    byte[] v2 = c.encode();
    // Version 1 is version 2 without the 8 bytes of the stopped compute term before the CRC.
    byte[] v1 = java.util.Arrays.copyOf(v2, v2.length - 8);
    java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(v1);
    b.putShort(4, (short) 1);
    java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
    crc.update(v1, 0, v1.length - 4);
    b.putInt(v1.length - 4, (int) crc.getValue());
    assertThat(ControlFile.decode(v1)).isEqualTo(c);
    assertThat(java.nio.ByteBuffer.wrap(c.encode()).getShort(4)).isEqualTo((short) 2);
  }

  @Test
  void corruptionIsDetectedAndNamesTheFile() throws IOException {
    sample().write(dir);
    Path f = dir.resolve(ControlFile.FILE_NAME);
    byte[] good = Files.readAllBytes(f);
    for (int at : new int[] {0, 4, 60, 130, 160, good.length - 1}) {
      byte[] b = good.clone();
      b[at] ^= 0x01;
      Files.write(f, b);
      assertThatThrownBy(() -> ControlFile.read(dir))
          .isInstanceOf(IOException.class)
          .hasMessageContaining(f.toString());
    }
    // A consistent CRC over a file cut short: the lengths inside must catch it.
    byte[] cut = java.util.Arrays.copyOf(good, good.length - 16);
    java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
    crc.update(cut, 0, cut.length - 4);
    java.nio.ByteBuffer.wrap(cut).putInt(cut.length - 4, (int) crc.getValue());
    Files.write(f, cut);
    assertThatThrownBy(() -> ControlFile.read(dir)).hasMessageContaining("does not match");
  }

  @Test
  void historyMustGrow() {
    ControlFile c = sample();
    assertThatThrownBy(
            () ->
                c.withHistory(
                    List.of(
                        new ControlFile.TermEntry(5, Lsn.parse("0/2000000")),
                        new ControlFile.TermEntry(4, Lsn.parse("0/3000000")))))
        .isInstanceOf(IllegalArgumentException.class);
  }
}

class LagLimitsTest {
  private static final ControlFile.PageserverFeedback PS =
      new ControlFile.PageserverFeedback(
          Lsn.parse("0/5000000"), Lsn.parse("0/4000000"), Lsn.parse("0/1000000"));

  @Test
  void noLimitAcknowledgesEverythingFlushed() {
    assertThat(ControlFile.LagLimits.NONE.ackLimit(Lsn.parse("1/0"), PS))
        .isEqualTo(Lsn.parse("1/0"));
  }

  @Test
  void theTightestLimitWins() {
    var l = new ControlFile.LagLimits(16 << 20, 32 << 20, 0);
    // write 0/5000000 + 16 MiB = 0/6000000; flush 0/4000000 + 32 MiB = 0/6000000
    assertThat(l.ackLimit(Lsn.parse("1/0"), PS)).isEqualTo(Lsn.parse("0/6000000"));
    assertThat(new ControlFile.LagLimits(0, 0, 1 << 20).ackLimit(Lsn.parse("1/0"), PS))
        .isEqualTo(Lsn.parse("0/1100000"));
    // never above what is flushed
    assertThat(l.ackLimit(Lsn.parse("0/5800000"), PS)).isEqualTo(Lsn.parse("0/5800000"));
  }
}
