package io.zenith.layer;

import io.zenith.wal.Lsn;

/**
 * The ingest side of a timeline: put versions, publish record ends, freeze the open layer and flush
 * frozen ones to layer files. A writer also reads (ingest looks up relation sizes and pages).
 *
 * <p>Thread-safety: one writer thread (the ingest stage) calls {@link #put}, {@link #finishRecord}
 * and {@link #freezeIfDue}; {@link #flushOldestFrozen} runs on one flush thread that may block; the
 * rest may be called from any thread.
 */
public interface TimelineWriter extends TimelineView {
  /**
   * Adds a version. Visible to readers once {@link #finishRecord} has moved the last record LSN to
   * or past {@code lsn}. Buffered: durable after the layer holding it is flushed.
   */
  void put(Key key, Lsn lsn, Value value);

  /** Publishes everything up to the end of a record; wakes readers waiting for it. */
  void finishRecord(Lsn end, Lsn start);

  /** True when the open layer should be frozen: big enough, or old enough and not empty. */
  boolean freezeDue();

  /**
   * Freezes the open layer (cheap, no I/O) if {@link #freezeDue()} or {@code force}; call between
   * records. Returns true if a layer was frozen.
   */
  boolean freezeIfDue(boolean force);

  /** Frozen layers waiting to be flushed (for backpressure). */
  int frozenCount();

  /**
   * The flushed L0 delta layers not yet compacted: the flush stage stops flushing (and so ingest
   * slows down) while compaction lags this far behind.
   */
  int l0Layers();

  /** Bytes in the open layer (for metrics and backpressure). */
  long openLayerBytes();

  /**
   * Writes the oldest frozen layer to a layer file and commits it with the new disk-consistent LSN.
   * Blocking I/O: run it on a thread that may block. Durable on return. Returns false when nothing
   * was frozen.
   *
   * <p>A failure before the commit leaves the store as it was: the layer file and its temporary
   * file are deleted, RocksDB and the disk-consistent LSN are unchanged, and the frozen layer stays
   * queued with its versions, so the flush can simply be called again (a retry reuses the layer id
   * the first attempt allocated). A failed commit leaves the file to recovery. A failed fsync is an
   * Error that passes through untouched.
   *
   * @throws LayerStoreException NO_SPACE when the layer file could not get its bytes, or RocksDB
   *     reported no space (a full disk: retry later; the first failure of a spell is logged at
   *     WARN, the flush that works again at INFO); IO for other failures
   */
  boolean flushOldestFrozen();

  /** Flush attempts that failed for want of space since the timeline was loaded. */
  long flushFailures();

  /** Freezes and flushes everything ingested so far. Blocking; durable on return. */
  void checkpoint();
}
