package io.zenith.replication.safekeeper;

import io.zenith.wal.Lsn;
import io.zenith.wal.log.ControlFile.TermEntry;
import java.util.ArrayList;
import java.util.List;

/**
 * Term histories: which term wrote which WAL. Entry i says term {@code t_i} wrote the WAL from
 * {@code s_i} up to {@code s_(i+1)}, the last entry up to the end of the log. Two logs hold the
 * same bytes up to their highest common point: both were written by the same terms' computes (one
 * compute per term) up to there.
 */
public final class TermHistory {
  private TermHistory() {}

  /**
   * The highest LSN up to which two logs are the same: the end of the last term both histories
   * share (entry for entry from the start), which is where the shorter of the two ends in that
   * term. With nothing shared, the timeline's start (where both logs begin).
   *
   * @param mine this log's history and end (the end of its last complete record)
   * @param theirs the other log's history and end
   */
  public static Lsn commonPoint(
      List<TermEntry> mine, Lsn myEnd, List<TermEntry> theirs, Lsn theirEnd, Lsn timelineStart) {
    int shared = 0;
    while (shared < mine.size()
        && shared < theirs.size()
        && mine.get(shared).equals(theirs.get(shared))) {
      shared++;
    }
    if (shared == 0) {
      return timelineStart;
    }
    int i = shared - 1;
    Lsn endMine = i + 1 < mine.size() ? mine.get(i + 1).start() : myEnd;
    Lsn endTheirs = i + 1 < theirs.size() ? theirs.get(i + 1).start() : theirEnd;
    return Lsn.min(endMine, endTheirs);
  }

  /** {@code history} plus an entry for {@code term} starting at {@code start}. */
  public static List<TermEntry> append(List<TermEntry> history, long term, Lsn start) {
    if (!history.isEmpty() && history.getLast().term() >= term) {
      throw new IllegalArgumentException(
          "term " + term + " does not follow the history's last term " + history.getLast().term());
    }
    List<TermEntry> h = new ArrayList<>(history);
    h.add(new TermEntry(term, start));
    return List.copyOf(h);
  }

  /** "1@0/16B3D48, 3@0/3000028": how the CLI and logs print a history. */
  public static String format(List<TermEntry> history) {
    if (history.isEmpty()) {
      return "(none)";
    }
    StringBuilder b = new StringBuilder();
    for (TermEntry e : history) {
      if (!b.isEmpty()) {
        b.append(", ");
      }
      b.append(e.term()).append('@').append(e.start());
    }
    return b.toString();
  }
}
