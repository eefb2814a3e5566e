package io.zenith.replication.testing;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.AppenderBase;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/** Keeps every message Netty's leak detector logs (configured in logback-test.xml). */
public final class LeakLogAppender extends AppenderBase<ILoggingEvent> {
  private static final List<String> LEAKS = new CopyOnWriteArrayList<>();

  @Override
  protected void append(ILoggingEvent event) {
    if (event.getFormattedMessage().contains("LEAK")) {
      LEAKS.add(event.getFormattedMessage());
    }
  }

  /** Reports seen so far. */
  public static List<String> leaks() {
    return List.copyOf(LEAKS);
  }

  /** Forgets the reports seen so far. */
  public static void clear() {
    LEAKS.clear();
  }
}
