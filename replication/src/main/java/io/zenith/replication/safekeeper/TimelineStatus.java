package io.zenith.replication.safekeeper;

import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.ComputeSource;
import io.zenith.wal.log.ControlFile.Identity;
import io.zenith.wal.log.ControlFile.LagLimits;
import io.zenith.wal.log.ControlFile.PageserverFeedback;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * What a safekeeper says about one of its timelines: its API shows it, its peers read it (to
 * compute the commit LSN, choose a donor, learn the compute of the current term).
 *
 * @param safekeeperId who says it
 * @param promisedTerm the highest term it voted for
 * @param history the term history of the WAL it holds (entries starting at or below {@code
 *     flushLsn}: an entry beyond it is a claim about WAL not yet received)
 * @param flushLsn end of its last durable complete record
 * @param writeLsn end of the WAL it received (durable or not, whole records or not)
 * @param commitLsn the highest LSN it knows to be on a quorum
 * @param ackLsn what it acknowledges to the compute (the flush LSN, held back by the lag limits)
 * @param pageserver the newest positions a pageserver reported (to it or a peer)
 * @param compute the compute of the current term it pulls WAL from, if known
 * @param stoppedComputeTerm the highest term whose compute it was told has stopped (0 if none): it
 *     takes up no compute of that term or an older one, and drops such a compute a peer still has
 * @param intake how pulling from the compute goes: {@code idle}, {@code connecting}, {@code
 *     streaming}, {@code failed}, {@code behind} (the compute no longer has the WAL it needs)
 * @param intakeError the last error of the intake, if any
 * @param oldestLsn the oldest LSN it still holds (retention removed the segments below it, or the
 *     timeline starts there): reads below it are refused
 * @param removedBytes bytes of WAL segment files retention removed from this timeline
 * @param backupLsn the end of the WAL known to be in remote storage (whole segments uploaded by the
 *     timeline's uploader, this safekeeper or a peer: ADR 0025); 0/0 before the first upload
 */
public record TimelineStatus(
    int safekeeperId,
    Identity identity,
    long promisedTerm,
    List<TermEntry> history,
    Lsn flushLsn,
    Lsn writeLsn,
    Lsn commitLsn,
    Lsn ackLsn,
    PageserverFeedback pageserver,
    LagLimits lagLimits,
    @Nullable ComputeSource compute,
    long stoppedComputeTerm,
    String intake,
    @Nullable String intakeError,
    Lsn oldestLsn,
    long removedBytes,
    Lsn backupLsn) {

  public TimelineStatus {
    history = List.copyOf(history);
  }

  /** Term of the WAL it holds (0 before the first election). */
  public long lastLogTerm() {
    return history.isEmpty() ? 0 : history.getLast().term();
  }

  /** Its last history entry, or null before the first election. */
  public @Nullable TermEntry lastEntry() {
    return history.isEmpty() ? null : history.getLast();
  }
}
