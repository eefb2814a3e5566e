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

  /**
   * The shaded jar keeps what its dependencies' licences ask for: their NOTICE files merged into
   * META-INF/NOTICE, their LICENSE files appended to META-INF/LICENSE after Zenith's own Apache-2.0
   * text (the repository's LICENSE).
   */
  @Test
  void jarCarriesTheLicenceAndTheDependenciesNotices() throws IOException {
    Path root = Path.of(System.getProperty("zenith.project.root", ".")).toAbsolutePath();
    Path jar = root.resolve("gateway/target/zenith.jar");
    assumeTrue(Files.isRegularFile(jar), () -> jar + " has not been built; skipping");
    String licence = Files.readString(root.resolve("LICENSE"));
    assertThat(licence).contains("Apache License", "Version 2.0, January 2004");
    try (java.util.jar.JarFile j = new java.util.jar.JarFile(jar.toFile())) {
      String jarLicence = entry(j, "META-INF/LICENSE");
      String notice = entry(j, "META-INF/NOTICE");
      assertThat(jarLicence).startsWith(licence);
      assertThat(notice)
          .startsWith("\nZenith\n")
          .contains("Apache Commons Compress", "The Netty Project", "Jackson", "Micrometer")
          .doesNotContain("Zenith\nCopyright 2006");
    }
  }

  private static String entry(java.util.jar.JarFile j, String name) throws IOException {
    java.util.jar.JarEntry e = j.getJarEntry(name);
    assertThat(e).as(name).isNotNull();
    try (java.io.InputStream in = j.getInputStream(e)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }
}
