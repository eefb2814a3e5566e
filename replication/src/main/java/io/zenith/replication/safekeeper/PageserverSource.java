package io.zenith.replication.safekeeper;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.List;

/**
 * Which connections to the safekeeper's WAL service are the pageserver's: only their standby status
 * updates are pageserver feedback, which moves the retention horizon (WAL below the pageserver's
 * durable position is deleted) and releases the lag limits (ADR 0007). Until authentication exists
 * (issue 14) a connection is the pageserver's when it sends this {@code application_name} and comes
 * from one of these addresses; a standby, {@code pg_receivewal} or anybody else gets WAL but its
 * status updates move nothing.
 *
 * <p>Immutable and thread-safe.
 *
 * @param applicationName the {@code application_name} the pageserver connects with
 * @param addresses the IP addresses its connections come from (at least one)
 */
public record PageserverSource(String applicationName, List<InetAddress> addresses) {
  /** The application name pageservers connect with. */
  public static final String DEFAULT_APPLICATION_NAME = "pageserver";

  /**
   * A pageserver on this machine, reaching safekeepers that listen on loopback: its connections
   * come from a loopback address.
   */
  public static final PageserverSource LOCAL =
      new PageserverSource(
          DEFAULT_APPLICATION_NAME,
          List.of(InetAddress.ofLiteral("127.0.0.1"), InetAddress.ofLiteral("::1")));

  public PageserverSource {
    if (applicationName.isEmpty()) {
      throw new IllegalArgumentException("the pageserver's application name must not be empty");
    }
    addresses = List.copyOf(addresses);
    if (addresses.isEmpty()) {
      throw new IllegalArgumentException("the pageserver needs at least one address");
    }
  }

  /** Whether a connection with {@code application_name} {@code name} from {@code remote} is it. */
  public boolean matches(String name, SocketAddress remote) {
    return applicationName.equals(name)
        && remote instanceof InetSocketAddress a
        && a.getAddress() != null
        && addresses.contains(a.getAddress());
  }
}
