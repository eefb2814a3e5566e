package io.zenith.wal;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.wal.testing.SyntheticWal;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;
import reactor.test.publisher.TestPublisher;

class WalStreamTest {

  private static List<ByteBuffer> chunks(byte[] bytes, int size) {
    List<ByteBuffer> out = new ArrayList<>();
    for (int off = 0; off < bytes.length; off += size) {
      out.add(ByteBuffer.wrap(bytes, off, Math.min(size, bytes.length - off)));
    }
    return out;
  }

  @Test
  void emitsRecordsInOrderAndCompletesAtEndOfWal() {
    SyntheticWal wal = WalRecordAssemblerTest.mixed();
    List<WalRecord> got =
        WalStream.records(
                Flux.fromIterable(chunks(wal.bytesToSegmentEnd(), 10_000)),
                wal.startLsn(),
                WalRecordAssembler.Options.DEFAULT)
            .collectList()
            .block();
    WalRecordAssemblerTest.assertSameRecords(got, wal.records());
  }

  @Test
  void requestsOneChunkAtATimeAndOnlyOnDemand() {
    SyntheticWal wal = SyntheticWal.small();
    for (int i = 0; i < 50; i++) {
      wal.append(10, 0, i, 1000); // about 8 records per 8 KiB chunk
    }
    byte[] bytes = wal.bytesToSegmentEnd();
    AtomicLong requested = new AtomicLong();
    Flux<ByteBuffer> source =
        Flux.fromIterable(chunks(bytes, 8192)).doOnRequest(n -> requested.addAndGet(n));
    StepVerifier.create(
            WalStream.records(source, wal.startLsn(), WalRecordAssembler.Options.DEFAULT), 0)
        .then(() -> assertThat(requested.get()).isZero())
        .thenRequest(1)
        .expectNextCount(1)
        .then(() -> assertThat(requested.get()).isEqualTo(1))
        .thenRequest(5)
        .expectNextCount(5)
        .then(() -> assertThat(requested.get()).as("still inside the first chunk").isEqualTo(1))
        .thenRequest(10)
        .expectNextCount(10)
        .then(() -> assertThat(requested.get()).isLessThanOrEqualTo(3))
        .thenCancel()
        .verify();
  }

  @Test
  void malformedWalSignalsErrorAndCancelsUpstream() {
    SyntheticWal wal = WalRecordAssemblerTest.mixed();
    byte[] bytes = wal.bytesToSegmentEnd();
    bytes[(int) wal.records().get(3).lsn().minus(wal.startLsn()) + 30] ^= 1;
    TestPublisher<ByteBuffer> pub = TestPublisher.create();
    StepVerifier.create(WalStream.records(pub, wal.startLsn(), WalRecordAssembler.Options.DEFAULT))
        .then(() -> chunks(bytes, 4096).stream().limit(3).forEach(pub::next))
        .expectNextCount(3)
        .expectErrorSatisfies(
            e ->
                assertThat(e)
                    .isInstanceOfSatisfying(
                        WalFormatException.class,
                        w -> assertThat(w.kind()).isEqualTo(WalFormatException.Kind.CRC_MISMATCH)))
        .verify();
    pub.assertCancelled();
  }

  @Test
  void endOfWalCancelsUpstream() {
    SyntheticWal wal = SyntheticWal.small();
    wal.append(10, 0, 1, 100);
    byte[] bytes = wal.bytesToSegmentEnd();
    TestPublisher<ByteBuffer> pub = TestPublisher.create();
    StepVerifier.create(WalStream.records(pub, wal.startLsn(), WalRecordAssembler.Options.DEFAULT))
        .then(() -> pub.next(ByteBuffer.wrap(bytes, 0, 8192)))
        .expectNextCount(1)
        .then(() -> pub.next(ByteBuffer.wrap(bytes, 8192, 8192)))
        .verifyComplete();
    pub.assertCancelled();
  }
}
