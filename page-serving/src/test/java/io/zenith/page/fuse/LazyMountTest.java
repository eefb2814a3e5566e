package io.zenith.page.fuse;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The lazy filesystem on a real FUSE mount over a synthetic page source (every page of the source
 * carries its relation, fork and block number, so a page read from the wrong place shows): sizes,
 * listings and reads merge the source and the overlay, and what the filesystem itself answers (past
 * the kernel's page cache) shows what the overlay holds. The pageserver-backed test is {@code
 * LazyComputeFilesTest} in {@code integration}.
 */
class LazyMountTest {
  private static final int DB = 5;
  private static final int SMALL = 16384;
  private static final int LARGE = 16390;
  private static final int UNLOGGED = 16400;
  private static final long LARGE_BLOCKS = RelFileName.SEGMENT_BLOCKS + 10L;

  @TempDir Path tmp;
  private Path seed;
  private Path mnt;
  private final AtomicInteger remoteReads = new AtomicInteger();
  private final AtomicInteger largestRead = new AtomicInteger();

  @BeforeEach
  void requireFuse() throws IOException {
    assumeTrue(Files.isReadable(Path.of("/dev/fuse")) && Files.isWritable(Path.of("/dev/fuse")));
    seed = Files.createDirectories(tmp.resolve("seed"));
    Files.createDirectories(seed.resolve(Integer.toString(DB)));
    Files.writeString(seed.resolve(DB + "/PG_VERSION"), "15\n");
    mnt = Files.createDirectories(tmp.resolve("mnt"));
  }

  /** A page that says where it is from. */
  static byte[] page(RelTag rel, ForkNumber fork, long block) {
    ByteBuffer b = ByteBuffer.allocate(OverlayFile.BLOCK);
    while (b.remaining() >= 16) {
      b.putInt(rel.relNumber()).putInt(fork.ordinal()).putLong(block);
    }
    return b.array();
  }

  private final PageSource synthetic =
      new PageSource() {
        @Override
        public List<Fork> relations(int spcOid, int dbOid) {
          return dbOid == DB
              ? List.of(
                  new Fork(SMALL, ForkNumber.MAIN, 300),
                  new Fork(SMALL, ForkNumber.FSM, 3),
                  new Fork(LARGE, ForkNumber.MAIN, LARGE_BLOCKS),
                  // an unlogged relation: its init fork, and a fork no compute should see
                  new Fork(UNLOGGED, ForkNumber.INIT, 2),
                  new Fork(UNLOGGED, ForkNumber.FSM, 1))
              : List.of();
        }

        @Override
        public void read(RelTag rel, ForkNumber fork, long firstBlock, int count, ByteBuffer into) {
          remoteReads.incrementAndGet();
          largestRead.accumulateAndGet(count, Math::max);
          for (int i = 0; i < count; i++) {
            into.put(page(rel, fork, firstBlock + i));
          }
        }

        @Override
        public void close() {}
      };

  private static LazyFsConfig config(int port, Duration timeout) {
    return new LazyFsConfig(
        "127.0.0.1",
        port,
        "postgres",
        null,
        TenantId.generate(),
        TimelineId.generate(),
        Lsn.of(0x1000000),
        true,
        timeout,
        2,
        4,
        0,
        0);
  }

  private LazyMount mount() throws IOException {
    return LazyMount.mount(
        synthetic,
        config(1, Duration.ofSeconds(5)),
        LazyMount.Root.BASE,
        seed,
        tmp.resolve("overlay"),
        mnt);
  }

  private static RelTag rel(int relNumber) {
    return new RelTag(RelTag.DEFAULT_TABLESPACE, DB, relNumber);
  }

