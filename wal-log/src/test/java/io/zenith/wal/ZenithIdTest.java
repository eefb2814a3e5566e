package io.zenith.wal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ZenithIdTest {

  @Test
  void parsesWhatItPrints() {
    TenantId t = TenantId.generate();
    assertThat(TenantId.parse(t.toString())).isEqualTo(t);
    TimelineId tl = TimelineId.parse("0123456789abcdef0123456789abcdef");
    assertThat(tl.toString()).isEqualTo("0123456789abcdef0123456789abcdef");
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789ABCDEF0123456789ABCDEF", // another spelling of an id would be another key
        "0123456789abcdef0123456789abcdeg",
        " 0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcd\u0661\u0662"
      })
  void acceptsOnlyTheCanonicalForm(String text) {
    assertThatThrownBy(() -> TenantId.parse(text))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("invalid tenant id \"" + text + "\": expected 32 lower-case hex characters");
  }
}
