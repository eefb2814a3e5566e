package io.zenith.replication.testing;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
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

  private static void leakOne() {
    ByteBuf leaked = PooledByteBufAllocator.DEFAULT.directBuffer(64);
    leaked.writeLong(42);
    // dropped without release()
  }
}
