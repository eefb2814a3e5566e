package io.zenith.gateway.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code zenith --version}: the version and the git commit the build stamped (the build's script
 * run on this project, and on a tree without git, as a source tarball is).
 */
class VersionTest {
  @TempDir Path dir;

  private static final Path PROJECT = Path.of("..").toAbsolutePath().normalize();
  private static final Path SCRIPT = Path.of("src/main/build/git-commit.sh").toAbsolutePath();

  @Test
  void versionNamesTheCommitOfThisBuild() throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    int exit;
    try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8)) {
      exit = Main.run(new String[] {"--version"}, o, System.err);
    }
    assertThat(exit).isZero();
    String expectedCommit = run(dir.resolve("ours.properties"), PROJECT);
    assertThat(out.toString(StandardCharsets.UTF_8))
        .isEqualTo("zenith 0.1.0-SNAPSHOT (git " + expectedCommit + ", PostgreSQL 15)\n");
    assertThat(Main.commit()).isEqualTo(expectedCommit);
    if (Files.isDirectory(PROJECT.resolve(".git"))
        || Files.isRegularFile(PROJECT.resolve(".git"))) {
      assertThat(expectedCommit).matches("[0-9a-f]{12}");
    }
  }

  @Test
  void aTreeWithoutGitIsUnknown() throws Exception {
    Path tarball = Files.createDirectory(dir.resolve("zenith-src"));
    assertThat(run(dir.resolve("out.properties"), tarball)).isEqualTo("unknown");
  }

  /** Runs git-commit.sh for {@code project}; returns the commit it wrote. */
  private static String run(Path out, Path project) throws IOException, InterruptedException {
    Process p =
        new ProcessBuilder("sh", SCRIPT.toString(), project.toString(), out.toString())
            .redirectErrorStream(true)
            .start();
    String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(output).isZero();
    String text = Files.readString(out);
    return text.lines()
        .filter(l -> l.startsWith("commit="))
        .findFirst()
        .orElseThrow()
        .substring("commit=".length());
  }
}