  @Test
  void listingsSizesAndReadsComeFromTheSourceAndTheSeed() throws Exception {
    try (LazyMount m = mount()) {
      assertThat(m.mountPoint()).isEqualTo(mnt);
      Path db = mnt.resolve(Integer.toString(DB));
      assertThat(names(mnt)).containsExactly(Integer.toString(DB));
      assertThat(names(db))
          .containsExactlyInAnyOrder(
              "PG_VERSION", "16384", "16384_fsm", "16390", "16390.1", "16400", "16400_init");
      assertThat(Files.readString(db.resolve("PG_VERSION"))).isEqualTo("15\n");
      assertThat(Files.size(db.resolve("16384"))).isEqualTo(300L * 8192);
      assertThat(Files.size(db.resolve("16384_fsm"))).isEqualTo(3L * 8192);
      assertThat(Files.size(db.resolve("16390"))).isEqualTo(1L << 30);
      assertThat(Files.size(db.resolve("16390.1"))).isEqualTo(10L * 8192);
      byte[] all = Files.readAllBytes(db.resolve("16384"));
      for (int b = 0; b < 300; b++) {
        assertThat(slice(all, b)).as("block %d", b).isEqualTo(page(rel(SMALL), ForkNumber.MAIN, b));
      }
      // the last block of segment 0 and the first of segment 1 of the large relation
      try (FileChannel c = FileChannel.open(db.resolve("16390"))) {
        assertThat(readAt(c, (RelFileName.SEGMENT_BLOCKS - 1L) * 8192))
            .isEqualTo(page(rel(LARGE), ForkNumber.MAIN, RelFileName.SEGMENT_BLOCKS - 1L));
      }
      try (FileChannel c = FileChannel.open(db.resolve("16390.1"))) {
        assertThat(readAt(c, 9 * 8192L))
            .isEqualTo(page(rel(LARGE), ForkNumber.MAIN, RelFileName.SEGMENT_BLOCKS + 9L));
      }
      assertThatThrownBy(() -> Files.size(db.resolve("16384_vm")))
          .isInstanceOf(NoSuchFileException.class);
      // an unlogged relation is reset to its init fork, as no recovery on the compute does it
      byte[] unlogged = Files.readAllBytes(db.resolve("16400"));
      assertThat(unlogged).hasSize(2 * 8192);
      for (int b = 0; b < 2; b++) {
        assertThat(slice(unlogged, b)).isEqualTo(page(rel(UNLOGGED), ForkNumber.INIT, b));
      }
      assertThat(Files.readAllBytes(db.resolve("16400_init"))).isEqualTo(unlogged);
      assertThatThrownBy(() -> Files.size(db.resolve("16400_fsm")))
          .isInstanceOf(NoSuchFileException.class);
    }
  }

  @Test
  void aSequentialScanReachesTheSourceInReadsOfAMegabyte() throws Exception {
    try (LazyMount m = mount()) {
      Path file = m.mountPoint().resolve(DB + "/16390");
      // as root (where the bench and the agent run) the mount's readahead window is 1 MiB
      assumeTrue(
          MountReadahead.raise(mnt, LazyFuseOperations.MAX_IO / 1024).orElse(0)
              >= LazyFuseOperations.MAX_IO / 1024);
      ByteBuffer buf = ByteBuffer.allocate(8192);
      try (FileChannel c = FileChannel.open(file)) {
        for (int b = 0; b < 2048; b++) {
          buf.clear();
          while (buf.hasRemaining() && c.read(buf, b * 8192L + buf.position()) > 0) {}
          assertThat(buf.array()).as("block %d", b).isEqualTo(page(rel(LARGE), ForkNumber.MAIN, b));
        }
      }
      // PostgreSQL's 8 KiB reads of a sequential scan: the kernel reads ahead a megabyte at once
      assertThat(largestRead.get()).isEqualTo(LazyFuseOperations.MAX_IO / 8192);
      assertThat(remoteReads.get()).isLessThan(2048 / 16);
    }
  }

  @Test
  void mountinfoNamesTheDeviceOfOurMountOnly() {
    List<String> lines =
        List.of(
            "36 35 0:31 / /x rw,relatime shared:1 - fuse.other other rw",
            "37 35 0:44 / /mnt/my\\040dir rw,nosuid - fuse.zenith zenith rw,user_id=0",
            "38 37 0:45 / /mnt/my\\040dir rw,nosuid - fuse.zenith zenith rw,user_id=0");
    assertThat(MountReadahead.device(lines, Path.of("/mnt/my dir"))).contains("0:45");
    assertThat(MountReadahead.device(lines, Path.of("/x"))).isEmpty();
  }

