package io.zenith.wal.remote;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Fsync;
import io.zenith.wal.FsyncFailedException;
import io.zenith.wal.testing.FsyncSpy;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import reactor.core.publisher.Flux;

/**
 * What every {@link RemoteStorage} backend does, run identically against each ({@code
 * LocalRemoteStorageTest}, {@code S3RemoteStorageTest}): round trips of small and multipart-sized
 * objects, ranges, listings over many pages, deletions, not-found errors, key rules, durable
 * downloads and concurrent uploads. Each test gets an empty storage of its own.
 */
@SuppressWarnings("try") // installed fsync devices are held, not used
abstract class RemoteStorageContract {
  static final Duration WAIT = Duration.ofSeconds(60);

  /** Above the multipart threshold the S3 tests set (16 MiB, not the default): five 8 MiB parts. */
  static final int LARGE = 40 << 20;

  @TempDir Path tmp;
  RemoteStorage storage;

  /** An empty storage for one test. */
  abstract RemoteStorage open(String testName) throws IOException;

  /** How many keys one listing page holds for this backend (0: no pages). */
  abstract int pageSize();

  @BeforeEach
  void openStorage(org.junit.jupiter.api.TestInfo info) throws IOException {
    storage = open(info.getTestMethod().orElseThrow().getName());
  }

  @AfterEach
  void closeStorage() {
    storage.close();
  }

  @Test
  void smallObjectsRoundTripAndAnUploadReplacesAnObject() throws IOException {
    Path a = write("a", 1000, 1);
    RemoteKey key = RemoteKey.of("tenants/t1/layer-a");
    assertThat(storage.upload(a, key).block(WAIT)).isEqualTo(1000);
    Path back = tmp.resolve("back");
    assertThat(storage.download(key, back).block(WAIT)).isEqualTo(1000);
    assertThat(digest(back)).isEqualTo(digest(a));

    Path b = write("b", 10, 2);
    storage.upload(b, key).block(WAIT);
    storage.download(key, back).block(WAIT);
    assertThat(digest(back)).isEqualTo(digest(b));

    Path empty = write("empty", 0, 0);
    assertThat(storage.upload(empty, key).block(WAIT)).isZero();
    assertThat(storage.download(key, back).block(WAIT)).isZero();
    assertThat(Files.size(back)).isZero();

    RemoteKey index = RemoteKey.of("tenants/t1/index.json");
    storage.put(index, "{\"v\":1}".getBytes(StandardCharsets.UTF_8)).block(WAIT);
    assertThat(new String(storage.get(index).block(WAIT), StandardCharsets.UTF_8))
        .isEqualTo("{\"v\":1}");
    storage.put(index, new byte[0]).block(WAIT);
    assertThat(storage.get(index).block(WAIT)).isEmpty();
  }

  @Test
  void aLargeObjectRoundTripsByteForByte() throws IOException {
    Path big = write("big", LARGE, 3);
    RemoteKey key = RemoteKey.of("big/layer");
    assertThat(storage.upload(big, key).block(WAIT)).isEqualTo(LARGE);
    Path back = tmp.resolve("big-back");
    assertThat(storage.download(key, back).block(WAIT)).isEqualTo(LARGE);
    assertThat(digest(back)).isEqualTo(digest(big));
    assertThat(storage.list("big/").collectList().block(WAIT))
        .containsExactly(new RemoteObject(key, LARGE));
    // a range across the first part boundary (8 MiB) reads the file's bytes
    long off = (8L << 20) - 100;
    ByteBuffer r = storage.read(key, off, 300).block(WAIT);
    assertThat(r.remaining()).isEqualTo(300);
    assertThat(toArray(r)).isEqualTo(slice(big, off, 300));
  }

  @Test
  void rangedReadsReturnTheBytesOfTheRangeAndFewerAtTheEnd() throws IOException {
    Path f = write("f", 10_000, 4);
    RemoteKey key = RemoteKey.of("r/obj");
    storage.upload(f, key).block(WAIT);
    assertThat(toArray(storage.read(key, 0, 10).block(WAIT))).isEqualTo(slice(f, 0, 10));
    assertThat(toArray(storage.read(key, 4321, 1000).block(WAIT))).isEqualTo(slice(f, 4321, 1000));
    assertThat(toArray(storage.read(key, 9_990, 100).block(WAIT))).isEqualTo(slice(f, 9_990, 10));
    assertThat(storage.read(key, 10_000, 100).block(WAIT).remaining()).isZero();
    assertThat(storage.read(key, 50_000, 100).block(WAIT).remaining()).isZero();
    assertThat(storage.read(key, 5, 0).block(WAIT).remaining()).isZero();
    assertThat(digestOf(storage.get(key).block(WAIT))).isEqualTo(digest(f));
  }

