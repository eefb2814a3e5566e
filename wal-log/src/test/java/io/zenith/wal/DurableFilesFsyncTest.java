package io.zenith.wal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.testing.FsyncSpy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link DurableFiles} fsyncs through {@link Fsync}; a failure is fatal and not retried. */
@SuppressWarnings("try") // installed devices are held, not used
class DurableFilesFsyncTest {
  @TempDir Path tmp;

  @Test
  void writeFsyncsTheFileThenItsDirectory() throws IOException {
    Path f = tmp.resolve("a");
    FsyncSpy spy = FsyncSpy.recording();
    try (Fsync.Installed i = spy.install()) {
      DurableFiles.write(f, new byte[] {1, 2});
    }
    assertThat(spy.calls()).containsExactly(tmp.resolve("a.tmp"), tmp);
  }

  @Test
  void aFailedFsyncOfTheTempFileIsFatalAndTheTargetIsUntouched() throws IOException {
    Path f = tmp.resolve("a");
    DurableFiles.write(f, new byte[] {1});
    FsyncSpy spy = FsyncSpy.failingName(1, ".tmp");
    try (Fsync.Installed i = spy.install()) {
      assertThatThrownBy(() -> DurableFiles.write(f, new byte[] {2}))
          .isInstanceOf(FsyncFailedException.class)
          .hasMessage("fsync of " + tmp.resolve("a.tmp") + " failed: " + FsyncSpy.EIO);
    }
    assertThat(spy.calls()).containsExactly(tmp.resolve("a.tmp"));
    assertThat(Files.readAllBytes(f)).containsExactly(1);
  }

  @Test
  void syncTreeFsyncsEveryFileAndEveryDirectoryBottomUpThenTheParent() throws IOException {
    Path root = tmp.resolve("export");
    Files.createDirectories(root.resolve("base/1"));
    Files.createDirectories(root.resolve("global"));
    Files.write(root.resolve("PG_VERSION"), new byte[] {'1', '5'});
    Files.write(root.resolve("base/1/1259"), new byte[8192]);
    Files.write(root.resolve("global/pg_control"), new byte[512]);
    FsyncSpy spy = FsyncSpy.recording();
    try (Fsync.Installed i = spy.install()) {
      DurableFiles.syncTree(root);
    }
    List<Path> calls = spy.calls();
    Set<Path> everything;
    try (Stream<Path> s = Files.walk(root)) {
      everything = Set.copyOf(s.toList());
    }
    assertThat(calls).doesNotHaveDuplicates().hasSize(everything.size() + 1);
    assertThat(calls).containsAll(everything).endsWith(root, tmp);
    // a directory after everything in it
    for (Path p : everything) {
      assertThat(calls.indexOf(p.getParent()))
          .as("%s after %s", p.getParent(), p)
          .isGreaterThan(calls.indexOf(p));
    }
  }

  @Test
  void syncTreeStopsAtTheFirstFailedFsync() throws IOException {
    Path root = tmp.resolve("export");
    Files.createDirectories(root.resolve("base"));
    Files.write(root.resolve("base/a"), new byte[1]);
    Files.write(root.resolve("b"), new byte[1]);
    FsyncSpy spy = FsyncSpy.failing(1, root.resolve("base/a")::equals);
    try (Fsync.Installed i = spy.install()) {
      assertThatThrownBy(() -> DurableFiles.syncTree(root))
          .isInstanceOfSatisfying(
              FsyncFailedException.class,
              e -> assertThat(e.path()).isEqualTo(root.resolve("base/a")));
    }
    assertThat(spy.calls()).endsWith(root.resolve("base/a")).doesNotContain(root, tmp);
  }
}
