package io.zenith.page.redo;

import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.LockSupport;

/**
 * Deadlines for blocking pipe I/O: when an armed deadline passes, its action runs (it kills the
 * process whose read or write overran, which makes the blocked call return).
 *
 * <p>Arming and disarming only write a field: a redo request costs no scheduling, no wake-up of
 * another thread (which on two shared vCPUs cost more than the request itself). One daemon thread
 * for the whole JVM checks the armed deadlines every {@link #TICK}, so an action runs up to one
 * tick late. Thread-safe.
 */
final class Watchdog {
  private Watchdog() {}

  /** How often deadlines are checked. */
  static final Duration TICK = Duration.ofMillis(50);

  private static final Set<Deadline> WATCHED = ConcurrentHashMap.newKeySet();

  static {
    Thread t =
        Thread.ofPlatform().name("zenith-walredo-watchdog").daemon(true).unstarted(Watchdog::run);
    t.start();
  }

  /** A deadline owned by one thread at a time (one process), re-armed for each request. */
  static final class Deadline implements AutoCloseable {
    private final Runnable action;
    private volatile long due; // System.nanoTime() value; 0 = disarmed

    private Deadline(Runnable action) {
      this.action = action;
    }

    /** Runs the action if {@link #disarm} has not been called within {@code timeout}. */
    void arm(Duration timeout) {
      long d = System.nanoTime() + timeout.toNanos();
      due = d == 0 ? 1 : d;
    }

    void disarm() {
      due = 0;
    }

    /** Stops watching this deadline. */
    @Override
    public void close() {
      due = 0;
      WATCHED.remove(this);
    }

    private void check(long now) {
      long d = due;
      if (d != 0 && now - d >= 0) {
        due = 0;
        action.run();
      }
    }
  }

  /** A new, disarmed deadline that runs {@code action} when it passes. */
  static Deadline create(Runnable action) {
    Deadline d = new Deadline(action);
    WATCHED.add(d);
    return d;
  }

  private static void run() {
    while (true) {
      LockSupport.parkNanos(TICK.toNanos());
      long now = System.nanoTime();
      for (Deadline d : WATCHED) {
        try {
          d.check(now);
        } catch (RuntimeException e) {
          // an action that fails must not stop the other deadlines
        }
      }
    }
  }
}
