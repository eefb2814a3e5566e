package io.zenith.replication.client;

import io.zenith.replication.pgwire.PgNotice;
import io.zenith.wal.Lsn;

/** What CREATE_REPLICATION_SLOT did: created the slot, or found one of that name. */
public sealed interface SlotCreation permits SlotCreation.Created, SlotCreation.AlreadyExists {
  String slotName();

  /**
   * The slot was created.
   *
   * @param consistentPoint the server's {@code consistent_point} (0/0 for physical slots; use
   *     {@link ReplicationClient#readSlot} for the reserved {@code restart_lsn})
   */
  record Created(String slotName, Lsn consistentPoint) implements SlotCreation {}

  /**
   * A slot of that name exists already (SQLSTATE 42710); it may be reused.
   *
   * @param notice the server's error, for logging
   */
  record AlreadyExists(String slotName, PgNotice notice) implements SlotCreation {}
}
