package io.zenith.replication.testing;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import io.netty.util.ResourceLeakDetector.Level;
import java.util.List;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Fails a test class whose run leaked a Netty {@code ByteBuf}. The class runs with the paranoid
 * leak detector, which tracks every buffer and logs "LEAK:" when one is garbage-collected
 * unreleased; {@link LeakLogAppender} collects those lines. After the class, this extension forces
 * collection and allocates a few buffers (tracking a new buffer is when the detector reports
 * collected leaks), then asserts nothing was reported. Reports are kept across classes: a leak
 * collected late fails the class during which it is reported.
 *
 * <p>The surefire argLine sets the JVM's level: paranoid in the unit-test modules, advanced
 * (sampled) in {@code integration}, whose long workloads paranoid made CPU-bound (conventions.md,
 * Tests). This extension raises the level to paranoid for its class and restores the JVM's level
 * after it; leak detection must be on. {@link Sampled} checks a class at the JVM's level instead.
 * Not thread-safe: JUnit runs the callbacks of one class at a time (classes run one after another).
 */
public final class NettyLeakCheck implements BeforeAllCallback, AfterAllCallback {
  private static final ExtensionContext.Namespace NS =
      ExtensionContext.Namespace.create(NettyLeakCheck.class);

  @Override
  public void beforeAll(ExtensionContext context) {
    context.getStore(NS).put("level", requireOn());
    ResourceLeakDetector.setLevel(Level.PARANOID);
  }

  @Override
  public void afterAll(ExtensionContext context) throws InterruptedException {
    try {
      failOnReports();
    } finally {
      ResourceLeakDetector.setLevel(context.getStore(NS).get("level", Level.class));
    }
  }

  /**
   * The same check at the JVM's level (sampled under advanced): for the long workload classes,
   * where a leak report must fail the class too, but tracking every buffer costs minutes.
   */
  public static final class Sampled implements BeforeAllCallback, AfterAllCallback {
    @Override
    public void beforeAll(ExtensionContext context) {
      requireOn();
    }

    @Override
    public void afterAll(ExtensionContext context) throws InterruptedException {
      failOnReports();
    }
  }

  private static Level requireOn() {
    Level level = ResourceLeakDetector.getLevel();
    if (level == Level.DISABLED) {
      throw new IllegalStateException(
          "tests must run with Netty's leak detection on (-Dio.netty.leakDetection.level in the"
              + " surefire argLine), got "
              + level);
    }
    return level;
  }

  private static void failOnReports() throws InterruptedException {
    List<String> leaks = collectLeakReports();
    if (!leaks.isEmpty()) {
      throw new AssertionError(
          leaks.size() + " ByteBuf leak(s) reported by Netty:\n" + String.join("\n\n", leaks));
    }
  }

  /**
   * Forces garbage collection and leak reporting; returns the reports seen since the start. The
   * allocations run paranoid: below it the detector reports only when it samples a new buffer.
   */
  public static List<String> collectLeakReports() throws InterruptedException {
    Level level = ResourceLeakDetector.getLevel();
    ResourceLeakDetector.setLevel(Level.PARANOID);
    try {
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
    } finally {
      ResourceLeakDetector.setLevel(level);
    }
    return LeakLogAppender.leaks();
  }
}
