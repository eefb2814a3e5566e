package io.zenith.it.support;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.ingest.DatadirImport;
import io.zenith.layer.LayerStore;
import io.zenith.pg.PgDistribution;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A Zenith deployment inside a test or benchmark JVM: a pageserver (in this process, on free ports)
 * holding one tenant whose timeline {@code main} was imported from a fresh initdb, and real
 * PostgreSQL 15 computes built from its basebackups. A primary compute has the pageserver as its
 * synchronous {@code remote_write} standby and streams its WAL to it.
 *
 * <p>Not thread-safe. Close computes before the environment.
 */
public final class ZenithEnv implements AutoCloseable {
  private final Path dataDir;
  private final TenantId tenant = TenantId.generate();
  private final TimelineId main = TimelineId.generate();
  private final Pageserver pageserver;

  private ZenithEnv(Path dataDir, PageserverConfig config) throws IOException {
    this.dataDir = dataDir;
    try (PgCluster initdb = PgCluster.initdb("--data-checksums");
        LayerStore store = LayerStore.open(dataDir, config.layerStoreConfig())) {
      store.createTenant(tenant);
      DatadirImport.run(store, tenant, main, initdb.dataDir());
    }
    this.pageserver = Pageserver.start(dataDir, config);
  }

  /** A pageserver on {@code dataDir} with test settings (free ports, short LSN waits). */
  public static ZenithEnv start(Path dataDir) throws IOException {
    return start(
        dataDir,
        new PageserverConfig(
            "127.0.0.1:0", "127.0.0.1:0", "test", "16MiB", "10m", "10s", "64MiB", 2, "10s", true));
  }

  public static ZenithEnv start(Path dataDir, PageserverConfig config) throws IOException {
    return new ZenithEnv(dataDir, config.validate());
  }

  public Pageserver pageserver() {
    return pageserver;
  }

  public TenantId tenant() {
    return tenant;
  }

  public TimelineId main() {
    return main;
  }

  /** A primary compute on {@code timeline}'s latest state, streaming its WAL to the pageserver. */
  public PgCluster primary(TimelineId timeline, Map<String, String> settings) {
    Map<String, String> s = new HashMap<>();
    s.put("synchronous_standby_names", "pageserver");
    s.put("synchronous_commit", "remote_write");
    s.put("wal_level", "replica");
    s.put("wal_log_hints", "on");
    s.put("max_wal_senders", "4");
    s.put("max_replication_slots", "4");
    s.putAll(settings);
    PgCluster c = compute(timeline, null, s, false);
    pageserver.startWalReceiver(
        tenant,
        timeline,
        ApiModel.WalSource.fromCompute(
            "127.0.0.1", c.port(), "postgres", "pageserver", "pageserver"));
    return c;
  }

  /**
   * A compute on {@code timeline}'s latest state with {@code settings} and no WAL receiver: the
   * caller decides where its WAL goes (safekeepers).
   */
  public PgCluster compute(TimelineId timeline, Map<String, String> settings) {
    return compute(timeline, null, settings, false);
  }

  /** A read-only compute on {@code timeline} as of {@code lsn}. */
  public PgCluster readOnly(TimelineId timeline, String lsn) {
    return compute(timeline, lsn, Map.of("hot_standby", "on"), true);
  }

  /** Stops a primary cleanly (its WAL reaches the pageserver) and stops streaming from it. */
  public void stop(PgCluster primary, TimelineId timeline) {
    primary.stop();
    pageserver.stopWalReceiver(tenant, timeline);
  }

  /** The bytes of a basebackup of {@code timeline} (at {@code lsn}, or latest if null). */
  public Path basebackup(TimelineId timeline, String lsn) {
    return Basebackups.tar(pageserver.pgPort(), tenant, timeline, lsn, dataDir);
  }

  private PgCluster compute(
      TimelineId timeline, String lsn, Map<String, String> settings, boolean standby) {
    Path tar = basebackup(timeline, lsn);
    PgCluster c =
        PgCluster.fromDataDirectory(
                dir -> {
                  Basebackups.extract(tar, dir);
                  if (standby) {
                    try {
                      Files.writeString(dir.resolve("standby.signal"), "");
                    } catch (IOException e) {
                      throw new UncheckedIOException(e);
                    }
                  }
                })
            .writeMinimalConfig();
    try {
      Files.delete(tar);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return c.configure(settings).start();
  }

  /** Runs {@code psql -c sql} against a port; returns its exit code and output. */
  public static ProcessResult psql(int port, String sql) {
    try {
      Process p =
          new ProcessBuilder(
                  List.of(
                      PgDistribution.detect().bin("psql").toString(),
                      "-X",
                      "-q",
                      "-h",
                      "127.0.0.1",
                      "-p",
                      Integer.toString(port),
                      "-U",
                      "postgres",
                      "-c",
                      sql))
              .redirectErrorStream(true)
              .start();
      String out = new String(p.getInputStream().readAllBytes());
      return new ProcessResult(p.waitFor(), out);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Exit code and combined output of a process. */
  public record ProcessResult(int exitCode, String output) {}

  @Override
  public void close() {
    pageserver.close();
  }
}
