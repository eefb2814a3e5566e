package io.zenith.wal.remote;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** The contract on a local directory, and what only the local backend has: its files. */
class LocalRemoteStorageTest extends RemoteStorageContract {

  @Override
  RemoteStorage open(String testName) throws IOException {
    return RemoteStorage.open(new RemoteStorageSettings.Local(tmp.resolve("remote")));
  }

  @Override
  int pageSize() {
    return 0;
  }

  @Test
  void objectsAreFilesUnderTheRootAndTemporaryFilesAreNeverListed() throws IOException {
    Path root = tmp.resolve("remote");
    storage.put(RemoteKey.of("a/b"), new byte[] {1}).block(WAIT);
    assertThat(Files.readAllBytes(root.resolve("a/b"))).containsExactly(1);
    // what a crash in the middle of a write leaves behind
    Files.write(root.resolve("a/.b.1234.tmp"), new byte[] {2, 2});
    assertThat(storage.list("").map(o -> o.key().path()).collectList().block(WAIT))
        .containsExactly("a/b");
  }
}
