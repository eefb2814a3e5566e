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
        TenantId.generate(),
        TimelineId.generate(),
        7_000_000_000_000_000_001L,
        15,
        16 << 20,
        7,
        Lsn.parse("0/3000000"),
        Lsn.parse("0/2000000"),
        Lsn.INVALID,
        Lsn.parse("0/2FFFF28"),
        Lsn.parse("0/2F00000"),
        Lsn.parse("0/2E00000"),
        Lsn.parse("0/2E00000"),
        List.of(
            new ControlFile.TermEntry(1, Lsn.parse("0/1696F10")),
            new ControlFile.TermEntry(7, Lsn.parse("0/2C00028"))));
  }

  @Test
  void roundTripsDurably() throws IOException {
    ControlFile c = sample();
    assertThat(ControlFile.read(dir)).isEmpty();
    c.write(dir);
    assertThat(ControlFile.read(dir)).contains(c);
    assertThat(c.lastLogTerm()).isEqualTo(7);
    ControlFile voted = c.withPromisedTerm(8);
    voted.write(dir);
    assertThat(ControlFile.read(dir).orElseThrow().promisedTerm()).isEqualTo(8);
    assertThat(Files.list(dir).map(p -> p.getFileName().toString()))
        .containsExactly(ControlFile.FILE_NAME);
  }

  @Test
  void corruptionIsDetectedAndNamesTheFile() throws IOException {
    sample().write(dir);
    Path f = dir.resolve(ControlFile.FILE_NAME);
    byte[] good = Files.readAllBytes(f);
    for (int at : new int[] {0, 4, 60, 130, good.length - 1}) {
      byte[] b = good.clone();
      b[at] ^= 0x01;
      Files.write(f, b);
      assertThatThrownBy(() -> ControlFile.read(dir))
          .isInstanceOf(IOException.class)
          .hasMessageContaining(f.toString());
    }
    Files.write(f, java.util.Arrays.copyOf(good, good.length - 16));
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
