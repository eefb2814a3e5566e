package io.zenith.gateway.control;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.pg.PgDistribution;
import java.io.PrintWriter;
import java.time.Duration;

/**
 * A primary without safekeepers: the pageserver is its synchronous standby ({@link
 * Computes#PAGESERVER_STANDBY}) and streams its WAL itself. Once the primary runs, the pageserver
 * is told to stream from it ({@link #attach}); once it stopped, to stop streaming ({@link
 * #detach}). Progress goes to {@code out}, warnings to {@code err}. Blocking; not thread-safe (the
 * caller holds the repository's lock).
 */
final class PageserverStandby {
  /** How long {@code pg start} waits for the pageserver to stream from the compute. */
  private static final Duration STREAMING = Duration.ofSeconds(20);

  private final Repository repo;
  private final PrintWriter out;
  private final PrintWriter err;

  PageserverStandby(Repository repo, PrintWriter out, PrintWriter err) {
    this.repo = repo;
    this.out = out;
    this.err = err;
  }

  /**
   * Makes the pageserver stream WAL from the running primary {@code node}; if it refuses, the
   * compute is stopped again (its commits would wait forever). Then waits (bounded) until it
   * streams, and warns if it does not.
   */
  void attach(ComputeNode node, PageserverClient ps, PgDistribution pg) {
    ComputeSpec spec = node.spec();
    try {
      ps.setWalSource(
          spec.tenant(),
          spec.timeline(),
          ApiModel.WalSource.fromCompute(
              "127.0.0.1",
              spec.port(),
              "postgres",
              Computes.PAGESERVER_STANDBY,
              Computes.PAGESERVER_STANDBY));
    } catch (RuntimeException e) {
      PgPrograms.stopImmediately(pg, node, false);
      throw new ControlPlaneException(
          "the pageserver did not take WAL from compute '"
              + spec.name()
              + "', so it was stopped again: "
              + e.getMessage());
    }
    awaitStreaming(ps, spec);
  }

  /** Waits (bounded) until the pageserver streams the primary's WAL; warns if it does not. */
  private void awaitStreaming(PageserverClient ps, ComputeSpec spec) {
    long deadline = System.nanoTime() + STREAMING.toNanos();
    String lastError = null;
    while (System.nanoTime() < deadline) {
      ApiModel.TimelineInfo t = ps.timeline(spec.tenant(), spec.timeline());
      ApiModel.WalReceiverInfo w = t.walReceiver();
      if (w != null && "streaming".equals(w.state())) {
        return;
      }
      lastError = w == null ? null : w.lastError();
      ServiceProcess.sleep(100);
    }
    err.println(
        "warning: the pageserver is not streaming WAL from compute '"
            + spec.name()
            + "' yet"
            + (lastError == null ? "" : " (" + lastError + ")")
            + "; commits wait until it does");
  }

  /**
   * Tells the pageserver to stop streaming from the stopped primary; a pageserver that is not
   * running is a note (the next primary's start replaces the source), one that refuses a warning.
   */
  void detach(ComputeSpec spec) {
    PageserverClient ps = repo.pageserver();
    try {
      ps.removeWalSource(spec.tenant(), spec.timeline());
    } catch (ControlPlaneException e) {
      out.println(
          "note: the pageserver is not running; it will stop streaming from compute '"
              + spec.name()
              + "' when the next compute of the branch starts");
    } catch (JsonHttpClient.ApiError e) {
      err.println("warning: the pageserver: " + e.getMessage());
    }
  }
}
