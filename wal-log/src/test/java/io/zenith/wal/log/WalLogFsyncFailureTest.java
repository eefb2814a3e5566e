package io.zenith.wal.log;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Fsync;
import io.zenith.wal.FsyncFailedException;
import io.zenith.wal.Lsn;
import io.zenith.wal.testing.FsyncSpy;
import io.zenith.wal.testing.SyntheticWal;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A failed fsync of the WAL log or the control file (through the {@link Fsync} seam) is the fatal
 * {@link FsyncFailedException} naming the path, is never retried, and leaves the log's positions
 * where the last successful fsync left them.
 */
@SuppressWarnings("try") // installed devices are held, not used
class WalLogFsyncFailureTest {
  @TempDir Path dir;

  @AfterEach
  void defaultHandler() {
    Fsync.onFailure(e -> {});
  }

  private static SyntheticWal records(int n) {
    SyntheticWal wal = SyntheticWal.small();
    for (int i = 0; i < n; i++) {
      wal.append(10, 0, 1, 200);
    }
    return wal;
  }

  private WalLog open(SyntheticWal wal) throws IOException {
    return WalLog.open(dir, wal.segmentSize(), wal.systemId(), wal.startLsn());
  }

  private Path partial(SyntheticWal wal) throws IOException {
    try (var s = Files.list(dir)) {
      return s.filter(p -> p.toString().endsWith(WalLog.PARTIAL)).findFirst().orElseThrow();
    }
  }

  @Test
  void aFailedSegmentFsyncInFlushIsFatalNotRetriedAndTheFlushLsnStays() throws IOException {
    SyntheticWal wal = records(20);
    byte[] all = wal.bytes();
    int half = all.length / 2;
    FsyncSpy spy = FsyncSpy.failingName(2, WalLog.PARTIAL);
    try (WalLog log = open(wal);
        Fsync.Installed i = spy.install()) {
      log.append(wal.startLsn(), ByteBuffer.wrap(all, 0, half));
      Lsn first = log.flush();
      log.append(first, ByteBuffer.wrap(all, half, all.length - half));
      Path segment = partial(wal);
      assertThatThrownBy(log::flush)
          .isInstanceOfSatisfying(
              FsyncFailedException.class, e -> assertThat(e.path()).isEqualTo(segment))
          .hasMessage("fsync of " + segment + " failed: " + FsyncSpy.EIO);
      assertThat(log.flushLsn()).isEqualTo(first);
      assertThat(log.flushRecordEnd()).isNotEqualTo(wal.position());
      // Nothing fsyncs again: another flush, an append, a truncation all throw the same error.
      assertThatThrownBy(log::flush).isInstanceOf(FsyncFailedException.class);
      assertThatThrownBy(() -> log.append(log.writeLsn(), ByteBuffer.allocate(0)))
          .isInstanceOf(FsyncFailedException.class);
      assertThatThrownBy(() -> log.truncate(first)).isInstanceOf(FsyncFailedException.class);
      assertThat(spy.count(segment)).isEqualTo(2);
      assertThat(log.flushLsn()).isEqualTo(first);
    }
  }

  @Test
  void aFailedDirectoryFsyncInFlushIsFatalAndTheFlushLsnStays() throws IOException {
    SyntheticWal wal = records(5);
    FsyncSpy spy = FsyncSpy.failing(1, dir::equals);
    try (WalLog log = open(wal);
        Fsync.Installed i = spy.install()) {
      log.append(wal.startLsn(), ByteBuffer.wrap(wal.bytes()));
      // the new segment's entry makes the flush fsync the directory
      assertThatThrownBy(log::flush)
          .isInstanceOfSatisfying(
              FsyncFailedException.class, e -> assertThat(e.path()).isEqualTo(dir));
      assertThat(log.flushLsn()).isEqualTo(wal.startLsn());
      assertThatThrownBy(log::flush).isInstanceOf(FsyncFailedException.class);
      assertThat(spy.count(dir)).isEqualTo(1);
    }
  }

