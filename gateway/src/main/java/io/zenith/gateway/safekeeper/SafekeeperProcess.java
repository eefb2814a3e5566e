package io.zenith.gateway.safekeeper;

import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.zenith.gateway.cli.Main;
import io.zenith.gateway.config.RemoteStorageConfig;
import io.zenith.gateway.config.ServiceAuth;
import io.zenith.gateway.http.ProcessMeters;
import io.zenith.replication.auth.Tokens;
import io.zenith.replication.safekeeper.Safekeeper;
import io.zenith.replication.safekeeper.SafekeeperConfig;
import io.zenith.replication.safekeeper.backup.WalBackup;
import io.zenith.replication.safekeeper.peers.Gossip;
import io.zenith.replication.safekeeper.peers.LibpqWalFetcher;
import io.zenith.replication.safekeeper.serving.WalService;
import io.zenith.replication.server.PgWireServer;
import io.zenith.replication.server.PgWireServerOptions;
import io.zenith.wal.DirectoryLock;
import io.zenith.wal.DurableFiles;
import io.zenith.wal.log.SegmentAllocator;
import io.zenith.wal.remote.RemoteStorage;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;
import reactor.netty.DisposableServer;

/**
 * One safekeeper process ({@code zenith safekeeper run}): the timelines of its data directory
 * ({@link Safekeeper}, with their upkeep), the HTTP API, gossip with its peers over their HTTP
 * APIs, the libpq WAL service ({@link WalService}: pageservers, standbys, {@code pg_receivewal},
 * peers) and WAL fetching from peers over libpq.
 *
 * <p>Data directory: {@code safekeeper.toml}, {@code safekeeper.lock} (held for the process's life:
 * a second safekeeper on the directory is refused before it opens any timeline, {@link
 * DirectoryLock}) and one directory per tenant and timeline ({@code docs/formats/safekeeper.md}).
 * Thread-safe; {@link #close} stops the intakes and writes every timeline's positions.
 */
