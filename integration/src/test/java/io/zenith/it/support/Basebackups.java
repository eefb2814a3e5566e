package io.zenith.it.support;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.pg.PgDistribution;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.jspecify.annotations.Nullable;

/** Data directories from a pageserver's libpq {@code basebackup} endpoint, fetched with psql. */
public final class Basebackups {
  private Basebackups() {}

  /**
   * A cluster (not started) whose data directory is the basebackup of {@code timeline} at {@code
   * lsn} (latest if null) from the pageserver at 127.0.0.1:{@code pgPort}, with the minimal
   * configuration files; the tar passes through {@code scratch}.
   */
  public static PgCluster fetch(
      int pgPort, TenantId tenant, TimelineId timeline, String lsn, Path scratch) {
    Path tar = tar(pgPort, tenant, timeline, lsn, scratch);
    PgCluster c = PgCluster.fromDataDirectory(dir -> extract(tar, dir)).writeMinimalConfig();
    try {
      Files.delete(tar);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return c;
  }

  /**
   * {@code basebackup <tenant> <timeline> [<lsn>]} from the pageserver at 127.0.0.1:{@code pgPort}
   * into a new tar file in {@code scratch}; fails the test if psql fails.
   */
  public static Path tar(
      int pgPort, TenantId tenant, TimelineId timeline, String lsn, Path scratch) {
    return tar(pgPort, null, tenant, timeline, lsn, scratch);
  }

  /** {@link #tar} from a pageserver that checks tokens: {@code token} is psql's password. */
  public static Path tar(
      int pgPort,
      @Nullable String token,
      TenantId tenant,
      TimelineId timeline,
      String lsn,
      Path scratch) {
    Path tar = scratch.resolve("bb-" + System.nanoTime() + ".tar");
    String cmd = "basebackup " + tenant + " " + timeline + (lsn == null ? "" : " " + lsn);
    try {
      ProcessBuilder pb =
          new ProcessBuilder(
                  PgDistribution.detect().bin("psql").toString(),
                  "-X",
                  "-q",
                  "-h",
                  "127.0.0.1",
                  "-p",
                  Integer.toString(pgPort),
                  "-U",
                  "postgres",
                  "-d",
                  "postgres",
                  "-c",
                  cmd)
              .redirectOutput(tar.toFile())
              .redirectError(ProcessBuilder.Redirect.INHERIT);
      if (token != null) {
        pb.environment().put("PGPASSWORD", token);
      }
      Process p = pb.start();
      assertThat(p.waitFor()).as("psql %s", cmd).isZero();
      return tar;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /** Extracts a tar into {@code dir}. */
  public static void extract(Path tar, Path dir) {
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
}