  @Test
  void writesTruncationsAndExtensionsGoToTheOverlayWhichWinsForItsBlocks() throws Exception {
    try (LazyMount m = mount()) {
      Path f = mnt.resolve(DB + "/16384");
      try (FileChannel c = FileChannel.open(f, StandardOpenOption.WRITE)) {
        // a partial write into a remote block: the rest of the block stays the source's
        c.write(ByteBuffer.wrap("hello".getBytes()), 3 * 8192L + 100);
        // an extension past the end leaves a gap of zero pages
        c.write(ByteBuffer.wrap(page(rel(1), ForkNumber.MAIN, 1)), 305 * 8192L);
        c.force(false);
      }
      assertThat(readAll(f)).isEqualTo(readDirect(m, "/" + DB + "/16384"));
      assertThat(Files.size(f)).isEqualTo(306L * 8192);
      byte[] expected3 = page(rel(SMALL), ForkNumber.MAIN, 3);
      System.arraycopy("hello".getBytes(), 0, expected3, 100, 5);
      byte[] direct = readDirect(m, "/" + DB + "/16384");
      assertThat(slice(direct, 3)).isEqualTo(expected3);
      assertThat(slice(direct, 2)).isEqualTo(page(rel(SMALL), ForkNumber.MAIN, 2));
      assertThat(slice(direct, 302)).isEqualTo(new byte[8192]);
      assertThat(slice(direct, 305)).isEqualTo(page(rel(1), ForkNumber.MAIN, 1));
      // truncation drops the source's blocks beyond it for good: extending again reads zeros
      try (FileChannel c = FileChannel.open(f, StandardOpenOption.WRITE)) {
        c.truncate(10 * 8192L);
        c.write(ByteBuffer.wrap(new byte[] {7}), 20 * 8192L);
        c.force(false);
      }
      direct = readDirect(m, "/" + DB + "/16384");
      assertThat(direct.length).isEqualTo(20 * 8192 + 1);
      assertThat(slice(direct, 3)).isEqualTo(expected3);
      assertThat(slice(direct, 9)).isEqualTo(page(rel(SMALL), ForkNumber.MAIN, 9));
      assertThat(slice(direct, 10)).isEqualTo(new byte[8192]);
      assertThat(slice(direct, 15)).isEqualTo(new byte[8192]);
    }
  }

  @Test
  void createRenameUnlinkMkdirAndRmdir() throws Exception {
    Path overlay = tmp.resolve("overlay");
    try (LazyMount m = mount()) {
      assertThat(m.mountPoint()).isEqualTo(mnt);
      Path db = mnt.resolve(Integer.toString(DB));
      Files.writeString(db.resolve("pg_internal.init.123"), "cache");
      Files.move(db.resolve("pg_internal.init.123"), db.resolve("pg_internal.init"));
      assertThat(Files.readString(db.resolve("pg_internal.init"))).isEqualTo("cache");
      // a renamed relation file keeps its pages, whatever its name
      Files.move(db.resolve("16384_fsm"), db.resolve("99999"));
      assertThat(slice(Files.readAllBytes(db.resolve("99999")), 2))
          .isEqualTo(page(rel(SMALL), ForkNumber.FSM, 2));
      Files.delete(db.resolve("16384"));
      assertThat(names(db))
          .containsExactlyInAnyOrder(
              "PG_VERSION", "pg_internal.init", "99999", "16390", "16390.1", "16400", "16400_init");
      assertThat(Files.exists(db.resolve("16384"))).isFalse();
      // a new relation file of the same name starts empty, not with the source's pages
      Files.write(db.resolve("16384"), new byte[0]);
      assertThat(Files.size(db.resolve("16384"))).isZero();
      Path newDb = Files.createDirectory(mnt.resolve("6"));
      Files.writeString(newDb.resolve("PG_VERSION"), "15\n");
      assertThatThrownBy(() -> Files.delete(newDb)).isInstanceOf(DirectoryNotEmptyException.class);
      Files.delete(newDb.resolve("PG_VERSION"));
      Files.delete(newDb);
      assertThat(names(mnt)).containsExactly(Integer.toString(DB));
      assertThat(Files.getOwner(db.resolve("PG_VERSION")).getName()).isEqualTo("root");
      assertThat(Files.getPosixFilePermissions(db.resolve("PG_VERSION")))
          .hasToString("[OWNER_READ, OWNER_WRITE]");
      assertThat(names(overlay)).isNotEmpty();
    }
    assertThat(mounted(mnt)).isFalse();
    assertThat(names(overlay)).isEmpty();
    assertThat(LazyMount.unmountStale(mnt)).isFalse(); // nothing of ours is left there
  }

