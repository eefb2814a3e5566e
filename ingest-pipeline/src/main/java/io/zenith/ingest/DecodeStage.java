package io.zenith.ingest;

import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.ingest.wal.records.PgRecords;
import io.zenith.ingest.wal.records.TypedRecord;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalStream;
import java.nio.ByteBuffer;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The decode stage: WAL chunks in, records decoded once out — {@link WalStream} reassembles them,
 * {@link RecordDecoder} splits each and {@link PgRecords} parses its content, and both travel on as
 * one {@link TypedRecord}, so the ingest stage never parses again. Ends with {@link
 * IngestEvent#END} when the source completes (or the assembler reaches the end of WAL).
 *
 * <ul>
 *   <li><b>Thread:</b> the thread that delivers chunks or requests records (the WAL source's, or
 *       the one the merge ahead of the ingest stage requests on); never blocks, never switches.
 *   <li><b>Demand:</b> one record decoded per record requested; one chunk requested from the source
 *       at a time, the next only once every record the previous one completed was taken ({@link
 *       WalStream}).
 *   <li><b>Bound:</b> one chunk and the record being assembled.
 *   <li><b>Cancel / error:</b> cancels the source; nothing to release (chunks are heap or direct
 *       {@link ByteBuffer}s the producer handed over). Malformed WAL or record content signals
 *       {@link WalFormatException} (kind and LSN) before anything of that record is ingested.
 *   <li><b>Order:</b> records in WAL order, then {@link IngestEvent#END}.
 * </ul>
 *
 * <p>Stateless and thread-safe (the assembler is the caller's, one per run).
 */
final class DecodeStage {
  private DecodeStage() {}

  static Flux<IngestEvent> decode(Publisher<ByteBuffer> wal, WalRecordAssembler assembler) {
    return WalStream.records(wal, assembler)
        .<IngestEvent>map(r -> new IngestEvent.Decoded(TypedRecord.decode(r)))
        .concatWith(Mono.just(IngestEvent.END));
  }
}
