package io.zenith.replication.testing;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import io.netty.util.ResourceLeakDetector.Level;
import org.junit.jupiter.api.Test;

/** The leak oracle itself: a buffer dropped unreleased must be reported. */
class NettyLeakCheckTest {

  @Test
  void anUnreleasedBufferIsReported() throws InterruptedException {
    LeakLogAppender.clear();
    leakOne();
    assertThat(NettyLeakCheck.collectLeakReports()).isNotEmpty();
    LeakLogAppender.clear();
  }

  /**
   * Below paranoid the detector reports collected leaks only when it samples a new buffer: the
   * check of a sampled run (the integration module's) must still drain them.
   */
  @Test
  void aTrackedBufferLeakedUnderSampledDetectionIsReported() throws InterruptedException {
    Level level = ResourceLeakDetector.getLevel();
    LeakLogAppender.clear();
    try {
      leakOne(); // tracked: this JVM runs paranoid
      ResourceLeakDetector.setLevel(Level.ADVANCED);
      assertThat(NettyLeakCheck.collectLeakReports()).isNotEmpty();
      assertThat(ResourceLeakDetector.getLevel()).isEqualTo(Level.ADVANCED);
    } finally {
      ResourceLeakDetector.setLevel(level);
      LeakLogAppender.clear();
    }
  }

  private static void leakOne() {
    ByteBuf leaked = PooledByteBufAllocator.DEFAULT.directBuffer(64);
    leaked.writeLong(42);
    // dropped without release()
  }
}