  @Test
  void aPageserverThatNeverAnswersFailsReadsWithEioWithinTheTimeout() throws Exception {
    List<Socket> accepted = new ArrayList<>();
    try (ServerSocket silent = new ServerSocket(0)) {
      Thread acceptor =
          Thread.ofPlatform()
              .daemon()
              .start(
                  () -> {
                    try {
                      while (true) {
                        accepted.add(silent.accept()); // and never answer
                      }
                    } catch (IOException e) {
                      // closed
                    }
                  });
      try (LazyMount m =
          LazyMount.mount(
              config(silent.getLocalPort(), Duration.ofSeconds(2)),
              LazyMount.Root.BASE,
              seed,
              tmp.resolve("overlay"),
              mnt)) {
        assertThat(m.mountPoint()).isEqualTo(mnt);
        long started = System.nanoTime();
        assertThatThrownBy(() -> Files.size(mnt.resolve(DB + "/16384")))
            .isInstanceOf(IOException.class)
            .hasMessageContaining("Input/output error");
        assertThat(Duration.ofNanos(System.nanoTime() - started))
            .isGreaterThanOrEqualTo(Duration.ofMillis(1900))
            .isLessThan(Duration.ofSeconds(10));
        // what does not need the pageserver still works
        assertThat(Files.readString(mnt.resolve(DB + "/PG_VERSION"))).isEqualTo("15\n");
      }
      acceptor.interrupt();
    } finally {
      for (Socket s : accepted) {
        s.close();
      }
    }
    assertThat(mounted(mnt)).isFalse();
  }

  @Test
  void aMountPointThatIsNotADirectoryOrAnOverlayInUseIsRefused() throws Exception {
    Path file = Files.writeString(tmp.resolve("file"), "x");
    assertThatThrownBy(
            () ->
                LazyMount.mount(
                    synthetic,
                    config(1, Duration.ofSeconds(1)),
                    LazyMount.Root.BASE,
                    seed,
                    tmp.resolve("o1"),
                    file))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("is not a directory");
    Files.createDirectories(tmp.resolve("o2"));
    Files.writeString(tmp.resolve("o2/leftover"), "x");
    assertThatThrownBy(
            () ->
                LazyMount.mount(
                    synthetic,
                    config(1, Duration.ofSeconds(1)),
                    LazyMount.Root.BASE,
                    seed,
                    tmp.resolve("o2"),
                    mnt))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("is not empty");
  }

  static boolean mounted(Path mountPoint) throws IOException {
    return Files.readAllLines(Path.of("/proc/self/mountinfo")).stream()
        .anyMatch(l -> l.contains(" " + mountPoint.toAbsolutePath() + " "));
  }

  private static List<String> names(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  private static byte[] readAll(Path f) throws IOException {
    return Files.readAllBytes(f);
  }

  private static byte[] slice(byte[] all, int block) {
    byte[] out = new byte[8192];
    System.arraycopy(all, block * 8192, out, 0, 8192);
    return out;
  }

  private static byte[] readAt(FileChannel c, long pos) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(8192);
    while (b.hasRemaining() && c.read(b, pos + b.position()) >= 0) {}
    return b.array();
  }

  /**
   * The file's bytes as the filesystem answers them (after the kernel wrote back its dirty pages on
   * the writer's fsync), not from the kernel's page cache.
   */
  private static byte[] readDirect(LazyMount m, String path) throws IOException {
    OverlayFile f = ((LazyTree.File) m.tree().lookup(path)).content();
    ByteBuffer b = ByteBuffer.allocate((int) f.size());
    f.read(b, b.capacity(), 0);
    return b.array();
  }
}
