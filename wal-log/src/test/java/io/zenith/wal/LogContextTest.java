package io.zenith.wal;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

class LogContextTest {
  private static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  private static final TimelineId TIMELINE = TimelineId.parse("fedcba9876543210fedcba9876543210");

  private final Logger logger = (Logger) LoggerFactory.getLogger(LogContextTest.class);
  private final ListAppender<ILoggingEvent> captured = new ListAppender<>();

  @BeforeEach
  void capture() {
    captured.start();
    logger.addAppender(captured);
    logger.setLevel(Level.INFO);
  }

  @AfterEach
  void release() {
    logger.detachAppender(captured);
    MDC.clear();
  }

  @Test
  @SuppressWarnings("try")
  void aScopeSetsBothIdsAndRestoresWhatTheThreadHad() {
    MDC.put(LogContext.TENANT, "outer-tenant");
    try (LogContext.Scope s = LogContext.scope(TENANT, TIMELINE)) {
      logger.info("inside");
    }
    logger.info("after");
    assertThat(captured.list.get(0).getMDCPropertyMap())
        .containsEntry("tenant", TENANT.toString())
        .containsEntry("timeline", TIMELINE.toString());
    assertThat(captured.list.get(1).getMDCPropertyMap())
        .containsEntry("tenant", "outer-tenant")
        .doesNotContainKey("timeline");
  }

  @Test
  void everyTaskOfAWrappedSchedulerLogsWithTheIdsAndLeavesItsThreadClean() {
    Scheduler shared = Schedulers.newBoundedElastic(1, 100, "shared");
    Scheduler timeline = LogContext.scheduler(shared, TENANT, TIMELINE);
    try {
      // publishOn, a delayed task and a periodic one all go through the wrapper's worker
      Flux.range(1, 3)
          .publishOn(timeline)
          .doOnNext(i -> logger.info("record {}", i))
          .then(Mono.delay(Duration.ofMillis(5), timeline))
          .doOnNext(x -> logger.info("timer"))
          .block(Duration.ofSeconds(10));
      // the same thread, outside the wrapper: no ids left behind
      Mono.fromRunnable(() -> logger.info("other work")).subscribeOn(shared).block();
    } finally {
      timeline.dispose();
    }
    assertThat(shared.isDisposed()).isTrue();
    List<Map<String, String>> mdc =
        captured.list.stream().map(ILoggingEvent::getMDCPropertyMap).toList();
    assertThat(mdc).hasSize(5);
    assertThat(mdc.subList(0, 4))
        .allSatisfy(
            m ->
                assertThat(m)
                    .containsEntry("tenant", TENANT.toString())
                    .containsEntry("timeline", TIMELINE.toString()));
    assertThat(mdc.get(4)).doesNotContainKeys("tenant", "timeline");
  }
}
