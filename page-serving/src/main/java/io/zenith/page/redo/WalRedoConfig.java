package io.zenith.page.redo;

import java.nio.file.Path;
import java.time.Duration;

/**
 * Settings of a {@link WalRedoManager}.
 *
 * @param scratchParent where the scratch root ({@link ScratchCluster}) is created; PostgreSQL's OS
 *     user must be able to reach it, and it must not be mounted {@code noexec}
 * @param dataChecksums initdb the scratch cluster with {@code --data-checksums}, like the computes
 * @param walLogHints {@code wal_log_hints} of the scratch cluster, like the computes (redo consults
 *     {@code XLogHintBitIsNeeded()}, which is true if either setting is on)
 * @param maxProcessesPerTenant redo processes (and threads) per tenant at most
 * @param maxQueuedPerTenant requests waiting per tenant at most; more fail with {@code OVERLOADED}
 * @param requestTimeout how long one round trip may take before the process is killed
 * @param startTimeout how long a process may take to start (template copy excluded)
 * @param idleTimeout a process with nothing to do for this long is shut down
 * @param maxRequestsPerProcess a process is replaced after serving this many requests (bounds
 *     leftovers such as the subtransaction counter of its long-running transaction)
 */
public record WalRedoConfig(
    Path scratchParent,
    boolean dataChecksums,
    boolean walLogHints,
    int maxProcessesPerTenant,
    int maxQueuedPerTenant,
    Duration requestTimeout,
    Duration startTimeout,
    Duration idleTimeout,
    long maxRequestsPerProcess) {

  public WalRedoConfig {
    if (scratchParent == null
        || requestTimeout == null
        || startTimeout == null
        || idleTimeout == null) {
      throw new IllegalArgumentException("paths and durations are required");
    }
    if (maxProcessesPerTenant < 1 || maxQueuedPerTenant < 1 || maxRequestsPerProcess < 1) {
      throw new IllegalArgumentException("process, queue and request limits must be positive");
    }
    if (requestTimeout.isNegative()
        || requestTimeout.isZero()
        || startTimeout.isNegative()
        || startTimeout.isZero()
        || idleTimeout.isNegative()) {
      throw new IllegalArgumentException("timeouts must be positive");
    }
  }

  /**
   * Checksums and {@code wal_log_hints} on (what computes run with), 2 processes per tenant (the
   * machines have 2 cores), 10,000 queued requests, 10 s per request, 60 s to start, idle processes
   * stopped after 5 minutes, a process replaced after a million requests; scratch under {@code
   * java.io.tmpdir}.
   */
  public static WalRedoConfig defaults() {
    return new WalRedoConfig(
        Path.of(System.getProperty("java.io.tmpdir")),
        true,
        true,
        2,
        10_000,
        Duration.ofSeconds(10),
        Duration.ofSeconds(60),
        Duration.ofMinutes(5),
        1_000_000);
  }

  public WalRedoConfig withScratchParent(Path p) {
    return new WalRedoConfig(
        p,
        dataChecksums,
        walLogHints,
        maxProcessesPerTenant,
        maxQueuedPerTenant,
        requestTimeout,
        startTimeout,
        idleTimeout,
        maxRequestsPerProcess);
  }

  public WalRedoConfig withChecksums(boolean dataChecksums, boolean walLogHints) {
    return new WalRedoConfig(
        scratchParent,
        dataChecksums,
        walLogHints,
        maxProcessesPerTenant,
        maxQueuedPerTenant,
        requestTimeout,
        startTimeout,
        idleTimeout,
        maxRequestsPerProcess);
  }

  public WalRedoConfig withMaxProcessesPerTenant(int n) {
    return new WalRedoConfig(
        scratchParent,
        dataChecksums,
        walLogHints,
        n,
        maxQueuedPerTenant,
        requestTimeout,
        startTimeout,
        idleTimeout,
        maxRequestsPerProcess);
  }

  public WalRedoConfig withMaxQueuedPerTenant(int n) {
    return new WalRedoConfig(
        scratchParent,
        dataChecksums,
        walLogHints,
        maxProcessesPerTenant,
        n,
        requestTimeout,
        startTimeout,
        idleTimeout,
        maxRequestsPerProcess);
  }

  public WalRedoConfig withRequestTimeout(Duration d) {
    return new WalRedoConfig(
        scratchParent,
        dataChecksums,
        walLogHints,
        maxProcessesPerTenant,
        maxQueuedPerTenant,
        d,
        startTimeout,
        idleTimeout,
        maxRequestsPerProcess);
  }

  public WalRedoConfig withIdleTimeout(Duration d) {
    return new WalRedoConfig(
        scratchParent,
        dataChecksums,
        walLogHints,
        maxProcessesPerTenant,
        maxQueuedPerTenant,
        requestTimeout,
        startTimeout,
        d,
        maxRequestsPerProcess);
  }

  public WalRedoConfig withMaxRequestsPerProcess(long n) {
    return new WalRedoConfig(
        scratchParent,
        dataChecksums,
        walLogHints,
        maxProcessesPerTenant,
        maxQueuedPerTenant,
        requestTimeout,
        startTimeout,
        idleTimeout,
        n);
  }
}
