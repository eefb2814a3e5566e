package io.zenith.replication.safekeeper;

import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.util.List;

/**
 * A safekeeper's answer to a proposed term.
 *
 * @param granted whether it promised the term (it was above every term it promised before)
 * @param term the term it has promised now (the proposed one if granted, a higher one if not)
 * @param history the term history of its WAL, up to {@code flushLsn}
 * @param flushLsn end of its last durable complete record
 * @param commitLsn the highest LSN it knows to be on a quorum
 */
public record VoteResponse(
    int safekeeperId,
    boolean granted,
    long term,
    List<TermEntry> history,
    Lsn flushLsn,
    Lsn commitLsn) {

  public VoteResponse {
    history = List.copyOf(history);
  }

  public long lastLogTerm() {
    return history.isEmpty() ? 0 : history.getLast().term();
  }
}
