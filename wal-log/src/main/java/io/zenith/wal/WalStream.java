package io.zenith.wal;

import java.nio.ByteBuffer;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Flux;

/**
 * The streaming WAL decoder as a Reactor operator: WAL bytes in chunks of any size in, complete
 * records with their start and end LSN out.
 *
 * <ul>
 *   <li><b>Thread:</b> runs on the thread that delivers chunks or requests records; it never blocks
 *       and never switches threads.
 *   <li><b>Demand:</b> requests one chunk from upstream when downstream asks for a record, and the
 *       next one only after downstream has taken every record the previous chunk completed. Records
 *       are decoded on demand, one per request.
 *   <li><b>Bound:</b> at most one chunk plus the record being assembled are held.
 *   <li><b>Cancel / error:</b> cancels upstream; nothing to release (chunks are heap or direct
 *       {@link ByteBuffer}s owned by the producer, never retained after their records are out).
 *   <li><b>Order:</b> records in LSN order. Completes at the end of WAL (see {@link
 *       WalRecordAssembler}), cancelling upstream, or when upstream completes. A record cut short
 *       by the end of input is not emitted. Malformed WAL signals {@link WalFormatException}.
 * </ul>
 */
public final class WalStream {
  private WalStream() {}

  public static Flux<WalRecord> records(
      Publisher<ByteBuffer> chunks, Lsn start, WalRecordAssembler.Options options) {
    return Flux.defer(
        () -> {
          WalRecordAssembler assembler = new WalRecordAssembler(start, options);
          return records(chunks, assembler);
        });
  }

  /** As {@link #records(Publisher, Lsn, WalRecordAssembler.Options)}, with a caller's assembler. */
  public static Flux<WalRecord> records(
      Publisher<ByteBuffer> chunks, WalRecordAssembler assembler) {
    return Flux.from(chunks)
        .takeWhile(chunk -> !assembler.ended())
        .concatMap(
            chunk ->
                Flux.<WalRecord>generate(
                    sink -> {
                      WalRecord r = assembler.step(chunk);
                      if (r != null) {
                        sink.next(r);
                      } else {
                        sink.complete();
                      }
                    }),
            0);
  }
}
