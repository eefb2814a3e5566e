package io.zenith.gateway.control;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;

/**
 * The TCP ports of computes: a port asked for is checked, one not asked for is the first free one
 * from {@code compute_port_base} that no compute and no server of the repository owns. Free means
 * nothing listens on it on the loopback interface now. Reads the repository; not thread-safe (the
 * caller holds the repository's lock).
 */
final class Ports {
  private final Repository repo;

  Ports(Repository repo) {
    this.repo = repo;
  }

  /** {@code port} if it is in range, belongs to no compute and is free, else why not. */
  int check(int port) {
    if (port < 1024 || port > 65535) {
      throw new ControlPlaneException("port " + port + " is out of range (1024..65535)");
    }
    for (ComputeNode n : repo.computes()) {
      if (n.spec().port() == port) {
        throw new ControlPlaneException(
            "port " + port + " already belongs to compute '" + n.spec().name() + "'");
      }
    }
    if (!free(port)) {
      throw new ControlPlaneException(
          "port " + port + " is in use by another program; choose another with --port");
    }
    return port;
  }

  /**
   * The first port from {@code compute_port_base} that nothing of the repository owns and is free.
   */
  int allocate() {
    List<Integer> taken =
        new ArrayList<>(repo.computes().stream().map(n -> n.spec().port()).toList());
    // the repository's own servers may be stopped now, their ports are still theirs
    taken.add(repo.config().pageserverHttp().getPort());
    taken.add(repo.config().pageserverPg().getPort());
    for (RepoConfig.SafekeeperAddresses a : repo.config().safekeepers()) {
      taken.add(a.http().getPort());
      taken.add(a.pg().getPort());
    }
    for (int p = repo.config().computePortBase(); p < 65536; p++) {
      if (!taken.contains(p) && free(p)) {
        return p;
      }
    }
    throw new ControlPlaneException(
        "no free port from compute_port_base " + repo.config().computePortBase());
  }

  /** True if a server socket can bind {@code port} on the loopback interface now. */
  static boolean free(int port) {
    try (ServerSocket s = new ServerSocket()) {
      s.setReuseAddress(true);
      s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
