package io.zenith.wal.log;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalStream;
import io.zenith.wal.testing.FullDisk;
import io.zenith.wal.testing.SyntheticWal;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.reactivestreams.Subscription;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;
import reactor.test.StepVerifier;

class WalLogTest {
  @TempDir Path dir;

  private static SyntheticWal threeSegments() {
    SyntheticWal wal = SyntheticWal.small();
    Random r = new Random(3);
    while (wal.position().segmentNumber(wal.segmentSize()) < 3) {
      wal.append(10, 0, 1, r.nextInt(20_000));
    }
    wal.append(10, 0, 1, 100);
    return wal;
  }

  private WalLog open(SyntheticWal wal) throws IOException {
    return WalLog.open(dir, wal.segmentSize(), wal.systemId(), wal.startLsn());
  }

  /** Appends {@code bytes} (WAL from {@code at}) in random chunk sizes. */
  private static void appendAll(WalLog log, Lsn at, byte[] bytes, long seed) throws IOException {
    Random r = new Random(seed);
    for (int off = 0; off < bytes.length; ) {
      int n = Math.min(bytes.length - off, 1 + r.nextInt(300_000));
      log.append(at.plus(off), ByteBuffer.wrap(bytes, off, n));
      off += n;
      if (r.nextInt(4) == 0) {
        log.flush();
      }
    }
  }

