package io.zenith.replication.safekeeper;

import io.zenith.wal.log.ControlFile.LagLimits;
import java.time.Duration;

/**
 * A safekeeper process's settings.
 *
 * @param id this safekeeper's id (1, 2, …): it names its slot and application name on computes
 * @param members how many safekeepers there are (this one included); a quorum is a majority
 * @param defaultLagLimits lag limits of timelines created without their own
 * @param reconnectMax longest wait between attempts to reach a compute
 * @param pageserver which connections are the pageserver's (only their feedback counts)
 * @param walOffload whether the safekeepers offload completed WAL segments to remote storage (ADR
 *     0025): retention then also keeps every segment above the timeline's {@code backup_lsn}
 */
public record SafekeeperConfig(
    int id,
    int members,
    LagLimits defaultLagLimits,
    Duration reconnectMax,
    PageserverSource pageserver,
    boolean walOffload) {

  public SafekeeperConfig {
    if (id < 1) {
      throw new IllegalArgumentException("safekeeper id must be at least 1, got " + id);
    }
    if (members < 1) {
      throw new IllegalArgumentException("there must be at least one safekeeper");
    }
  }

  /** Defaults for safekeeper {@code id} of {@code members}. */
  public static SafekeeperConfig of(int id, int members) {
    return new SafekeeperConfig(
        id, members, LagLimits.NONE, Duration.ofSeconds(5), PageserverSource.LOCAL, false);
  }

  /** The replication slot and {@code application_name} it uses on computes: {@code sk_<id>}. */
  public String name() {
    return nameOf(id);
  }

  public static String nameOf(int id) {
    return "sk_" + id;
  }

  /** A majority of {@link #members}. */
  public int quorum() {
    return members / 2 + 1;
  }

  public SafekeeperConfig withDefaultLagLimits(LagLimits l) {
    return new SafekeeperConfig(id, members, l, reconnectMax, pageserver, walOffload);
  }

  public SafekeeperConfig withPageserver(PageserverSource p) {
    return new SafekeeperConfig(id, members, defaultLagLimits, reconnectMax, p, walOffload);
  }

  public SafekeeperConfig withWalOffload(boolean on) {
    return new SafekeeperConfig(id, members, defaultLagLimits, reconnectMax, pageserver, on);
  }
}
