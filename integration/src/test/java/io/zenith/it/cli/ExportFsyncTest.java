package io.zenith.it.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.gateway.control.Computes;
import io.zenith.gateway.control.Repository;
import io.zenith.wal.Fsync;
import io.zenith.wal.testing.FsyncSpy;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * {@code zenith export} makes everything it wrote durable before it reports success: every file,
 * every directory bottom-up, and the new directory's entry in its parent (seen through the {@link
 * Fsync} seam, in this JVM); a failed fsync (injected into the real command with the test-only
 * {@code ZENITH_TEST_FSYNC_FAIL}) ends it with one stderr line and exit 1.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@SuppressWarnings("try") // installed devices are held, not used
class ExportFsyncTest {
  private ZenithRepo z;
  private Path parent;

  @BeforeAll
  void init() throws IOException {
    z = new ZenithRepo(false);
    z.init();
    z.ok("start");
    parent = Files.createTempDirectory("zenith-export-");
  }

  @AfterAll
  void cleanUp() {
    try {
      if (z != null) {
        z.close();
      }
    } finally {
      if (parent != null) {
        ZenithRepo.deleteTree(parent);
      }
    }
  }

  @Test
  void exportFsyncsEveryFileAndDirectoryItWroteBottomUp() throws IOException {
    Path out = parent.resolve("durable");
    FsyncSpy spy = FsyncSpy.recording();
    PrintWriter quiet = new PrintWriter(Writer.nullWriter());
    try (Fsync.Installed i = spy.install()) {
      new Computes(Repository.open(z.repo), quiet, quiet).export("main", Optional.empty(), out);
    }
    Set<Path> written;
    try (Stream<Path> s = Files.walk(out)) {
      written = Set.copyOf(s.toList());
    }
    assertThat(written).contains(out.resolve("global/pg_control"), out.resolve("postgresql.conf"));
    List<Path> calls = spy.calls();
    assertThat(calls).containsAll(written).endsWith(out, parent);
    for (Path p : written) {
      if (!p.equals(out)) {
        assertThat(calls.lastIndexOf(p.getParent()))
            .as("%s fsynced after %s", p.getParent(), p)
            .isGreaterThan(calls.lastIndexOf(p));
      }
    }
  }

  @Test
  void aFailedFsyncEndsExportWithOneLineAndExit1() {
    Path out = parent.resolve("failed");
    ZenithRepo.Result r =
        z.runWith(Map.of("ZENITH_TEST_FSYNC_FAIL", "3"), "export", "main", out.toString());
    assertThat(r.exit()).as("%s", r).isEqualTo(1);
    assertThat(r.out()).doesNotContain("exported");
    assertThat(r.err().lines().toList())
        .as("%s", r)
        .singleElement()
        .asString()
        .matches(
            "zenith export: error: fsync of "
                + out
                + "/\\S+ failed: Input/output error \\(injected by ZENITH_TEST_FSYNC_FAIL\\); what"
                + " was written since its last successful fsync may be lost");
  }
}