  private static byte[] readAll(WalLog log, Lsn from, Lsn to) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    log.read(from, to, 64 * 1024)
        .toIterable()
        .forEach(b -> out.write(b.array(), b.arrayOffset() + b.position(), b.remaining()));
    return out.toByteArray();
  }

  /** A short, comparable summary of bytes (failures must not print megabytes). */
  private static String digest(byte[] b) {
    try {
      return b.length
          + " bytes, sha256 "
          + java.util.HexFormat.of()
              .formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(b));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }

  private List<String> files() throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  @Test
  void appendedWalReadsBackByteForByteAcrossSegments() throws IOException {
    SyntheticWal wal = threeSegments();
    byte[] bytes = wal.bytes();
    try (WalLog log = open(wal)) {
      appendAll(log, wal.startLsn(), bytes, 1);
      assertThat(log.flush()).isEqualTo(wal.position());
      assertThat(digest(readAll(log, wal.startLsn(), log.flushLsn()))).isEqualTo(digest(bytes));
      assertThat(files())
          .containsExactly(
              "000000010000000000000001",
              "000000010000000000000002",
              "000000010000000000000003.partial");
      List<WalRecord> records =
          WalStream.records(
                  log.read(wal.startLsn(), log.flushLsn(), 8192),
                  wal.startLsn(),
                  WalRecordAssembler.Options.DEFAULT.withSegmentSize(wal.segmentSize()))
              .collectList()
              .block();
      assertThat(records).hasSameSizeAs(wal.records());
      assertThatThrownBy(() -> log.append(wal.startLsn(), ByteBuffer.allocate(8)))
          .hasMessageContaining("the log ends at");
    }
  }

  @Test
  void reopeningFindsTheEndOfTheWalAndATornTailIsNotWal() throws IOException {
    SyntheticWal wal = threeSegments();
    byte[] bytes = wal.bytes();
    SyntheticWal.Written last = wal.records().getLast();
    SyntheticWal.Written beforeLast = wal.records().get(wal.records().size() - 2);
    int cut = (int) last.lsn().minus(wal.startLsn()) + 50; // in the middle of the last record
    try (WalLog log = open(wal)) {
      appendAll(log, wal.startLsn(), Arrays.copyOf(bytes, cut), 2);
      log.flush();
    }
    try (WalLog log = open(wal)) {
      assertThat(log.flushLsn()).isEqualTo(beforeLast.end());
      assertThat(log.prevRecordAtOpen()).isEqualTo(beforeLast.lsn());
      // The torn bytes are gone; the rest of the WAL appends cleanly after the last record.
      int from = (int) beforeLast.end().minus(wal.startLsn());
      log.append(beforeLast.end(), ByteBuffer.wrap(bytes, from, bytes.length - from));
      log.flush();
      assertThat(digest(readAll(log, wal.startLsn(), log.flushLsn()))).isEqualTo(digest(bytes));
    }
    try (WalLog log = open(wal)) {
      assertThat(log.flushLsn()).isEqualTo(wal.position());
    }
  }

  @Test
  void truncationDiscardsLaterWalDurably() throws IOException {
    SyntheticWal wal = threeSegments();
    byte[] bytes = wal.bytes();
    SyntheticWal.Written cut = wal.records().get(3); // in the first segment
    try (WalLog log = open(wal)) {
      appendAll(log, wal.startLsn(), bytes, 3);
      log.flush();
      log.truncate(cut.lsn());
      assertThat(log.flushLsn()).isEqualTo(cut.lsn());
      assertThat(files()).containsExactly("000000010000000000000001.partial");
      assertThat(readAll(log, wal.startLsn(), Lsn.MAX))
          .isEqualTo(Arrays.copyOf(bytes, (int) cut.lsn().minus(wal.startLsn())));
    }
    try (WalLog log = open(wal)) {
      assertThat(log.flushLsn()).isEqualTo(cut.lsn());
    }
  }

  @Test
  void retentionRemovesWholeSegmentsBelowTheHorizon() throws IOException {
    SyntheticWal wal = threeSegments();
    try (WalLog log = open(wal)) {
      appendAll(log, wal.startLsn(), wal.bytes(), 4);
      log.flush();
      Lsn horizon = wal.startLsn().plus(2L * wal.segmentSize() + 100);
      assertThat(log.removeSegmentsBefore(horizon)).isEqualTo(2);
      assertThat(log.oldestLsn()).contains(wal.startLsn().plus(2L * wal.segmentSize()));
      assertThat(files()).containsExactly("000000010000000000000003.partial");
    }
  }

  @Test
  void retentionNeverRemovesTheSegmentOfTheDurableEndNorTheLastOne() throws IOException {
    SyntheticWal wal = threeSegments();
    try (WalLog log = open(wal)) {
      appendAll(log, wal.startLsn(), wal.bytes(), 5);
      log.flush();
      // A horizon beyond everything held (a confused caller) still leaves the WAL's own end.
      assertThat(log.removeSegmentsBefore(Lsn.MAX)).isEqualTo(2);
      assertThat(files()).containsExactly("000000010000000000000003.partial");
      assertThat(log.oldestLsn()).contains(Lsn.of(3L * wal.segmentSize()));
      assertThat(log.removeSegmentsBefore(Lsn.MAX)).isZero();
    }
    // A horizon at the durable end keeps the segment that holds it.
    SyntheticWal two = SyntheticWal.small();
    Random r = new Random(6);
    while (two.position().segmentNumber(two.segmentSize()) < 2) {
      two.append(10, 0, 1, r.nextInt(20_000));
    }
    Path other = dir.resolve("other");
    try (WalLog log = WalLog.open(other, two.segmentSize(), two.systemId(), two.startLsn())) {
      appendAll(log, two.startLsn(), two.bytes(), 7);
      log.flush();
      assertThat(log.removeSegmentsBefore(log.flushRecordEnd())).isEqualTo(1);
      assertThat(log.oldestLsn()).contains(Lsn.of(2L * two.segmentSize()));
    }
  }

  @Test
  void aRestartAfterAPartialRemovalHoldsTheRestAndReadsItByteForByte() throws IOException {
    SyntheticWal wal = threeSegments();
    byte[] bytes = wal.bytes();
    Lsn third = Lsn.of(3L * wal.segmentSize());
    try (WalLog log = open(wal)) {
      appendAll(log, wal.startLsn(), bytes, 8);
      log.flush();
    }
    // A crash after the first of two deletions: segment 1 is gone, 2 and 3 remain.
    Files.delete(dir.resolve("000000010000000000000001"));
    Lsn recoverFrom =
        wal.records().stream()
            .map(SyntheticWal.Written::lsn)
            .filter(l -> !l.isBefore(third))
            .findFirst()
            .orElseThrow();
    try (WalLog log = WalLog.open(dir, wal.segmentSize(), wal.systemId(), recoverFrom)) {
      assertThat(log.flushRecordEnd()).isEqualTo(wal.position());
      Lsn second = Lsn.of(2L * wal.segmentSize());
      assertThat(log.oldestLsn()).contains(second);
      int off = (int) second.minus(wal.startLsn());
      assertThat(digest(readAll(log, second, log.flushLsn())))
          .isEqualTo(digest(Arrays.copyOfRange(bytes, off, bytes.length)));
      // Reading below what is held fails naming the missing segment.
      assertThatThrownBy(() -> readAll(log, wal.startLsn(), second))
          .hasMessageContaining("000000010000000000000001")
          .hasMessageContaining("is not in");
      // The deletion goes on where it stopped.
      assertThat(log.removeSegmentsBefore(third)).isEqualTo(1);
      assertThat(files()).containsExactly("000000010000000000000003.partial");
    }
  }

  @Test
  void tailFollowsFlushesUpToTheLimit() throws IOException {
    SyntheticWal wal = threeSegments();
    byte[] bytes = wal.bytes();
    try (WalLog log = open(wal)) {
      Sinks.Many<Lsn> commits = Sinks.many().replay().latest();
      Lsn start = wal.startLsn();
      AtomicReference<Lsn> commit = new AtomicReference<>(start);
      Flux<Lsn> changes = Flux.merge(log.flushUpdates(), commits.asFlux());
      ByteArrayOutputStream got = new ByteArrayOutputStream();
      StepVerifier.create(
              log.tail(start, commit::get, changes, 100_000)
                  .doOnNext(
                      b -> got.write(b.array(), b.arrayOffset() + b.position(), b.remaining())))
          .then(
              () -> {
                try {
                  log.append(start, ByteBuffer.wrap(bytes, 0, 500_000));
                  log.flush();
                } catch (IOException e) {
                  throw new AssertionError(e);
                }
                commit.set(start.plus(300_000));
                commits.tryEmitNext(commit.get());
              })
          .thenConsumeWhile(b -> got.size() < 300_000)
          .then(() -> assertThat(got.size()).isEqualTo(300_000))
          .then(
              () -> {
                commit.set(start.plus(500_000));
                commits.tryEmitNext(commit.get());
              })
          .thenConsumeWhile(b -> got.size() < 500_000)
          .thenCancel()
          .verify(Duration.ofSeconds(10));
      assertThat(digest(got.toByteArray())).isEqualTo(digest(Arrays.copyOf(bytes, 500_000)));
    }
  }

  /**
   * The safekeeper's sender as it runs (issue 9): two positions move on two threads, each signals
   * its own change, the reader hops to a scheduler and a consumer on a third thread asks for one
   * chunk at a time. The tail must reach the end every time: a wake-up lost at the last change
   * leaves it stopped for good, since nothing moves a position again while the reader waits. (The
   * end-to-end check of the old failure is the pgbench soak through the CLI; this pins the contract
   * the safekeeper relies on.)
   */
  @Test
  void tailReachesTheLimitWhenTwoPositionsMoveOnTwoThreads() throws Exception {
    SyntheticWal wal = threeSegments();
    byte[] bytes = wal.bytes();
    Lsn start = wal.startLsn();
    int end = 1 << 20;
    Scheduler readers = Schedulers.newBoundedElastic(4, 1000, "tail-test");
    ExecutorService consumer = Executors.newSingleThreadExecutor();
    try (WalLog log = open(wal)) {
      log.append(start, ByteBuffer.wrap(bytes, 0, end + 100_000));
      log.flush();
      for (int round = 0; round < 200; round++) {
        AtomicReference<Lsn> flushed = new AtomicReference<>(start);
        AtomicReference<Lsn> committed = new AtomicReference<>(start);
        Sinks.Many<Lsn> flushes = Sinks.many().replay().latest();
        Sinks.Many<Lsn> commits = Sinks.many().replay().latest();
        Flux<Lsn> changes = Flux.merge(flushes.asFlux(), commits.asFlux()).publishOn(readers, 1);
        Flux<ByteBuffer> tail =
            log.tail(start, () -> Lsn.min(flushed.get(), committed.get()), changes, 8192)
                .subscribeOn(readers);
        OneAtATime reader = new OneAtATime(consumer);
        tail.subscribe(reader);
        Thread a = mover(start, end, flushed, flushes);
        Thread b = mover(start, end, committed, commits);
        a.join();
        b.join();
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (reader.received.get() < end && System.nanoTime() < deadline) {
          Thread.sleep(1);
        }
        assertThat(reader.received.get()).as("bytes read in round %d", round).isEqualTo(end);
        reader.cancel();
        flushes.tryEmitComplete();
        commits.tryEmitComplete();
      }
    } finally {
      consumer.shutdownNow();
      readers.dispose();
    }
  }

  /** Moves {@code position} to {@code start + end} in small steps, signalling each one. */
  private static Thread mover(
      Lsn start, int end, AtomicReference<Lsn> position, Sinks.Many<Lsn> signal) {
    Thread t =
        Thread.ofPlatform()
            .start(
                () -> {
                  for (int off = 997; ; off += 997) {
                    Lsn next = start.plus(Math.min(off, end));
                    position.set(next);
                    signal.tryEmitNext(next);
                    if (off >= end) {
                      return;
                    }
                  }
                });
    return t;
  }

  /** Requests one item at a time from a single thread, as a network writer does. */
  private static final class OneAtATime extends BaseSubscriber<ByteBuffer> {
    final AtomicLong received = new AtomicLong();
    private final ExecutorService thread;

    OneAtATime(ExecutorService thread) {
      this.thread = thread;
    }

    @Override
    protected void hookOnSubscribe(Subscription s) {
      thread.execute(() -> request(1));
    }

    @Override
    protected void hookOnNext(ByteBuffer b) {
      int n = b.remaining();
      thread.execute(
          () -> {
            received.addAndGet(n);
            request(1);
          });
    }
  }

  @Test
  void aFullDiskStopsAppendsAtARecordBoundaryAndTheLogGoesOnOnceSpaceIsBack() throws IOException {
    SyntheticWal wal = threeSegments();
    byte[] bytes = wal.bytes();
    Lsn start = wal.startLsn();
    // Room for the first segment and half of the second.
    FullDisk disk = FullDisk.withFree(wal.segmentSize() + wal.segmentSize() / 2L);
    try (WalLog log = WalLog.open(dir, wal.segmentSize(), wal.systemId(), start, disk)) {
      int off = 0;
      IOException full = null;
      Lsn recordEndBefore = start;
      while (off < bytes.length) {
        int n = Math.min(bytes.length - off, 100_000);
        try {
          log.append(start.plus(off), ByteBuffer.wrap(bytes, off, n));
        } catch (IOException e) {
          full = e;
          break;
        }
        off += n;
        log.flush();
        recordEndBefore = log.flushRecordEnd();
      }
      assertThat(full).as("the second segment does not fit").isNotNull();
      assertThat(full.getMessage())
          .isEqualTo(
              "cannot create WAL segment "
                  + dir.resolve("000000010000000000000002.partial")
                  + ": "
                  + FullDisk.ENOSPC);
      // Cut back to the last record that was written whole; nothing of the failed append counts.
      Lsn at = log.writeLsn();
      assertThat(at).isEqualTo(recordEndBefore);
      assertThat(wal.records()).extracting(SyntheticWal.Written::end).contains(at);
      assertThat(log.flush()).isEqualTo(at);
      assertThat(log.flushRecordEnd()).isEqualTo(at);
      assertThat(files()).containsExactly("000000010000000000000001.partial");
      assertThat(digest(readAll(log, start, at)))
          .isEqualTo(digest(Arrays.copyOf(bytes, (int) at.minus(start))));
      // Still full: the retry fails the same way and changes nothing.
      int from = (int) at.minus(start);
      assertThatThrownBy(() -> log.append(at, ByteBuffer.wrap(bytes, from, bytes.length - from)))
          .hasMessageEndingWith(FullDisk.ENOSPC);
      assertThat(log.writeLsn()).isEqualTo(at);
      // Space is back: the WAL continues where it stopped.
      disk.setFree(Long.MAX_VALUE);
      log.append(at, ByteBuffer.wrap(bytes, from, bytes.length - from));
      assertThat(log.flush()).isEqualTo(wal.position());
      assertThat(digest(readAll(log, start, log.flushLsn()))).isEqualTo(digest(bytes));
    }
    try (WalLog log = open(wal)) {
      assertThat(log.flushLsn()).isEqualTo(wal.position());
    }
  }

  /**
   * A writing thread that is interrupted (a cancelled I/O task: Reactor interrupts a worker it
   * disposes) closes the segment's channel mid-append; the log goes back to its last whole record,
   * reopens the channel and goes on, and never reports what was not written as flushed.
   */
  @Test
  void anInterruptedAppendLeavesTheLogAtItsLastWholeRecord() throws IOException {
    SyntheticWal wal = threeSegments();
    byte[] bytes = wal.bytes();
    Lsn start = wal.startLsn();
    try (WalLog log = open(wal)) {
      log.append(start, ByteBuffer.wrap(bytes, 0, 100_000));
      log.flush();
      Lsn before = log.flushRecordEnd();
      Thread.currentThread().interrupt();
      try {
        assertThatThrownBy(
                () -> log.append(start.plus(100_000), ByteBuffer.wrap(bytes, 100_000, 300_000)))
            .isInstanceOf(java.nio.channels.ClosedByInterruptException.class);
        assertThat(Thread.currentThread().isInterrupted()).as("the interrupt is kept").isTrue();
      } finally {
        Thread.interrupted();
      }
      assertThat(log.writeLsn()).isEqualTo(before);
      assertThat(log.flush()).isEqualTo(before);
      assertThat(log.flushRecordEnd()).isEqualTo(before);
      int from = (int) before.minus(start);
      log.append(before, ByteBuffer.wrap(bytes, from, bytes.length - from));
      assertThat(log.flush()).isEqualTo(wal.position());
      assertThat(digest(readAll(log, start, log.flushLsn()))).isEqualTo(digest(bytes));
    }
    try (WalLog log = open(wal)) {
      assertThat(log.flushLsn()).isEqualTo(wal.position());
    }
  }

  @Test
  void onlyWholeDurableRecordsCountAsFlushed() throws IOException {
    SyntheticWal wal = threeSegments();
    byte[] bytes = wal.bytes();
    SyntheticWal.Written r5 = wal.records().get(5);
    SyntheticWal.Written r6 = wal.records().get(6);
    try (WalLog log = open(wal)) {
      int mid = (int) r6.lsn().minus(wal.startLsn()) + 20;
      log.append(wal.startLsn(), ByteBuffer.wrap(bytes, 0, mid));
      assertThat(log.flushRecordEnd()).isEqualTo(wal.startLsn()); // nothing durable yet
      log.flush();
      assertThat(log.flushLsn()).isEqualTo(wal.startLsn().plus(mid));
      assertThat(log.flushRecordEnd()).isEqualTo(r5.end());
      log.append(log.writeLsn(), ByteBuffer.wrap(bytes, mid, bytes.length - mid));
      assertThat(log.flushRecordEnd()).isEqualTo(r5.end()); // appended is not durable
      log.flush();
      assertThat(log.flushRecordEnd()).isEqualTo(wal.position());
      assertThat(log.flushRecordEndUpdates().blockFirst()).isEqualTo(wal.position());
    }
  }

  @Test
  void malformedWalIsRefusedAndTheLogCutBackToItsLastRecord() throws IOException {
    SyntheticWal wal = threeSegments();
    byte[] bytes = wal.bytes();
    SyntheticWal.Written r3 = wal.records().get(3);
    SyntheticWal.Written r4 = wal.records().get(4);
    int mid = (int) r4.lsn().minus(wal.startLsn()) + 30;
    try (WalLog log = open(wal)) {
      log.append(wal.startLsn(), ByteBuffer.wrap(bytes, 0, mid));
      log.flush();
      byte[] rest = Arrays.copyOfRange(bytes, mid, mid + 100_000);
      rest[(int) r4.end().minus(wal.startLsn()) - mid - 1] ^= 0x40; // inside record 4: bad CRC
      assertThatThrownBy(() -> log.append(log.writeLsn(), ByteBuffer.wrap(rest)))
          .isInstanceOf(WalLog.MalformedWalException.class)
          .hasMessageContaining("cut back to " + r3.end());
      assertThat(log.writeLsn()).isEqualTo(r3.end());
      assertThat(log.flushLsn()).isEqualTo(r3.end());
      // The good bytes append again from there.
      int from = (int) r3.end().minus(wal.startLsn());
      log.append(r3.end(), ByteBuffer.wrap(bytes, from, bytes.length - from));
      log.flush();
      assertThat(digest(readAll(log, wal.startLsn(), log.flushLsn()))).isEqualTo(digest(bytes));
    }
  }
}
