package io.zenith.ingest.wal;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class PglzTest {

  @Test
  void literalsAndOverlappingBackReferences() {
    // ctrl 0b0000_0100: two literals 'a' 'b', then a match of length 6 at offset 2 -> "abababab"
    byte[] src = {0x04, 'a', 'b', (byte) 0x03, 0x02};
    byte[] dst = new byte[8];
    assertThat(Pglz.decompress(src, 0, src.length, dst, 0, 8)).isTrue();
    assertThat(new String(dst, java.nio.charset.StandardCharsets.US_ASCII)).isEqualTo("abababab");
  }

  @Test
  void extendedLengthByte() {
    // one literal 'x', then a match with length nibble 15 (18) + extra 100 = 118 at offset 1
    byte[] src = {0x02, 'x', 0x0F, 0x01, 100};
    byte[] dst = new byte[119];
    assertThat(Pglz.decompress(src, 0, src.length, dst, 0, 119)).isTrue();
    for (byte b : dst) {
      assertThat(b).isEqualTo((byte) 'x');
    }
  }

  @Test
  void rejectsCorruptInput() {
    byte[] dst = new byte[16];
    assertThat(Pglz.decompress(new byte[] {0x01, 0x00, 0x00}, 0, 3, dst, 0, 16))
        .as("offset 0")
        .isFalse();
    assertThat(Pglz.decompress(new byte[] {0x01, 0x10, 0x05}, 0, 3, dst, 0, 16))
        .as("offset before start")
        .isFalse();
    assertThat(Pglz.decompress(new byte[] {0x00, 'a', 'b'}, 0, 3, dst, 0, 16))
        .as("too short")
        .isFalse();
    assertThat(Pglz.decompress(new byte[] {0x00, 'a', 'b', 'c'}, 0, 4, dst, 0, 2))
        .as("input left over")
        .isFalse();
    assertThat(Pglz.decompress(new byte[] {0x01, 0x03}, 0, 2, dst, 0, 16))
        .as("truncated tag")
        .isFalse();
  }
}
