package io.zenith.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Smoke test of the real {@code zenith} launcher script and the shaded jar it runs. The jar exists
 * when the build ran {@code package}: in {@code make test} ({@code mvn verify}) gateway is packaged
 * before integration's tests run, because integration depends on gateway and the reactor builds
 * each module through {@code verify} in dependency order. A plain {@code mvn test} does not
 * package, so the test is skipped there unless a jar was built before.
 */
class ZenithLauncherTest {

  @Test
  void launcherRunsTheJarAndListsTheWalCommand() throws IOException, InterruptedException {
    Path root = Path.of(System.getProperty("zenith.project.root", ".")).toAbsolutePath();
    Path jar = root.resolve("gateway/target/zenith.jar");
    assumeTrue(
        Files.isRegularFile(jar),
        () -> jar + " has not been built (run `./mvnw package` or `make build`); skipping");
    Path launcher = root.resolve("zenith");
    assertThat(launcher).isExecutable();

    Process p =
        new ProcessBuilder(launcher.toString(), "--help")
            .redirectErrorStream(true)
            .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
            .start();
    String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("launcher finished").isTrue();

    assertThat(p.exitValue()).as(output).isZero();
    assertThat(output).contains("Usage: zenith").containsPattern("(?m)^\\s+wal\\s");
  }
}
