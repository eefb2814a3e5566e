package io.zenith.wal.remote;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.testing.S3Proxy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * S3 faults with a real s3proxy: a server that is down (killed) or hung (SIGSTOP) makes every call
 * fail with the TRANSIENT kind within its call timeout, after the SDK's retries; the same calls
 * succeed once the server is back, and nothing stored before is lost.
 */
class S3RemoteStorageFaultTest {
  /** Three attempts of at most 2 s each, 5 s per call with backoff. */
  static final Duration ATTEMPT = Duration.ofSeconds(2);

  static final Duration CALL = Duration.ofSeconds(5);

  /** What a call may take when the server answers (a restarted s3proxy is slow at first). */
  static final Duration ANSWERED = Duration.ofSeconds(60);

  static S3Proxy proxy;
  @TempDir Path tmp;

  @BeforeAll
  static void startProxy() {
    proxy = S3Proxy.start();
  }

  @AfterAll
  static void stopProxy() {
    if (proxy != null) {
      proxy.close();
    }
  }

  private static RemoteStorage open(String prefix) {
    return RemoteStorage.open(
        S3RemoteStorageTest.multipartAt16MiB(proxy.settings(prefix)).withRetries(3, ATTEMPT, CALL));
  }

  /** With the default retries and timeouts: for what a test does while the server is up. */
  private static RemoteStorage patient(String prefix) {
    return RemoteStorage.open(S3RemoteStorageTest.multipartAt16MiB(proxy.settings(prefix)));
  }

  @Test
  void aStoppedServerFailsCallsAsTransientWithinTheTimeoutAndARestartBringsThemBack()
      throws IOException {
    try (RemoteStorage s = open("down");
        RemoteStorage up = patient("down")) {
      RemoteKey key = RemoteKey.of("kept");
      up.put(key, new byte[] {1, 2, 3}).block(ANSWERED);
      Path file = Files.write(tmp.resolve("f"), new byte[4096]);

      proxy.stop();
      assertTransientWithinTheTimeout(() -> s.get(key).block(Duration.ofSeconds(30)));
      assertTransientWithinTheTimeout(() -> s.upload(file, RemoteKey.of("new")).block());
      assertTransientWithinTheTimeout(() -> s.list("").collectList().block());
      assertTransientWithinTheTimeout(() -> s.delete(key).block());
      Path dir = Files.createDirectory(tmp.resolve("dl"));
      assertTransientWithinTheTimeout(() -> s.download(key, dir.resolve("d")).block());
      assertThat(RemoteStorageContract.filesIn(dir)).isEmpty();

      proxy.restart();
      assertThat(up.get(key).block(ANSWERED)).containsExactly(1, 2, 3); // warm again
      // the client that failed works again, and nothing stored before is lost
      assertThat(s.get(key).block(ANSWERED)).containsExactly(1, 2, 3);
      assertThat(s.upload(file, RemoteKey.of("new")).block(ANSWERED)).isEqualTo(4096);
      assertThat(s.list("").map(o -> o.key().path()).collectList().block(ANSWERED))
          .containsExactly("kept", "new");
    } finally {
      if (!proxy.running()) {
        proxy.restart();
      }
    }
  }

  @Test
  void aHungServerTimesOutAMultipartUploadAsTransientAndItSucceedsOnceItAnswers()
      throws IOException {
    try (RemoteStorage s = open("hung");
        RemoteStorage up = patient("hung")) {
      Path big = tmp.resolve("big");
      byte[] mib = new byte[1 << 20];
      new java.util.Random(5).nextBytes(mib);
      try (var out = Files.newOutputStream(big)) {
        for (int i = 0; i < 20; i++) {
          out.write(mib);
        }
      }
      RemoteKey key = RemoteKey.of("big");
      up.put(RemoteKey.of("probe"), new byte[1]).block(ANSWERED); // the server is warm
      s.put(RemoteKey.of("probe"), new byte[1]).block(ANSWERED);
      proxy.pause();
      try {
        assertTransientWithinTheTimeout(() -> s.upload(big, key).block());
        assertTransientWithinTheTimeout(() -> s.get(RemoteKey.of("probe")).block());
      } finally {
        proxy.resume();
      }
      assertThat(s.get(RemoteKey.of("probe")).block(ANSWERED)).containsExactly(0);
      assertThat(up.upload(big, key).block(ANSWERED)).isEqualTo(20L << 20);
      Path back = tmp.resolve("back");
      s.download(key, back).block(ANSWERED);
      assertThat(RemoteStorageContract.digest(back)).isEqualTo(RemoteStorageContract.digest(big));
    }
  }

  /** Fails with TRANSIENT, and within the call timeout plus a margin for the JVM. */
  private static void assertTransientWithinTheTimeout(Supplier<?> call) {
    long t0 = System.nanoTime();
    assertThatThrownBy(call::get)
        .isInstanceOfSatisfying(
            RemoteStorageException.class,
            e ->
                assertThat(e.kind())
                    .as("%s caused by %s", e.getMessage(), e.getCause())
                    .isEqualTo(RemoteStorageException.Kind.TRANSIENT));
    Duration took = Duration.ofNanos(System.nanoTime() - t0);
    // a multipart upload is three calls at most (create, parts, abort) on the failure path
    assertThat(took).isLessThan(CALL.multipliedBy(3).plusSeconds(2));
  }
}
