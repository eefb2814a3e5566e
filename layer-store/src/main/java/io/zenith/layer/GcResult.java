package io.zenith.layer;

import io.zenith.wal.Lsn;

/**
 * What one GC pass did.
 *
 * @param cutoff the timeline's GC cutoff after the pass: reads below it are refused
 * @param versionsRemoved index entries no readable LSN needed
 * @param layersRemoved layer files deleted because nothing names them any more
 * @param bytesRemoved their size
 */
public record GcResult(Lsn cutoff, long versionsRemoved, int layersRemoved, long bytesRemoved) {}
