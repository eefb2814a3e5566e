package io.zenith.it.regress;

import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.it.support.Basebackups;
import io.zenith.page.fuse.ComputeMounts;
import io.zenith.page.fuse.LazyFsConfig;
import io.zenith.pg.testing.PgCluster;
import io.zenith.wal.Lsn;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * A lazy compute for the regression run and the fidelity checks (issue 13's fidelity acceptance): a
 * slim basebackup of the pageserver's timeline at {@code lsn}, with {@code base/} and {@code
 * global/} mounted over pagestream by {@link ComputeMounts}, the library {@code zenith compute
 * agent} runs (ADR 0021; in the test JVM here, which needs no token and no second JVM).
 *
 * <p>{@link #materialize} turns the stopped compute's mounted directories into plain ones: it reads
 * every file through the mounts (overlay and pageserver merged, as PostgreSQL saw them) into local
 * copies, unmounts and puts the copies in their place, so that the comparisons and {@code
 * -Dzenith.regress.keepCompute} read ordinary files. Not thread-safe (one owner).
 */
final class LazyRegressCompute implements AutoCloseable {
  private final PgCluster cluster;
  private final Path work;
  private ComputeMounts mounts;

  private LazyRegressCompute(PgCluster cluster, Path work, ComputeMounts mounts) {
    this.cluster = cluster;
    this.work = work;
    this.mounts = mounts;
  }

  /**
   * A compute (not started) on lazy mounts of {@code ps}'s regression timeline at {@code lsn}, with
   * the initdb's postgresql.conf. {@code primary}: read unwritten pages at the latest LSN with
   * {@code lsn} as not-modified-since (what {@code pg start} runs), else at {@code lsn} itself.
   */
  static LazyRegressCompute mount(
      Pageserver ps, Lsn lsn, boolean primary, Path scratch, String initdbConf) throws IOException {
    Path tar = scratch.resolve("slim-" + System.nanoTime() + ".tar");
    runPsql(ps, "basebackup " + RegressionRun.TENANT + " " + RegressionRun.MAIN + " " + lsn, tar);
    PgCluster c =
        PgCluster.fromDataDirectory(dir -> Basebackups.extract(tar, dir)).writeMinimalConfig();
    Files.delete(tar);
    Files.writeString(c.dataDir().resolve("postgresql.conf"), initdbConf);
    Path work = Files.createTempDirectory(scratch, "lazy-");
    ComputeMounts.Owner owner = ComputeMounts.owner(c.dataDir());
    LazyFsConfig config =
        new LazyFsConfig(
            "127.0.0.1",
            ps.pgPort(),
            "postgres",
            null,
            RegressionRun.TENANT,
            RegressionRun.MAIN,
            lsn,
            primary,
            Duration.ofSeconds(30),
            4,
            4,
            owner.uid(),
            owner.gid());
    try {
      return new LazyRegressCompute(
          c, work, ComputeMounts.mount(config, c.dataDir(), work, Duration.ofSeconds(30)));
    } catch (IOException | RuntimeException e) {
      c.close();
      throw e;
    }
  }

  private static void runPsql(Pageserver ps, String command, Path out) throws IOException {
    Process p =
        new ProcessBuilder(
                io.zenith.pg.PgDistribution.detect().bin("psql").toString(),
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
                command + " --slim")
            .redirectOutput(out.toFile())
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .start();
    try {
      if (!p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS) || p.exitValue() != 0) {
        p.destroyForcibly();
        throw new IOException("psql " + command + " --slim failed");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted: psql " + command, e);
    }
  }

  PgCluster cluster() {
    return cluster;
  }

  /**
   * Copies {@code base/} and {@code global/} of the stopped compute out of its mounts (with {@code
   * cp -a}: owners and modes kept), unmounts, and puts the copies where the mounts were.
   */
  void materialize() throws IOException {
    Path copies = Files.createDirectories(work.resolve("copies"));
    for (String dir : List.of("base", "global")) {
      exec("cp", "-a", cluster.dataDir().resolve(dir).toString(), copies.toString());
    }
    mounts.close();
    mounts = null;
    for (String dir : List.of("base", "global")) {
      Files.delete(cluster.dataDir().resolve(dir)); // the empty mount point
      Files.move(copies.resolve(dir), cluster.dataDir().resolve(dir));
    }
  }

  private static void exec(String... command) throws IOException {
    Process p = new ProcessBuilder(command).inheritIO().start();
    try {
      if (!p.waitFor(10, java.util.concurrent.TimeUnit.MINUTES) || p.exitValue() != 0) {
        p.destroyForcibly();
        throw new IOException(String.join(" ", command) + " failed");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted: " + String.join(" ", command), e);
    }
  }

  /** PostgreSQL first (immediately), then its mounts, then its files. */
  @Override
  public void close() {
    try {
      cluster.stop();
    } catch (RuntimeException e) {
      // stopped or gone: close() below stops it immediately
    }
    try {
      if (mounts != null) {
        mounts.close();
        mounts = null;
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } finally {
      cluster.close();
      PgCluster.deleteTree(work);
    }
  }
}