  @Test
  void aFailedFsyncOfAPreallocatedSegmentIsFatalNotARewind() throws IOException {
    SyntheticWal wal = records(5);
    FsyncSpy spy = FsyncSpy.failingName(1, WalLog.PARTIAL + ".tmp");
    try (WalLog log = open(wal);
        Fsync.Installed i = spy.install()) {
      assertThatThrownBy(() -> log.append(wal.startLsn(), ByteBuffer.wrap(wal.bytes())))
          .isInstanceOfSatisfying(
              FsyncFailedException.class,
              e -> assertThat(e.path().getFileName().toString()).endsWith(".partial.tmp"));
      assertThat(log.flushLsn()).isEqualTo(wal.startLsn());
      assertThatThrownBy(log::flush).isInstanceOf(FsyncFailedException.class);
      assertThat(spy.calls()).hasSize(1);
    }
  }

  @Test
  void theFailureHandlerSeesTheFailureOnceBeforeItIsThrown() throws IOException {
    SyntheticWal wal = records(5);
    List<FsyncFailedException> seen = new ArrayList<>();
    Fsync.onFailure(seen::add);
    FsyncSpy spy = FsyncSpy.failingName(1, WalLog.PARTIAL);
    try (WalLog log = open(wal);
        Fsync.Installed i = spy.install()) {
      log.append(wal.startLsn(), ByteBuffer.wrap(wal.bytes()));
      AtomicReference<Throwable> thrown = new AtomicReference<>();
      try {
        log.flush();
      } catch (FsyncFailedException e) {
        thrown.set(e);
      }
      assertThatThrownBy(log::flush).isSameAs(thrown.get());
      assertThat(seen).containsExactly((FsyncFailedException) thrown.get());
    }
  }

  @Test
  void aRestartRecoversTheWalThatIsOnDisk() throws IOException {
    SyntheticWal wal = records(20);
    FsyncSpy spy = FsyncSpy.failingName(1, WalLog.PARTIAL);
    try (WalLog log = open(wal);
        Fsync.Installed i = spy.install()) {
      log.append(wal.startLsn(), ByteBuffer.wrap(wal.bytes()));
      assertThatThrownBy(log::flush).isInstanceOf(FsyncFailedException.class);
    }
    // The injected failure lost nothing (the page cache still holds it): reopening scans and
    // fsyncs what is there, as a restarted safekeeper does.
    try (WalLog log = open(wal)) {
      assertThat(log.flushLsn()).isEqualTo(wal.position());
    }
  }

  @Test
  void aFailedControlFileFsyncIsFatalAndTheOldFileStays() throws IOException {
    ControlFile before = ControlFileTest.sample();
    before.write(dir);
    ControlFile after = before.withPromisedTerm(before.promisedTerm() + 1);
    Path tmp = dir.resolve(ControlFile.FILE_NAME + ".tmp");
    FsyncSpy spy = FsyncSpy.failing(1, tmp::equals);
    try (Fsync.Installed i = spy.install()) {
      assertThatThrownBy(() -> after.write(dir))
          .isInstanceOfSatisfying(
              FsyncFailedException.class, e -> assertThat(e.path()).isEqualTo(tmp));
    }
    assertThat(spy.calls()).containsExactly(tmp);
    assertThat(ControlFile.read(dir)).contains(before);
  }

  @Test
  void aFailedDirectoryFsyncOfTheControlFileIsFatal() throws IOException {
    ControlFile c = ControlFileTest.sample();
    FsyncSpy spy = FsyncSpy.failing(1, dir::equals);
    try (Fsync.Installed i = spy.install()) {
      assertThatThrownBy(() -> c.write(dir))
          .isInstanceOfSatisfying(
              FsyncFailedException.class, e -> assertThat(e.path()).isEqualTo(dir));
    }
    assertThat(spy.calls()).containsExactly(dir.resolve(ControlFile.FILE_NAME + ".tmp"), dir);
  }
}
