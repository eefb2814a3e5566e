package io.zenith.ingest;

import io.micrometer.core.instrument.Counter;
import io.zenith.ingest.wal.records.TypedRecord;
import io.zenith.layer.TimelineWriter;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;

/**
 * The ingest stage: writes each record's versions into the timeline's open in-memory layer ({@link
 * WalIngest}) and reports the write position; passes every event on to the freeze stage.
 *
 * <ul>
 *   <li><b>Thread:</b> the timeline's single ingest thread ({@code publishOn}): the writes block on
 *       the open layer's ephemeral file, never on a network thread. The freeze stage runs after it
 *       on the same thread, so freezing happens between two records.
 *   <li><b>Demand:</b> its hand-off queue requests {@code prefetch} events upstream and replenishes
 *       as it drains; it drains only while downstream (the freeze stage) has demand, so once the
 *       flush stage stops requesting the queue fills and the decode stage, then the WAL source,
 *       stop.
 *   <li><b>Bound:</b> {@code prefetch} events queued (records, ticks).
 *   <li><b>Cancel / error:</b> the queue is dropped (records are heap views, nothing to release);
 *       an upstream error is delivered after the queued records were ingested. A failed write
 *       errors the pipeline; what was not flushed is ingested again after a restart.
 *   <li><b>Order:</b> events in the order they were queued; records strictly in WAL order.
 * </ul>
 *
 * <p>Not thread-safe: one instance per run, all work on the ingest thread.
 */
final class IngestStage {
  private final TimelineWriter timeline;
  private final WalIngest ingest;
  private final Scheduler ingestThread;
  private final int prefetch;
  private final Counter records;
  private final Counter bytes;
  private final IngestPipeline.Progress progress;

  IngestStage(
      WalIngest ingest,
      Scheduler ingestThread,
      int prefetch,
      Counter records,
      Counter bytes,
      IngestPipeline.Progress progress) {
    this.timeline = ingest.timeline();
    this.ingest = ingest;
    this.ingestThread = ingestThread;
    this.prefetch = prefetch;
    this.records = records;
    this.bytes = bytes;
    this.progress = progress;
  }

  Flux<IngestEvent> apply(Flux<IngestEvent> events) {
    return events
        .publishOn(ingestThread, prefetch)
        .map(
            e -> {
              if (e instanceof IngestEvent.Decoded d) {
                write(d.record());
              }
              return e;
            });
  }

  private void write(TypedRecord r) {
    ingest.ingest(r);
    records.increment();
    bytes.increment(r.totalLength());
    progress.report(r.end(), timeline.diskConsistentLsn());
  }
}
