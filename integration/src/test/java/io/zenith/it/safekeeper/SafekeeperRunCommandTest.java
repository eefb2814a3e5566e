package io.zenith.it.safekeeper;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.safekeeper.SafekeeperClient;
import io.zenith.gateway.safekeeper.SafekeeperSettings;
import io.zenith.replication.testing.PgWal;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code zenith safekeeper run} as the OS process it is meant to be (the real launcher and jar): it
 * serves its API, a SIGTERM stops it cleanly, what it promised survives the restart, and a bad
 * {@code safekeeper.toml} is one line on stderr and exit 1.
 */
class SafekeeperRunCommandTest {
  @TempDir Path dir;

  private Process start(Path launcher, Path log) throws IOException {
    return new ProcessBuilder(
            launcher.toString(), "safekeeper", "run", "--data-dir", dir.toString())
        .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
        .redirectErrorStream(true)
        .redirectOutput(log.toFile())
        .start();
  }

  private static void sigterm(Process p) throws Exception {
    int rc = new ProcessBuilder("sh", "-c", "kill -TERM " + p.pid()).inheritIO().start().waitFor();
    assertThat(rc).isZero();
  }

  @Test
  void runsServesAndStopsCleanlyOnSigterm() throws Exception {
    Path launcher = SafekeeperSet.launcher();
    int http = SafekeeperSet.freePort();
    new SafekeeperSettings(
            1,
            "127.0.0.1:" + http,
            "127.0.0.1:" + SafekeeperSet.freePort(),
            "0",
            "0",
            "0",
            List.of())
        .write(dir);
    SafekeeperClient client =
        new SafekeeperClient(
            1, new java.net.InetSocketAddress("127.0.0.1", http), Duration.ofSeconds(10));
    Identity id =
        new Identity(
            TenantId.generate(), TimelineId.generate(), 7, 15, 16 << 20, Lsn.parse("0/3000028"));
    Path log = dir.resolve("out.log");
    Process p = start(launcher, log);
    try {
      PgWal.await(Duration.ofSeconds(60), "the safekeeper to answer", () -> up(client));
      client.createTimeline(id, LagLimits.NONE);
      assertThat(client.vote(id.tenant(), id.timeline(), 4).granted()).isTrue();
      sigterm(p);
      assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("stopped after SIGTERM").isTrue();
      assertThat(p.exitValue()).isEqualTo(143);
      String out = Files.readString(log);
      assertThat(out).contains("safekeeper 1: HTTP on port " + http).doesNotContain("Exception");

      p = start(launcher, log);
      Process again = p;
      PgWal.await(Duration.ofSeconds(60), "the safekeeper to answer again", () -> up(client));
      assertThat(client.timeline(id.tenant(), id.timeline()).term()).isEqualTo(4);
      assertThat(again.isAlive()).isTrue();
    } finally {
      p.destroy();
      p.waitFor(30, TimeUnit.SECONDS);
    }
  }

  private static boolean up(SafekeeperClient c) {
    try {
      return c.status().id() == 1;
    } catch (RuntimeException e) {
      return false;
    }
  }

  @Test
  void aBadConfigurationIsOneLineAndExitOne() throws Exception {
    Path launcher = SafekeeperSet.launcher();
    Files.writeString(dir.resolve("safekeeper.toml"), "id = 1\nlisten_htp = \"x\"\n");
    Path log = dir.resolve("out.log");
    Process p = start(launcher, log);
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).isEqualTo(1);
    assertThat(Files.readString(log).strip())
        .isEqualTo(
            "zenith safekeeper run: error: "
                + dir.resolve("safekeeper.toml")
                + ": unknown setting 'listen_htp'");
  }
}
