package io.zenith.it.safekeeper;

import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.gateway.safekeeper.SafekeeperProcess;
import io.zenith.gateway.safekeeper.SafekeeperSettings;
import io.zenith.replication.safekeeper.Election;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code n} real safekeeper processes' servers ({@link SafekeeperProcess}) in this JVM, each on its
 * own data directory and free loopback ports, configured as peers of each other; any of them can be
 * stopped and started again on the same directory and ports. Lag limits default to off (no
 * pageserver reads from them here). Not thread-safe; close it.
 */
public final class SafekeeperSet implements AutoCloseable {
  private final Path root;
  private final List<SafekeeperSettings> settings = new ArrayList<>();
  private final SafekeeperProcess[] running;

  public SafekeeperSet(Path root, int n) {
    this.root = root;
    this.running = new SafekeeperProcess[n];
    List<SafekeeperSettings.Peer> all = new ArrayList<>();
    for (int i = 1; i <= n; i++) {
      all.add(new SafekeeperSettings.Peer(i, "127.0.0.1:" + freePort(), "127.0.0.1:" + freePort()));
    }
    for (SafekeeperSettings.Peer me : all) {
      settings.add(
          new SafekeeperSettings(
                  me.id(),
                  me.http(),
                  me.pg(),
                  "0",
                  "0",
                  "0",
                  all.stream().filter(p -> !p.id().equals(me.id())).toList())
              .validate());
    }
  }

  static int freePort() {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public int size() {
    return running.length;
  }

  public Path dataDir(int id) {
    return root.resolve("sk" + id);
  }

  public SafekeeperSettings settings(int id) {
    return settings.get(id - 1);
  }

  /** Starts safekeeper {@code id} (writing its {@code safekeeper.toml} the first time). */
  public SafekeeperProcess start(int id) {
    try {
      Path dir = dataDir(id);
      java.nio.file.Files.createDirectories(dir);
      settings(id).write(dir);
      running[id - 1] = SafekeeperProcess.start(dir, SafekeeperSettings.load(dir));
      return running[id - 1];
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public SafekeeperSet startAll() {
    for (int i = 1; i <= running.length; i++) {
      start(i);
    }
    return this;
  }

  public void stop(int id) {
    SafekeeperProcess p = running[id - 1];
    running[id - 1] = null;
    if (p != null) {
      p.close();
    }
  }

  public SafekeeperProcess process(int id) {
    SafekeeperProcess p = running[id - 1];
    if (p == null) {
      throw new IllegalStateException("safekeeper " + id + " is not running");
    }
    return p;
  }

  /** A client of safekeeper {@code id}'s API (it need not run). */
  public SafekeeperClient client(int id) {
    InetSocketAddress http = settings(id).httpAddress();
    return new SafekeeperClient(id, http, Duration.ofSeconds(120));
  }

  public List<Election.Member> members(TenantId tenant, TimelineId timeline) {
    List<Election.Member> m = new ArrayList<>();
    for (int i = 1; i <= running.length; i++) {
      m.add(client(i).member(tenant, timeline));
    }
    return m;
  }

  @Override
  public void close() {
    for (int i = 1; i <= running.length; i++) {
      stop(i);
    }
  }
}
