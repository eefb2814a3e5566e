package io.zenith.replication.testing;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import java.util.List;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Fails a test class whose run leaked a Netty {@code ByteBuf}: the surefire argLine turns on the
 * paranoid leak detector, which tracks every buffer and logs "LEAK:" when one is garbage-collected
 * unreleased; {@link LeakLogAppender} collects those lines. After the class, this extension forces
 * collection and allocates a few buffers (tracking a new buffer is when the detector reports
 * collected leaks), then asserts nothing was reported. Reports are kept across classes: a leak
 * collected late fails the class during which it is reported.
 */
public final class NettyLeakCheck implements BeforeAllCallback, AfterAllCallback {

  @Override
  public void beforeAll(ExtensionContext context) {
    if (ResourceLeakDetector.getLevel() != ResourceLeakDetector.Level.PARANOID) {
      throw new IllegalStateException(
          "tests must run with -Dio.netty.leakDetection.level=paranoid (surefire argLine), got "
              + ResourceLeakDetector.getLevel());
    }
  }

  @Override
  public void afterAll(ExtensionContext context) throws InterruptedException {
    List<String> leaks = collectLeakReports();
    if (!leaks.isEmpty()) {
      throw new AssertionError(
          leaks.size() + " ByteBuf leak(s) reported by Netty:\n" + String.join("\n\n", leaks));
    }
  }

  /** Forces garbage collection and leak reporting; returns the reports seen since the start. */
  public static List<String> collectLeakReports() throws InterruptedException {
    for (int i = 0; i < 5; i++) {
      System.gc();
      Thread.sleep(20);
      for (int j = 0; j < 10; j++) {
        ByteBuf a = PooledByteBufAllocator.DEFAULT.directBuffer(16);
        a.release();
        ByteBuf b = UnpooledByteBufAllocator.DEFAULT.heapBuffer(16);
        b.release();
      }
    }
    return LeakLogAppender.leaks();
  }
}
