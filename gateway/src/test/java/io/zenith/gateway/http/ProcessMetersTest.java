package io.zenith.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashSet;
import java.util.Set;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

class ProcessMetersTest {
  @Test
  void idsNumbersAndQueriesLeaveTheUriTag() {
    assertThat(
            ProcessMeters.template(
                "/v1/tenant/0123456789abcdef0123456789abcdef/timeline/"
                    + "fedcba9876543210fedcba9876543210/lsn_by_timestamp?timestamp=2026-01-01T00:00Z"))
        .isEqualTo("/v1/tenant/{id}/timeline/{id}/lsn_by_timestamp");
    assertThat(ProcessMeters.template("/v1/safekeeper/12/vote"))
        .isEqualTo("/v1/safekeeper/{n}/vote");
    assertThat(ProcessMeters.template("/metrics")).isEqualTo("/metrics");
    assertThat(ProcessMeters.template("/")).isEqualTo("/");
    assertThat(ProcessMeters.template("/../etc/passwd%00")).isEqualTo("/{x}/etc/{x}");
  }

  @Test
  void probesOfRandomPathsDoNotGrowTheSeries() {
    Function<String, String> tags = ProcessMeters.uriTags();
    Set<String> seen = new HashSet<>();
    for (int i = 0; i < 1000; i++) {
      seen.add(tags.apply("/probe_" + Integer.toString(i, 26).replaceAll("[0-9]", "x")));
    }
    assertThat(seen).hasSize(ProcessMeters.MAX_URI_TAGS + 1).contains("other");
    // a path seen before the cap keeps its own tag
    assertThat(tags.apply("/probe_a")).isEqualTo("/probe_a");
  }
}
