package io.zenith.wal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class LsnTest {

  @Test
  void printsLikePostgres() {
    assertThat(Lsn.of(0x16B3748L)).hasToString("0/16B3748");
    assertThat(Lsn.of(0x1_0000_0000L)).hasToString("1/0");
    assertThat(Lsn.MAX).hasToString("FFFFFFFF/FFFFFFFF");
    assertThat(Lsn.INVALID).hasToString("0/0");
  }

  @Test
  void parsesWhatPostgresAccepts() {
    assertThat(Lsn.parse("0/16B3748").value()).isEqualTo(0x16B3748L);
    assertThat(Lsn.parse("a/b").value()).isEqualTo(0xA_0000_000BL);
    assertThat(Lsn.parse("FFFFFFFF/FFFFFFFF")).isEqualTo(Lsn.MAX);
    assertThat(Lsn.parse("00000000/00000001").value()).isEqualTo(1);
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "",
        "/",
        "0/",
        "/0",
        "0//0",
        "123456789/0",
        "0/123456789",
        "g/0",
        "0/1 ",
        " 0/1",
        "+1/0",
        "-1/0",
        "\u0661/\u0662", // Arabic-Indic digits: Character.digit takes them, PostgreSQL does not
        "0/\uFF11" // a full-width 1
      })
  void rejectsWhatPostgresRejects(String text) {
    assertThatThrownBy(() -> Lsn.parse(text))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("invalid LSN");
  }

  @Test
  void ordersUnsigned() {
    assertThat(Lsn.MAX).isGreaterThan(Lsn.of(1));
    assertThat(Lsn.of(0x8000_0000_0000_0000L)).isGreaterThan(Lsn.of(0x7FFF_FFFF_FFFF_FFFFL));
  }

  @Test
  void pageAndSegmentMath() {
    Lsn l = Lsn.parse("0/2001F3C");
    assertThat(l.segmentNumber(16 << 20)).isEqualTo(2);
    assertThat(l.segmentOffset(16 << 20)).isEqualTo(0x1F3C);
    assertThat(l.pageOffset()).isEqualTo(0x1F3C);
    assertThat(l.pageStart()).isEqualTo(Lsn.parse("0/2000000"));
    assertThat(l.align()).isEqualTo(Lsn.parse("0/2001F40"));
    assertThat(Lsn.parse("0/2001F40").align()).isEqualTo(Lsn.parse("0/2001F40"));
  }

  @Test
  void segmentNamesRoundTrip() {
    int seg16 = 16 << 20;
    WalSegmentName n = WalSegmentName.of(1, Lsn.parse("1/2000028"), seg16);
    assertThat(n.fileName(seg16)).isEqualTo("000000010000000100000002");
    assertThat(WalSegmentName.parse("000000010000000100000002", seg16)).contains(n);
    assertThat(WalSegmentName.parse("0000000100000001000000FF", seg16))
        .contains(new WalSegmentName(1, 0x1FF));
    assertThat(WalSegmentName.parse("000000010000000100000100", seg16)).isEmpty();
    assertThat(WalSegmentName.parse("00000001000000010000000g", seg16)).isEmpty();
    int seg1 = 1 << 20;
    assertThat(new WalSegmentName(3, 0x1005).fileName(seg1)).isEqualTo("000000030000000100000005");
  }
}