  @Test
  void listingsCoverEveryPageInKeyOrderAndMatchStringPrefixes() throws IOException {
    int n = pageSize() > 0 ? pageSize() * 2 + 50 : 250;
    List<RemoteKey> keys = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      keys.add(RemoteKey.of("list/" + (i % 3 == 0 ? "a" : "b") + "/k" + i));
    }
    Flux.fromIterable(keys)
        .flatMap(k -> storage.put(k, k.path().getBytes(StandardCharsets.UTF_8)), 16)
        .blockLast(WAIT);
    storage.put(RemoteKey.of("lists"), new byte[3]).block(WAIT);
    storage.put(RemoteKey.of("other/x"), new byte[1]).block(WAIT);

    List<RemoteObject> all = storage.list("list/").collectList().block(WAIT);
    assertThat(all).hasSize(n);
    assertThat(all).isSortedAccordingTo((x, y) -> x.key().compareTo(y.key()));
    assertThat(all.stream().map(RemoteObject::key)).containsExactlyInAnyOrderElementsOf(keys);
    assertThat(all).allMatch(o -> o.size() == o.key().path().length());

    assertThat(storage.list("list/a/").count().block(WAIT)).isEqualTo((n + 2) / 3);
    assertThat(storage.list("list/b/k1").collectList().block(WAIT))
        .allMatch(o -> o.key().path().startsWith("list/b/k1"))
        .isNotEmpty();
    // a string prefix, as S3's: "list" matches "lists" as well as "list/…"
    assertThat(storage.list("list").count().block(WAIT)).isEqualTo(n + 1);
    assertThat(storage.list("").count().block(WAIT)).isEqualTo(n + 2);
    assertThat(storage.list("nothing/here/").collectList().block(WAIT)).isEmpty();
    // a subscriber that takes only a few gets them without the rest being fetched first
    assertThat(storage.list("list/").take(3).collectList().block(WAIT))
        .containsExactlyElementsOf(all.subList(0, 3));
  }

  @Test
  void deletedObjectsAreGoneAndDeletingAMissingObjectSucceeds() {
    List<RemoteKey> keys =
        IntStream.range(0, 120).mapToObj(i -> RemoteKey.of("del/k" + i)).toList();
    Flux.fromIterable(keys).flatMap(k -> storage.put(k, new byte[] {1}), 16).blockLast(WAIT);
    storage.delete(keys.getFirst()).block(WAIT);
    storage.delete(keys.getFirst()).block(WAIT);
    storage.delete(RemoteKey.of("del/never-there")).block(WAIT);
    assertNotFound(() -> storage.get(keys.getFirst()).block(WAIT), keys.getFirst());
    assertThat(storage.list("del/").count().block(WAIT)).isEqualTo(119);

    storage.deleteAll(keys.subList(1, 100)).block(WAIT);
    assertThat(storage.list("del/").map(RemoteObject::key).collectList().block(WAIT))
        .containsExactlyInAnyOrderElementsOf(keys.subList(100, 120));
    storage.deleteAll(keys).block(WAIT);
    storage.deleteAll(List.of()).block(WAIT);
    assertThat(storage.list("del/").count().block(WAIT)).isZero();
  }

  @Test
  void missingObjectsAreNotFoundAndAMissingSourceIsPermanent() throws IOException {
    RemoteKey key = RemoteKey.of("missing/obj");
    assertNotFound(() -> storage.read(key, 0, 10).block(WAIT), key);
    assertNotFound(() -> storage.get(key).block(WAIT), key);
    Path dir = Files.createDirectory(tmp.resolve("dl"));
    Path target = dir.resolve("target");
    Files.writeString(target, "old");
    assertNotFound(() -> storage.download(key, target).block(WAIT), key);
    assertThat(Files.readString(target)).isEqualTo("old");
    assertThat(filesIn(dir)).containsExactly("target");

    assertThatThrownBy(() -> storage.upload(tmp.resolve("no-such-file"), key).block(WAIT))
        .isInstanceOfSatisfying(
            RemoteStorageException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(RemoteStorageException.Kind.PERMANENT);
              assertThat(e.getMessage()).contains("no-such-file");
            });
  }

  @Test
  void badKeysAndPrefixesAreRefusedBeforeAnyRequest() {
    for (String bad : List.of("", "/abs", "a//b", "a/../b", "..", "a/./b", "a/", ".hidden")) {
      assertThatThrownBy(() -> RemoteKey.of(bad))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageStartingWith("bad remote key \"" + bad + "\"");
    }
    for (String bad : List.of("/abs", "a//", "../x", "a/.tmp")) {
      assertThatThrownBy(() -> storage.list(bad))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageStartingWith("bad remote key prefix");
    }
  }

  @Test
  void aDownloadIsFsyncedRenamedAndItsDirectoryFsynced() throws IOException {
    RemoteKey key = RemoteKey.of("dur/obj");
    storage.put(key, new byte[] {7, 8, 9}).block(WAIT);
    Path dir = Files.createDirectory(tmp.resolve("dl"));
    Path target = dir.resolve("obj");
    FsyncSpy spy = FsyncSpy.recording();
    try (Fsync.Installed i = spy.install()) {
      storage.download(key, target).block(WAIT);
    }
    List<Path> calls = spy.calls();
    assertThat(calls).hasSize(2);
    assertThat(calls.get(0).getParent()).isEqualTo(dir);
    assertThat(calls.get(0).getFileName().toString()).startsWith(".obj.").endsWith(".tmp");
    assertThat(calls.get(1)).isEqualTo(dir);
    assertThat(Files.readAllBytes(target)).containsExactly(7, 8, 9);
    assertThat(filesIn(dir)).containsExactly("obj");
  }

  @Test
  void aFailedDownloadLeavesTheTargetAsItWasAndNoTemporaryFile() throws IOException {
    RemoteKey key = RemoteKey.of("dur/obj");
    storage.put(key, new byte[] {1, 2, 3}).block(WAIT);
    Path dir = Files.createDirectory(tmp.resolve("dl"));
    Path target = dir.resolve("obj");
    Files.write(target, new byte[] {4});
    try (Fsync.Installed i = FsyncSpy.failingName(1, ".tmp").install()) {
      assertThatThrownBy(() -> storage.download(key, target).block(WAIT))
          .satisfies(
              t ->
                  assertThat(reactor.core.Exceptions.unwrap(t))
                      .isInstanceOf(FsyncFailedException.class));
    }
    assertThat(Files.readAllBytes(target)).containsExactly(4);
    assertThat(filesIn(dir)).containsExactly("obj");
  }

  @Test
  void concurrentUploadsEachLandWhole() throws IOException {
    List<Path> files = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      files.add(write("c" + i, (1 << 20) + i * 1000, 100 + i));
    }
    Flux.range(0, 8)
        .flatMap(i -> storage.upload(files.get(i), RemoteKey.of("conc/k" + i)), 8)
        .blockLast(WAIT);
    // and eight writers of one key: the object is one of them, whole
    Flux.range(0, 8)
        .flatMap(i -> storage.upload(files.get(i), RemoteKey.of("conc/same")), 8)
        .blockLast(WAIT);
    for (int i = 0; i < 8; i++) {
      Path back = tmp.resolve("back" + i);
      storage.download(RemoteKey.of("conc/k" + i), back).block(WAIT);
      assertThat(digest(back)).isEqualTo(digest(files.get(i)));
    }
    Path same = tmp.resolve("same");
    storage.download(RemoteKey.of("conc/same"), same).block(WAIT);
    List<String> candidates = new ArrayList<>();
    for (Path f : files) {
      candidates.add(digest(f));
    }
    assertThat(candidates).contains(digest(same));
    assertThat(storage.list("conc/").count().block(WAIT)).isEqualTo(9);
  }

  // --- helpers ---

  static void assertNotFound(Runnable call, RemoteKey key) {
    assertThatThrownBy(call::run)
        .isInstanceOfSatisfying(
            RemoteStorageException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(RemoteStorageException.Kind.NOT_FOUND);
              assertThat(e.key()).isEqualTo(key);
              assertThat(e.getMessage()).contains(key.path());
            });
  }

  /** A file of {@code size} pseudo-random bytes from {@code seed}. */
  Path write(String name, int size, long seed) throws IOException {
    Path f = tmp.resolve(name);
    Random r = new Random(seed);
    byte[] block = new byte[1 << 20];
    try (OutputStream out = Files.newOutputStream(f)) {
      for (int done = 0; done < size; done += block.length) {
        r.nextBytes(block);
        out.write(block, 0, Math.min(block.length, size - done));
      }
    }
    return f;
  }

  static byte[] slice(Path f, long off, int len) throws IOException {
    try (var ch = java.nio.channels.FileChannel.open(f)) {
      ByteBuffer b = ByteBuffer.allocate(len);
      ch.read(b, off);
      return b.array();
    }
  }

  static byte[] toArray(ByteBuffer b) {
    byte[] out = new byte[b.remaining()];
    b.duplicate().get(out);
    return out;
  }

  /** Size and SHA-256: large contents are compared by digest, never printed. */
  static String digest(Path f) throws IOException {
    return digestOf(Files.readAllBytes(f));
  }

  static String digestOf(byte[] bytes) {
    try {
      return bytes.length
          + ":"
          + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  static List<String> filesIn(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }
}
