package io.zenith.ingest;

import static org.assertj.core.api.Assertions.assertThat;

import io.zenith.ingest.wal.records.PgRecord;
import io.zenith.ingest.wal.records.XlogRecord;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.testing.SyntheticWal;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.test.StepVerifier;

/**
 * The decode stage: one chunk per request, records parsed once, END last, cancel reaches the
 * source.
 */
class DecodeStageTest {
  private final SyntheticWal wal = SyntheticWal.small();
  private final List<SyntheticWal.Written> written = new ArrayList<>();
  private final AtomicLong requested = new AtomicLong();
  private final AtomicBoolean cancelled = new AtomicBoolean();

  private SyntheticWal.Written append(int info, byte[] mainData) {
    byte[] body = new byte[2 + mainData.length];
    body[0] = (byte) 0xFF; // XLR_BLOCK_ID_DATA_SHORT
    body[1] = (byte) mainData.length;
    System.arraycopy(mainData, 0, body, 2, mainData.length);
    SyntheticWal.Written w = wal.append(WalFormat.RM_XLOG_ID, info, 0, body);
    written.add(w);
    return w;
  }

  /** One chunk per record, from the first record's end (where the stage starts). */
  private Flux<ByteBuffer> chunks() {
    byte[] all = wal.bytes();
    List<ByteBuffer> out = new ArrayList<>();
    for (int i = 1; i < written.size(); i++) {
      long from = written.get(i - 1).end().value() - wal.startLsn().value();
      long to = written.get(i).end().value() - wal.startLsn().value();
      out.add(ByteBuffer.wrap(all, (int) from, (int) (to - from)).slice());
    }
    return Flux.fromIterable(out)
        .doOnRequest(requested::addAndGet)
        .doOnCancel(() -> cancelled.set(true));
  }

  private Flux<IngestEvent> stage() {
    Lsn start = written.get(0).end();
    return DecodeStage.decode(
        chunks(),
        new WalRecordAssembler(
            start, new WalRecordAssembler.Options(wal.segmentSize(), wal.systemId(), true)));
  }

  private static byte[] nextOid(int oid) {
    return new byte[] {(byte) oid, (byte) (oid >>> 8), (byte) (oid >>> 16), (byte) (oid >>> 24)};
  }

  @Test
  void decodesOneRecordPerRequestWithItsTypedContentAndEndsWithEnd() {
    append(SyntheticTimeline.XLOG_NOOP, new byte[4]);
    SyntheticWal.Written oid = append(0x30, nextOid(16400)); // XLOG_NEXTOID
    SyntheticWal.Written noop = append(SyntheticTimeline.XLOG_NOOP, new byte[8]);
    StepVerifier.create(stage(), 0)
        .expectSubscription()
        .then(() -> assertThat(requested).as("nothing requested without demand").hasValue(0))
        .thenRequest(1)
        .assertNext(
            e -> {
              IngestEvent.Decoded d = (IngestEvent.Decoded) e;
              assertThat(d.record().end()).isEqualTo(oid.end());
              assertThat(d.record().typed()).isEqualTo(new XlogRecord.NextOid(16400));
            })
        .then(() -> assertThat(requested).as("one chunk for one record").hasValue(1))
        .expectNoEvent(Duration.ofMillis(50))
        .thenRequest(1)
        .assertNext(
            e -> {
              IngestEvent.Decoded d = (IngestEvent.Decoded) e;
              assertThat(d.record().end()).isEqualTo(noop.end());
              assertThat(d.record().typed()).isInstanceOf(PgRecord.Other.class);
            })
        .then(() -> assertThat(requested).hasValue(2))
        .thenRequest(1)
        .expectNext(IngestEvent.END)
        .verifyComplete();
  }

  @Test
  void malformedContentFailsInTheDecodeStageWithItsLsn() {
    append(SyntheticTimeline.XLOG_NOOP, new byte[4]);
    SyntheticWal.Written bad = append(0x30, new byte[2]); // NEXTOID needs 4 bytes
    StepVerifier.create(stage(), 1)
        .expectErrorSatisfies(
            e -> {
              assertThat(e).isInstanceOf(WalFormatException.class);
              WalFormatException w = (WalFormatException) e;
              assertThat(w.kind()).isEqualTo(WalFormatException.Kind.BAD_RECORD_CONTENT);
              assertThat(w.getMessage()).contains(bad.lsn().toString());
            })
        .verify(Duration.ofSeconds(5));
    assertThat(cancelled).as("the source is cancelled").isTrue();
  }

  @Test
  void cancelReachesTheSource() {
    append(SyntheticTimeline.XLOG_NOOP, new byte[4]);
    for (int i = 0; i < 5; i++) {
      append(SyntheticTimeline.XLOG_NOOP, new byte[4]);
    }
    StepVerifier.create(stage(), 0)
        .thenRequest(2)
        .expectNextCount(2)
        .thenCancel()
        .verify(Duration.ofSeconds(5));
    assertThat(cancelled).isTrue();
    assertThat(requested).hasValue(2);
  }
}
