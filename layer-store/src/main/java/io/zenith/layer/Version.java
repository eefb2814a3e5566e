package io.zenith.layer;

import io.zenith.wal.Lsn;

/** One version of a key: the LSN it became current at, and its value. Immutable. */
public record Version(Lsn lsn, Value value) {}
