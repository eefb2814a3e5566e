package io.zenith.gateway.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;

class TableTest {
  @Test
  void columnsAlignByCodePointsAndTheLastIsNotPadded() {
    StringWriter s = new StringWriter();
    new Table("BRANCH", "LSN", "X")
        .row("main", "0/1696F10", "a")
        .row("└─ b1", "", "bb")
        .print(new PrintWriter(s));
    assertThat(s.toString().lines())
        .containsExactly(
            "BRANCH  LSN        X", //
            "main    0/1696F10  a",
            "└─ b1              bb");
  }
}
