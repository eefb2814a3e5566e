package io.zenith.gateway.control;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.gateway.pageserver.Pageserver;
import io.zenith.gateway.pageserver.PageserverConfig;
import io.zenith.gateway.safekeeper.SafekeeperProcess;
import io.zenith.gateway.safekeeper.SafekeeperSettings;
import io.zenith.wal.DirectoryLock;
import io.zenith.wal.TenantId;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Who locks which directory, in this JVM (a second instance here is refused like a second process,
 * naming this process's pid): the repository's commands and {@code init}, the pageserver, a
 * safekeeper. Refused, each has changed nothing. Second OS processes: {@code
 * io.zenith.it.cli.CliDirectoryLockTest}.
 */
class DirectoryLocksTest {
  private static final long SELF = ProcessHandle.current().pid();

  @TempDir Path dir;

  private static List<String> names(Path d) throws IOException {
    try (Stream<Path> s = Files.list(d)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  private Repository repository() {
    return Repository.of(
        dir,
        new RepoConfig(
            TenantId.generate().toString(),
            null,
            55432,
            dir.resolve("computes").toString(),
            new RepoConfig.PageserverAddresses("127.0.0.1:1", "127.0.0.1:2"),
            List.of()));
  }

  @Test
  @SuppressWarnings("try") // the locks are held, not used
  void aSecondRepositoryLockIsRefusedNamingTheHolder() throws IOException {
    Repository repo = repository();
    try (Repository.Lock first = repo.lock()) {
      assertThatThrownBy(repo::lock)
          .isInstanceOf(ControlPlaneException.class)
          .hasMessage(
              "repository "
                  + dir
                  + " is in use by this process (pid "
                  + SELF
                  + "); try again when it ends");
    }
    try (Repository.Lock again = repo.lock()) {
      assertThat(names(dir)).containsExactly(".lock");
    }
    assertThat(Files.readString(dir.resolve(".lock"))).isEqualTo(SELF + "\n");
  }

  @Test
  void initIsRefusedBeforeItWritesAnythingWhileTheLockIsHeld() throws IOException {
    Path repo = dir.resolve("repo");
    Files.createDirectory(repo);
    StringWriter out = new StringWriter();
    try (DirectoryLock held = DirectoryLock.acquire(repo, Repository.LOCK_FILE)) {
      assertThatThrownBy(
              () ->
                  RepoInit.run(
                      repo,
                      new RepoInit.Options(
                          "127.0.0.1:1", "127.0.0.1:2", null, null, 0, null, false),
                      new PrintWriter(out)))
          .isInstanceOf(ControlPlaneException.class)
          .hasMessage(
              "repository "
                  + held.directory()
                  + " is in use by this process (pid "
                  + SELF
                  + "); try again when it ends");
      assertThat(names(repo)).containsExactly(".lock");
    }
    assertThat(out.toString()).isEmpty();
  }

  @Test
  void initRefusesAnotherDirectoryWithoutLeavingALockFileInIt() throws IOException {
    Files.writeString(dir.resolve("notes.txt"), "mine");
    assertThatThrownBy(
            () ->
                RepoInit.run(
                    dir,
                    new RepoInit.Options("127.0.0.1:1", "127.0.0.1:2", null, null, 0, null, false),
                    new PrintWriter(new StringWriter())))
        .isInstanceOf(ControlPlaneException.class)
        .hasMessage("a repository already exists at " + dir + " (remove it to start over)");
    assertThat(names(dir)).containsExactly("notes.txt");
  }

  @Test
  void aSecondPageserverOnTheDirectoryIsRefusedBeforeItOpensTheStore() throws IOException {
    PageserverConfig config =
        new PageserverConfig(
                "127.0.0.1:0", "127.0.0.1:0", null, null, null, null, null, null, null, null)
            .withDefaults();
    config.write(dir);
    try (DirectoryLock held = DirectoryLock.acquire(dir, Pageserver.LOCK_FILE)) {
      assertThatThrownBy(() -> Pageserver.start(dir, config))
          .isInstanceOf(UncheckedIOException.class)
          .hasMessage("data directory " + dir + " is in use by this process (pid " + SELF + ")")
          .cause()
          .isInstanceOf(DirectoryLock.InUseException.class);
      // no index/, no tenants/
      assertThat(names(dir)).containsExactly("pageserver.lock", PageserverConfig.FILE_NAME);
      assertThat(held.file()).isEqualTo(dir.resolve("pageserver.lock"));
    }
  }

  @Test
  void aSecondSafekeeperOnTheDirectoryIsRefusedBeforeItOpensATimeline() throws IOException {
    new SafekeeperSettings(1, "127.0.0.1:0", "127.0.0.1:0", "0", "0", "0", List.of()).write(dir);
    SafekeeperSettings settings = SafekeeperSettings.load(dir);
    try (DirectoryLock held = DirectoryLock.acquire(dir, SafekeeperProcess.LOCK_FILE)) {
      assertThatThrownBy(() -> SafekeeperProcess.start(dir, settings))
          .isInstanceOfSatisfying(
              DirectoryLock.InUseException.class,
              e -> {
                assertThat(e.holderPid()).hasValue(SELF);
                assertThat(e.directory()).isEqualTo(dir);
              })
          .hasMessage("data directory " + dir + " is in use by this process (pid " + SELF + ")");
      assertThat(names(dir)).containsExactly("safekeeper.lock", "safekeeper.toml");
      assertThat(held.file()).isEqualTo(dir.resolve("safekeeper.lock"));
    }
  }
}
