package io.zenith.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.util.ContextInitializer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.zenith.wal.LogContext;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

class LogOutputTest {
  private static final Logger log = LoggerFactory.getLogger("io.zenith.test.LogOutputTest");

  @AfterEach
  void restoreLogbackXml() throws Exception {
    LoggerContext ctx = (LoggerContext) LoggerFactory.getILoggerFactory();
    ctx.reset();
    new ContextInitializer(ctx).autoConfig();
  }

  @Test
  @SuppressWarnings("try")
  void jsonLinesParseAndCarryTheTimelineIds(@TempDir Path dir) throws IOException {
    TenantId tenant = TenantId.generate();
    TimelineId timeline = TimelineId.generate();
    Path file = dir.resolve("pageserver.log");
    LogOutput.configure(LogOutput.Format.JSON, file);
    try (LogContext.Scope s = LogContext.scope(tenant, timeline)) {
      log.warn("flushed layer {} with \"quotes\"\nand a second line", 7);
    }
    log.warn("outside any timeline", new IllegalStateException("boom"));

    List<JsonNode> lines = new ArrayList<>();
    ObjectMapper json = new ObjectMapper();
    for (String line : Files.readAllLines(file)) {
      lines.add(json.readTree(line)); // one object per line
    }
    assertThat(lines).hasSize(2);
    JsonNode first = lines.get(0);
    assertThat(first.get("timestamp").asLong()).isPositive();
    assertThat(first.get("level").asText()).isEqualTo("WARN");
    assertThat(first.get("loggerName").asText()).isEqualTo("io.zenith.test.LogOutputTest");
    assertThat(first.get("formattedMessage").asText())
        .isEqualTo("flushed layer 7 with \"quotes\"\nand a second line");
    assertThat(first.get("mdc").get("tenant").asText()).isEqualTo(tenant.toString());
    assertThat(first.get("mdc").get("timeline").asText()).isEqualTo(timeline.toString());
    JsonNode second = lines.get(1);
    assertThat(second.get("mdc").has("tenant")).isFalse();
    assertThat(second.get("throwable").toString()).contains("boom");
  }

  @Test
  @SuppressWarnings("try")
  void textFilesCarryTheIdsInTheirColumns(@TempDir Path dir) throws IOException {
    TenantId tenant = TenantId.generate();
    TimelineId timeline = TimelineId.generate();
    Path file = dir.resolve("safekeeper.log");
    LogOutput.configure(LogOutput.Format.TEXT, file);
    try (LogContext.Scope s = LogContext.scope(tenant, timeline)) {
      log.warn("appended");
    }
    assertThat(Files.readString(file))
        .containsPattern(
            "^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} WARN .* "
                + tenant
                + " "
                + timeline
                + " - appended\\n$");
  }

  @Test
  void onlyTextAndJsonAreFormats() {
    assertThat(LogOutput.Format.parse("JSON")).isEqualTo(LogOutput.Format.JSON);
    assertThatThrownBy(() -> LogOutput.Format.parse("xml"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("log format 'xml' is not one of: text, json");
  }
}
