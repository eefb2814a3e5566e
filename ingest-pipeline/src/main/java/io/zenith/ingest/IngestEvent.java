package io.zenith.ingest;

import io.zenith.ingest.wal.records.TypedRecord;

/**
 * What flows from the decode stage through the ingest stage into the freeze stage: the records, in
 * WAL order, the freeze stage's own wake-ups merged in between them, and the end of the source.
 * Immutable.
 */
sealed interface IngestEvent {

  /** A record decoded once ({@link TypedRecord}); after the ingest stage, written. */
  record Decoded(TypedRecord record) implements IngestEvent {}

  /**
   * "Look again" for the freeze stage: its idle timer fired or a checkpoint was requested. Carries
   * no data; the freeze stage reads the state itself (level-triggered), so a tick may be dropped.
   */
  record Tick() implements IngestEvent {}

  /** The WAL source completed: the freeze stage freezes what is left; nothing follows. */
  record End() implements IngestEvent {}

  Tick TICK = new Tick();
  End END = new End();
}
