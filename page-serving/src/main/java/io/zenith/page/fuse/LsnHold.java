package io.zenith.page.fuse;

import io.zenith.page.stream.PagestreamClient;
import io.zenith.page.stream.PagestreamRequest;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps a read-only compute's LSN readable on the pageserver for as long as the mount lives: one
 * pagestream connection of its own, opened with the LSN pinned ({@code pagestream <tenant>
 * <timeline> <lsn>}: GC never raises the timeline's cutoff above it while the stream runs), probed
 * every {@link #PROBE} with a cheap request at the LSN and opened again when it fails (a pageserver
 * restart drops every pin). The pool's connections pin the LSN too; this one makes sure a pin
 * exists while the compute reads nothing, and from the mount on. What it cannot cover: the seconds
 * between the slim basebackup (pinned while it streams) and its first connection, and a pageserver
 * restart until its next probe; a GC pass in those windows may pass the LSN, and the compute's
 * reads then fail with EIO (ADR 0021, "GC and lazy computes").
 *
 * <p>One daemon thread; {@link #close} drops the connection and ends the thread (a connection
 * attempt in progress is dropped when it completes, within the pagestream timeout). Thread-safe.
 */
final class LsnHold implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(LsnHold.class);

  /** How often the held connection is checked (and reopened if it is gone). */
  static final Duration PROBE = Duration.ofSeconds(5);

  /** {@code pg_database}: a shared catalog every cluster has, cheap to ask about. */
  private static final RelTag PG_DATABASE = new RelTag(RelTag.GLOBAL_TABLESPACE, 0, 1262);

  @FunctionalInterface
  interface Connector {
    PagestreamClient connect() throws IOException;
  }

  private final Lsn lsn;
  private final TenantId tenant;
  private final TimelineId timeline;
  private final Duration probe;
  private final Connector connector;
  private final Thread thread;
  private volatile boolean closed;
  private volatile PagestreamClient held;

  /**
   * Starts holding {@code config}'s LSN through connections from {@code connector} (pinned ones).
   */
  LsnHold(LazyFsConfig config, Connector connector) {
    this(config, PROBE, connector);
  }

  LsnHold(LazyFsConfig config, Duration probe, Connector connector) {
    this.lsn = config.lsn();
    this.tenant = config.tenant();
    this.timeline = config.timeline();
    this.probe = probe;
    this.connector = connector;
    this.thread = Thread.ofPlatform().daemon().name("lsn-hold-" + lsn).start(this::run);
  }

  /** Whether a connection holds the LSN now (as of the last probe). */
  boolean holding() {
    return held != null;
  }

  @SuppressWarnings("try")
  private void run() {
    // the agent's log lines name the compute's timeline
    try (LogContext.Scope s = LogContext.scope(tenant, timeline)) {
      hold();
    }
  }

  private void hold() {
    long id = 0;
    boolean warned = false;
    while (!closed) {
      PagestreamClient c = held;
      try {
        if (c == null) {
          if (!adopt(connector.connect())) {
            return;
          }
          if (warned) {
            log.info("holding {} on the pageserver again", lsn);
          }
          warned = false;
        } else {
          c.call(new PagestreamRequest.Exists(--id, lsn, lsn, PG_DATABASE, ForkNumber.MAIN));
        }
      } catch (IOException | RuntimeException e) {
        PagestreamClient gone = held;
        held = null;
        if (gone != null) {
          gone.abort();
        }
        if (!warned && !closed) {
          log.warn(
              "cannot hold {} on the pageserver (retrying every {} ms): {}",
              lsn,
              probe.toMillis(),
              e.toString());
          warned = true;
        }
        if (c != null) {
          continue; // the held connection broke: open a new one at once, not a probe later
        }
      }
      try {
        TimeUnit.MILLISECONDS.sleep(probe.toMillis());
      } catch (InterruptedException e) {
        return; // closed
      }
    }
  }

  /** Takes a new connection as the held one, unless closed meanwhile (then it is dropped). */
  private synchronized boolean adopt(PagestreamClient c) {
    if (closed) {
      c.abort();
      return false;
    }
    held = c;
    return true;
  }

  @Override
  public void close() {
    PagestreamClient c;
    synchronized (this) {
      closed = true;
      c = held;
      held = null;
    }
    if (c != null) {
      c.abort(); // unblocks a probe in progress
    }
    thread.interrupt();
    try {
      thread.join(Math.max(1000, probe.toMillis()));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
