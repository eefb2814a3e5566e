package io.zenith.wal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link DirectoryLock} against a second process (a JVM running {@link DirectoryLockProbe}) and
 * against a second holder in this JVM.
 */
class DirectoryLockTest {
  private static final long SELF = ProcessHandle.current().pid();

  @TempDir Path dir;

  /** A probe process; its first line says whether it locked the directory. */
  private record Probe(Process process, String firstLine) implements AutoCloseable {
    @Override
    public void close() {
      process.destroyForcibly();
      try {
        process.waitFor(30, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private Probe probe() throws IOException {
    Process p =
        new ProcessBuilder(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp",
                System.getProperty("java.class.path"),
                DirectoryLockProbe.class.getName(),
                dir.toString(),
                "x.lock")
            .redirectErrorStream(true)
            .start();
    BufferedReader r =
        new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
    String line = r.readLine();
    return new Probe(p, line);
  }

  @Test
  void writesItsPidAndIsRefusedToAnotherProcessUntilClosed() throws Exception {
    try (DirectoryLock lock = DirectoryLock.acquire(dir, "x.lock")) {
      assertThat(lock.directory()).isEqualTo(dir.toAbsolutePath().normalize());
      assertThat(lock.file()).isEqualTo(dir.resolve("x.lock"));
      try (Probe p = probe()) {
        assertThat(p.firstLine())
            .isEqualTo(
                "data directory " + dir + " is in use by another process (pid " + SELF + ")");
        assertThat(p.process().waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(p.process().exitValue()).isEqualTo(1);
      }
    }
    // read only after closing: reading the file in the holding process would release the lock
    assertThat(Files.readString(dir.resolve("x.lock"))).isEqualTo(SELF + "\n");
    try (Probe p = probe()) {
      assertThat(p.firstLine()).isEqualTo("locked");
    }
  }

  @Test
  void anotherProcessHoldingItIsNamedWithItsPidAndItsDeathReleasesIt() throws Exception {
    Probe holder = probe();
    try {
      assertThat(holder.firstLine()).isEqualTo("locked");
      assertThatThrownBy(() -> DirectoryLock.acquire(dir, "x.lock"))
          .isInstanceOfSatisfying(
              DirectoryLock.InUseException.class,
              e -> {
                assertThat(e.directory()).isEqualTo(dir);
                assertThat(e.holderPid()).hasValue(holder.process().pid());
                assertThat(e.heldByThisProcess()).isFalse();
                assertThat(e.getMessage())
                    .isEqualTo(
                        "data directory "
                            + dir
                            + " is in use by another process (pid "
                            + holder.process().pid()
                            + ")");
              });
      // the refused attempt changed nothing: the file still names the holder
      assertThat(Files.readString(dir.resolve("x.lock"))).isEqualTo(holder.process().pid() + "\n");
      int rc =
          new ProcessBuilder("sh", "-c", "kill -KILL " + holder.process().pid())
              .inheritIO()
              .start()
              .waitFor();
      assertThat(rc).isZero();
      assertThat(holder.process().waitFor(30, TimeUnit.SECONDS)).isTrue();
    } finally {
      holder.close();
    }
    try (DirectoryLock lock = DirectoryLock.acquire(dir, "x.lock")) {
      assertThat(lock.file()).isEqualTo(dir.resolve("x.lock"));
    }
    assertThat(Files.readString(dir.resolve("x.lock"))).isEqualTo(SELF + "\n");
  }

  @Test
  void aSecondHolderInThisJvmIsRefusedWithoutReleasingTheFirst() throws Exception {
    try (DirectoryLock lock = DirectoryLock.acquire(dir, "x.lock")) {
      assertThat(lock.directory()).isEqualTo(dir);
      assertThatThrownBy(() -> DirectoryLock.acquire(dir.resolve("sub/.."), "x.lock"))
          .isInstanceOfSatisfying(
              DirectoryLock.InUseException.class,
              e -> {
                assertThat(e.holderPid()).hasValue(SELF);
                assertThat(e.heldByThisProcess()).isTrue();
                assertThat(e.getMessage())
                    .isEqualTo(
                        "data directory " + dir + " is in use by this process (pid " + SELF + ")");
              });
      // POSIX locks go with any closed descriptor of the file: the refusal opened none
      try (Probe p = probe()) {
        assertThat(p.firstLine())
            .isEqualTo(
                "data directory " + dir + " is in use by another process (pid " + SELF + ")");
      }
      // another lock file in the same directory is another lock
      try (DirectoryLock other = DirectoryLock.acquire(dir, "y.lock")) {
        assertThat(other.file()).isEqualTo(dir.resolve("y.lock"));
      }
    }
    DirectoryLock again = DirectoryLock.acquire(dir, "x.lock");
    again.close();
    again.close(); // idempotent
    try (DirectoryLock third = DirectoryLock.acquire(dir, "x.lock")) {
      assertThat(third.file()).isEqualTo(again.file());
    }
  }

  @Test
  void aMissingDirectoryIsAnIoErrorAndCreatesNothing() {
    Path missing = dir.resolve("missing");
    assertThatThrownBy(() -> DirectoryLock.acquire(missing, "x.lock"))
        .isInstanceOf(NoSuchFileException.class)
        .hasMessage(missing.resolve("x.lock").toString());
    assertThat(missing).doesNotExist();
  }

  @Test
  void theFileNameMustBePlain() {
    assertThatThrownBy(() -> DirectoryLock.acquire(dir, "a/b.lock"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("lock file name 'a/b.lock' is not a plain name");
    assertThatThrownBy(() -> DirectoryLock.acquire(dir, ""))
        .isInstanceOf(IllegalArgumentException.class);
  }
}
