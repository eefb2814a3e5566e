package io.zenith.page.fuse;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * {@link LsnHold} without a pageserver: it keeps trying to open its connection at every probe while
 * none can be opened, and {@link LsnHold#close} ends its thread promptly. That a held connection
 * keeps GC at the LSN is {@code LazyComputeFilesTest}'s (integration).
 */
class LsnHoldTest {
  private static LazyFsConfig config() {
    return new LazyFsConfig(
        "127.0.0.1",
        1,
        "postgres",
        null,
        TenantId.generate(),
        TimelineId.generate(),
        Lsn.of(0x1000000),
        false,
        Duration.ofSeconds(5),
        2,
        4,
        0,
        0);
  }

  @Test
  void aPageserverThatCannotBeReachedIsTriedAgainAtEveryProbeUntilClosed() throws Exception {
    AtomicInteger attempts = new AtomicInteger();
    LsnHold hold =
        new LsnHold(
            config(),
            Duration.ofMillis(50),
            () -> {
              attempts.incrementAndGet();
              throw new IOException("Connection refused");
            });
    long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
    while (attempts.get() < 3) {
      assertThat(System.nanoTime()).as("three attempts within 10 s").isLessThan(deadline);
      Thread.sleep(10);
    }
    assertThat(hold.holding()).isFalse();
    long started = System.nanoTime();
    hold.close();
    assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(2));
    int after = attempts.get();
    Thread.sleep(200);
    assertThat(attempts.get()).as("no attempt after close").isEqualTo(after);
  }
}
