package io.zenith.it.pageserver;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.ingest.DatadirImport;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.pg.PgDistribution;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;

/**
 * Shared pieces of the pageserver's end-to-end tests: a freshly initdb'ed cluster imported into a
 * pageserver's data directory, basebackups through {@code psql}, computes built from them that
 * stream their WAL back, and SQL through {@code psql}. Not thread-safe.
 */
final class PageserverHarness {
  private PageserverHarness() {}

  /** One initdb (checksums on) per test JVM: every test's pageserver imports it. */
  private static final class Template {
    static final PgCluster CLUSTER = make();

    private static PgCluster make() {
      PgCluster c = PgCluster.initdb("--data-checksums");
      Runtime.getRuntime().addShutdownHook(new Thread(c::close));
      return c;
    }
  }

  /** Settings for a pageserver on free ports. */
  static PageserverConfig config(
      String checkpointDistance, String waitLsnTimeout, int walredoProcesses) {
    return new PageserverConfig(
            "127.0.0.1:0",
            "127.0.0.1:0",
            "test",
            checkpointDistance,
            "10m",
            waitLsnTimeout,
            "64MiB",
            walredoProcesses,
            "10s",
            true)
        .validate();
  }

  /** Imports the template cluster as a new root timeline (creating the tenant if needed). */
  static void importTimeline(Path dataDir, TenantId tenant, TimelineId timeline) {
    importTimeline(dataDir, tenant, timeline, Template.CLUSTER);
  }

  /**
   * Imports {@code source} (an initdb'ed cluster, e.g. with other WAL segments) as a new root
   * timeline (creating the tenant if needed).
   */
  static void importTimeline(Path dataDir, TenantId tenant, TimelineId timeline, PgCluster source) {
    try (LayerStore store = LayerStore.open(dataDir, LayerStoreConfig.DEFAULT)) {
      if (!store.tenants().contains(tenant)) {
        store.createTenant(tenant);
      }
      DatadirImport.run(store, tenant, timeline, source.dataDir());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** What a client program printed and how it exited. */
  record Run(int exit, String output) {}

  /** Runs psql against the pageserver's libpq endpoint; stdout goes to {@code out} if not null. */
  static Run psql(Pageserver ps, String command, Path out) {
    List<String> cmd =
        new ArrayList<>(
            List.of(
                PgDistribution.detect().bin("psql").toString(),
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                Integer.toString(ps.pgPort()),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                command));
    try {
      Path err = Files.createTempFile("zenith-psql-", ".err");
      try {
        ProcessBuilder pb =
            new ProcessBuilder(cmd)
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
                .redirectError(err.toFile());
        pb.redirectOutput(
            out == null
                ? ProcessBuilder.Redirect.DISCARD
                : ProcessBuilder.Redirect.to(out.toFile()));
        Process p = pb.start();
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
          p.destroyForcibly();
          throw new AssertionError("psql did not finish: " + command);
        }
        return new Run(p.exitValue(), Files.readString(err, StandardCharsets.UTF_8));
      } finally {
        Files.deleteIfExists(err);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /** {@code basebackup <tenant> <timeline> [<lsn>]} into {@code tar}. */
  static Run basebackup(Pageserver ps, TenantId tenant, TimelineId timeline, String lsn, Path tar) {
    String cmd = "basebackup " + tenant + " " + timeline + (lsn == null ? "" : " " + lsn);
    return psql(ps, cmd, tar);
  }

  /**
   * A compute on {@code timeline} at {@code lsn} (latest if null), started. A primary has the
   * pageserver as its synchronous {@code remote_write} standby; otherwise it is a hot standby.
   */
  static PgCluster compute(
      Pageserver ps, TenantId tenant, TimelineId timeline, String lsn, boolean primary) {
    return compute(
        ps,
        tenant,
        timeline,
        lsn,
        c -> {
          if (primary) {
            c.configure(
                Map.of(
                    "synchronous_standby_names", "pageserver",
                    "synchronous_commit", "remote_write",
                    "wal_level", "replica",
                    "wal_log_hints", "on",
                    "max_wal_senders", "4",
                    "max_replication_slots", "4"));
          } else {
            c.configure(Map.of("hot_standby", "on"));
            try {
              Files.writeString(c.dataDir().resolve("standby.signal"), "");
              c.distribution().giveToPgUser(c.dataDir().resolve("standby.signal"));
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            }
          }
        });
  }

  /** A compute on {@code timeline} at {@code lsn} (latest if null), {@code configure}d, started. */
  static PgCluster compute(
      Pageserver ps,
      TenantId tenant,
      TimelineId timeline,
      String lsn,
      java.util.function.Consumer<PgCluster> configure) {
    Path tar;
    try {
      tar = Files.createTempFile("zenith-bb-", ".tar");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    try {
      Run r = basebackup(ps, tenant, timeline, lsn, tar);
      assertThat(r.exit()).as("basebackup: %s", r.output()).isZero();
      PgCluster c = PgCluster.fromDataDirectory(dir -> extract(tar, dir)).writeMinimalConfig();
      configure.accept(c);
      return c.start();
    } finally {
      try {
        Files.deleteIfExists(tar);
      } catch (IOException e) {
        // a temp file
      }
    }
  }

  static void extract(Path tar, Path dir) {
    try (InputStream in = Files.newInputStream(tar);
        TarArchiveInputStream t = new TarArchiveInputStream(in)) {
      TarArchiveEntry e;
      while ((e = t.getNextEntry()) != null) {
        Path p = dir.resolve(e.getName());
        if (e.isDirectory()) {
          Files.createDirectories(p);
        } else {
          Files.createDirectories(p.getParent());
          Files.copy(t, p);
        }
      }
    } catch (IOException ex) {
      throw new UncheckedIOException(ex);
    }
  }

  /** The WAL source the tests use: the compute, replication slot {@code pageserver}. */
  static ApiModel.WalSource source(PgCluster compute) {
    return ApiModel.WalSource.fromCompute(
        "127.0.0.1", compute.port(), "postgres", "pageserver", "pageserver");
  }

  /** Streams {@code timeline}'s WAL from {@code compute}. */
  static void stream(Pageserver ps, TenantId tenant, TimelineId timeline, PgCluster compute) {
    ps.startWalReceiver(tenant, timeline, source(compute));
  }
}
