package io.zenith.layer;

import io.zenith.wal.Lsn;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The spells of failing layer flushes of one timeline (a full disk): why they fail while they do,
 * how many failed, and one log line when a spell begins and one when it ends, so that a flush
 * thread retrying every few milliseconds does not flood the log.
 *
 * <p>Thread-safe: the flush thread records outcomes, any thread reads them.
 */
final class FlushFailures {
  /** Logged as the timeline's own lines were before this class existed (logback names it). */
  private static final Logger log = LoggerFactory.getLogger(Timeline.class);

  private final String timeline;

  /** Why flushing fails, while it does; null while it works. Changed under lock. */
  private volatile String failure;

  private final AtomicLong failures = new AtomicLong();
  private final Object lock = new Object();

  /** When the current spell of failed flushes began, and the failure count then. */
  private long failingSinceNanos;

  private long failuresBefore;

  /** {@code timeline} names the timeline in log lines ({@code tenant/timeline}). */
  FlushFailures(String timeline) {
    this.timeline = timeline;
  }

  /**
   * Records a failed flush because of {@code e} ({@code why}: the cause shown while it fails);
   * {@code diskConsistentLsn} is where the timeline's durable state stays meanwhile.
   */
  void failed(Exception e, String why, Supplier<Lsn> diskConsistentLsn) {
    synchronized (lock) {
      long n = failures.incrementAndGet();
      if (failure == null) {
        failingSinceNanos = System.nanoTime();
        failuresBefore = n - 1;
        log.warn(
            "cannot flush layers of {}: {}; the frozen layers stay queued and flushes are"
                + " retried (disk-consistent LSN stays at {}; ingest waits once too many layers"
                + " are frozen)",
            timeline,
            e.getMessage(),
            diskConsistentLsn.get());
      }
      failure = why;
    }
  }

  /** Records a flush that worked; ends a spell of failures. */
  void worked() {
    if (failure == null) {
      return;
    }
    synchronized (lock) {
      if (failure != null) {
        log.info(
            "flushing layers of {} works again, after {} failed attempts in {} s",
            timeline,
            failures.get() - failuresBefore,
            Duration.ofNanos(System.nanoTime() - failingSinceNanos).toSeconds());
        failure = null;
      }
    }
  }

  Optional<String> current() {
    return Optional.ofNullable(failure);
  }

  long count() {
    return failures.get();
  }
}
