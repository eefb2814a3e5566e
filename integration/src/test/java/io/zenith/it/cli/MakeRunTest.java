package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * What a new user types, on a clean clone: {@code make run} (which installs the Debian packages it
 * needs, builds, creates the repository, starts everything and a compute), then the README's
 * quick-start shell blocks as written, only with the ports this test picked. The clone is of the
 * committed {@code HEAD}: uncommitted changes are not in it (CI runs on a clean clone anyway).
 */
class MakeRunTest {
  private static final long MAKE_RUN_MINUTES = 15;
  private static final long BLOCK_MINUTES = 5;

  @Test
  void makeRunThenTheReadmeQuickStartOnACleanClone() throws Exception {
    Path projectRoot = Path.of(System.getProperty("zenith.project.root", ".")).toAbsolutePath();
    assumeTrue(
        Files.exists(projectRoot.resolve(".git")),
        () -> projectRoot + " is not a git checkout; a clean clone cannot be made");
    try (ZenithRepo z = new ZenithRepo(false)) {
      Path clone = z.root.resolve("clone");
      assertThat(
              run(
                      z.root,
                      Map.of(),
                      MAKE_RUN_MINUTES,
                      "git",
                      "clone",
                      "-q",
                      projectRoot.toString(),
                      clone.toString())
                  .exit())
          .isZero();
      List<String> initArgs = z.initArgs();
      Map<String, String> env =
          Map.of(
              "ZENITH_REPO_DIR",
              z.repo.toString(),
              "ZENITH_INIT_OPTS",
              String.join(" ", initArgs.subList(1, initArgs.size())));

      ZenithRepo.Result made = run(clone, env, MAKE_RUN_MINUTES, "make", "run");
      assertThat(made.exit()).as("make run\n%s", made).isZero();
      Matcher connect =
          Pattern.compile(
                  "connect with:  psql postgresql://postgres@127\\.0\\.0\\.1:(\\d+)/postgres")
              .matcher(made.out());
      assertThat(connect.find()).as("make run says how to connect:\n%s", made).isTrue();
      String port = connect.group(1);
      assertThat(port).isEqualTo(Integer.toString(z.computePortBase));

      List<String> blocks = quickStartBlocks(Files.readString(clone.resolve("README.md")));
      // make run; the rebuilt compute; a second tenant; branches and the past (which ends with
      // `./zenith stop`); then three safekeepers, which need another repository (not run here)
      assertThat(blocks).as("the README's quick start").hasSize(5);
      assertThat(blocks.get(0).strip()).isEqualTo("make run");
      assertThat(blocks.get(4)).contains("safekeeper stop 2");
      String exportTo = z.root.resolve("main-pgdata").toString();
      List<String> outputs = new ArrayList<>();
      for (String block : blocks.subList(1, 4)) {
        String script = block.replace("55432", port).replace("/tmp/main-pgdata", exportTo);
        ZenithRepo.Result r =
            run(clone, env, BLOCK_MINUTES, "bash", "-eo", "pipefail", "-c", script);
        assertThat(r.exit()).as("README block\n%s\n%s", script, r).isZero();
        outputs.add(r.out());
      }
      assertThat(outputs.get(0))
          .as("rows survive the rebuilt compute")
          .containsPattern("(?m)^ +1000$");
      assertThat(outputs.get(1)).contains("other");
      assertThat(outputs.get(2)).contains("b1");
      assertThat(Path.of(exportTo, "PG_VERSION")).exists();
    }
  }

  /** The {@code ```sh} blocks of the README's "Quick start" section, in order. */
  static List<String> quickStartBlocks(String readme) {
    int from = readme.indexOf("## Quick start");
    assertThat(from).as("README has a Quick start section").isNotNegative();
    int to = readme.indexOf("\n## ", from + 1);
    String section = readme.substring(from, to < 0 ? readme.length() : to);
    List<String> blocks = new ArrayList<>();
    Matcher m = Pattern.compile("(?s)```sh\n(.*?)```").matcher(section);
    while (m.find()) {
      blocks.add(m.group(1));
    }
    return blocks;
  }

  private static ZenithRepo.Result run(
      Path dir, Map<String, String> env, long minutes, String... cmd)
      throws IOException, InterruptedException {
    Path out = Files.createTempFile("make-run-out-", ".txt");
    Path err = Files.createTempFile("make-run-err-", ".txt");
    try {
      ProcessBuilder pb =
          new ProcessBuilder(cmd)
              .directory(dir.toFile())
              .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
              .redirectOutput(out.toFile())
              .redirectError(err.toFile());
      // as typed in a new shell: not inside the `make test` and Maven that run this test
      pb.environment()
          .keySet()
          .removeIf(k -> k.startsWith("MAKE") || k.equals("MFLAGS") || k.startsWith("MAVEN_"));
      pb.environment().putAll(env);
      Process p = pb.start();
      if (!p.waitFor(minutes, TimeUnit.MINUTES)) {
        p.destroyForcibly();
        throw new AssertionError(
            "timed out after "
                + minutes
                + " min: "
                + String.join(" ", cmd)
                + "\n"
                + Files.readString(out)
                + Files.readString(err));
      }
      return new ZenithRepo.Result(p.exitValue(), Files.readString(out), Files.readString(err));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }
}
