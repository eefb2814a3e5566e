package io.zenith.replication.client;

import io.zenith.wal.Lsn;

/**
 * A physical replication slot as READ_REPLICATION_SLOT reports it.
 *
 * @param slotName the slot's name
 * @param restartLsn oldest WAL the slot holds, {@link Lsn#INVALID} if it reserves none
 * @param restartTimeline the timeline of {@code restartLsn}, 0 if none
 */
public record SlotInfo(String slotName, Lsn restartLsn, long restartTimeline) {}