public final class SafekeeperProcess implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(SafekeeperProcess.class);

  /** How often peers are asked for their timelines' statuses. */
  static final Duration GOSSIP_INTERVAL = Duration.ofMillis(150);

  /** How often each timeline persists positions, catches up and learns its compute. */
  static final Duration UPKEEP_INTERVAL = Duration.ofMillis(200);

  /** The lock file of the data directory. */
  public static final String LOCK_FILE = "safekeeper.lock";

  private final SafekeeperSettings settings;
  private final DirectoryLock lock;
  private final PrometheusMeterRegistry meters;
  private final ProcessMeters processMeters;

  /** HTTP work and gossip calls; votes and adoptions block here for seconds. */
  private final Scheduler blocking = Schedulers.newBoundedElastic(8, 10_000, "safekeeper-io");

  /**
   * Blocking WAL reads of the libpq service: a tailing reader holds a thread only while it reads
   * one chunk, so a few threads serve many streams.
   */
  private final Scheduler walReaders = Schedulers.newBoundedElastic(8, 10_000, "safekeeper-wal");

  private final Safekeeper sk;
  private Gossip gossip;
  private DisposableServer http;
  private PgWireServer pg;
  private @Nullable RemoteStorage remote;
  private @Nullable WalBackup backup;

  private SafekeeperProcess(
      SafekeeperSettings settings,
      DirectoryLock lock,
      PrometheusMeterRegistry meters,
      Safekeeper sk) {
    this.settings = settings;
    this.lock = lock;
    this.meters = meters;
    this.processMeters = ProcessMeters.bind(meters);
    this.sk = sk;
  }

  /**
   * Opens the data directory and starts serving.
   *
   * @throws DirectoryLock.InUseException if another safekeeper (a process, or an instance in this
   *     JVM) holds the data directory; nothing in it was opened
   */
  public static SafekeeperProcess start(Path dataDir, SafekeeperSettings settings)
      throws IOException {
    return start(dataDir, settings, SegmentAllocator.ZEROS);
  }

  /**
   * {@link #start(Path, SafekeeperSettings)} with WAL segments taking their space from {@code disk}
   * (tests simulate a full disk there).
   */
  public static SafekeeperProcess start(
      Path dataDir, SafekeeperSettings settings, SegmentAllocator disk) throws IOException {
    DurableFiles.createDirectories(dataDir);
    // Before any timeline is opened: opening one scans its WAL and zeroes what follows the end.
    DirectoryLock lock = DirectoryLock.acquire(dataDir, LOCK_FILE);
    try {
      return start(dataDir, settings, disk, lock);
    } catch (IOException | RuntimeException e) {
      lock.closeAfter(e);
      throw e;
    }
  }

  private static SafekeeperProcess start(
      Path dataDir, SafekeeperSettings settings, SegmentAllocator disk, DirectoryLock lock)
      throws IOException {
    SafekeeperConfig config = settings.coreConfig();
    ServiceAuth auth = settings.auth(dataDir);
    Tokens.Verifier verifier = auth.verifier();
    String token = auth.readToken();
    LibpqWalFetcher fetcher =
        new LibpqWalFetcher(
            config.id(),
            id -> {
              SafekeeperSettings.Peer p = settings.peer(id);
              return p == null ? null : p.pgAddress();
            },
            () -> token);
    PrometheusMeterRegistry meters = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    Safekeeper sk;
    try {
      sk = Safekeeper.start(config, dataDir, fetcher, disk, meters, UPKEEP_INTERVAL);
    } catch (IOException | RuntimeException e) {
      meters.close();
      throw e;
    }
    SafekeeperProcess p = new SafekeeperProcess(settings, lock, meters, sk);
    try {
      p.remote =
          RemoteStorageConfig.open(
              settings.remoteStorage(), dataDir, "safekeeper " + config.id(), log);
      p.http =
          new SafekeeperHttpApi(sk, Main.version(), p.blocking, p.meters::scrape, verifier)
              .bind(settings.httpAddress());
      InetSocketAddress pgAddress = settings.pgAddress();
      p.pg =
          PgWireServer.start(
                  PgWireServerOptions.builder()
                      .host(pgAddress.getHostString())
                      .port(pgAddress.getPort())
                      .authenticator(auth.authenticator(verifier))
                      .build(),
                  new WalService(sk, p.walReaders))
              .block(Duration.ofSeconds(30));
      Map<Integer, SafekeeperClient> clients = new HashMap<>();
      for (SafekeeperSettings.Peer peer : settings.peers()) {
        clients.put(
            peer.id(),
            new SafekeeperClient(
                peer.id(), peer.httpAddress(), GOSSIP_INTERVAL.multipliedBy(10), () -> token));
      }
      p.gossip =
          new Gossip(
              sk,
              List.copyOf(clients.keySet()),
              id -> clients.get(id).allTimelines(),
              GOSSIP_INTERVAL,
              p.blocking);
      if (p.remote != null) {
        p.backup = new WalBackup(sk, p.remote, p.meters, WalBackup.Settings.DEFAULTS);
      }
      auth.warnIfOff(log, "safekeeper " + config.id(), List.of(settings.httpAddress(), pgAddress));
      log.info(
          "safekeeper {} ({} of {}) serving HTTP on {}, libpq on {}, data in {}",
          config.id(),
          config.quorum(),
          config.members(),
          p.httpPort(),
          p.pgPort(),
          dataDir);
      return p;
    } catch (RuntimeException e) {
      p.close();
      throw e;
    }
  }

  public Safekeeper safekeeper() {
    return sk;
  }

  public SafekeeperSettings settings() {
    return settings;
  }

  public int httpPort() {
    return http.port();
  }

  /** The port of the libpq WAL service. */
  public int pgPort() {
    return pg.port();
  }

  @Override
  public synchronized void close() {
    if (backup != null) {
      backup.close();
    }
    if (gossip != null) {
      gossip.close();
    }
    if (http != null) {
      http.disposeNow();
    }
    // Before the timelines close: their readers are cancelled with the connections.
    if (pg != null) {
      pg.close();
    }
    sk.close();
    RemoteStorageConfig.close(remote);
    blocking.dispose();
    walReaders.dispose();
    processMeters.close();
    meters.close();
    try {
      lock.close();
    } catch (IOException e) {
      log.warn("cannot release the lock of {}: {}", lock.directory(), e.getMessage());
    }
  }
}
