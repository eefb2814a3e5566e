package io.zenith.ingest;

import io.zenith.wal.Lsn;
import java.util.List;

/**
 * An item of the flush stage, emitted by the freeze stage when it froze the open layer (or was
 * asked for a checkpoint, or the source ended): make everything up to {@code upTo} durable, then
 * complete {@code checkpoints}. Immutable.
 *
 * @param upTo the last record end when the item was made (the end of the layer just frozen)
 * @param checkpoints the checkpoint requests this flush completes
 */
record FlushRequest(Lsn upTo, List<CheckpointRequest> checkpoints) {}
