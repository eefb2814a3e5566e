package io.zenith.gateway.control;

import io.zenith.gateway.http.JsonHttpClient;
import io.zenith.gateway.pageserver.ApiModel;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import java.time.Instant;

/**
 * A branch's LSN at a wall-clock time, asked of the pageserver ({@code lsn_by_timestamp}), for
 * {@code zenith branch NEW BRANCH@TIME}, {@code zenith pg create --at TIME} and {@code zenith
 * export BRANCH@TIME}. Blocking; stateless, so thread-safe.
 */
public final class PointInTime {
  private PointInTime() {}

  /**
   * The LSN that shows {@code branch} as it was at {@code time}: after its last commit at or before
   * then. {@code what} names the operation in errors ("cannot &lt;what&gt; &lt;branch&gt; at
   * &lt;time&gt;: …").
   *
   * @throws ControlPlaneException one line saying why there is none: the time is before the
   *     branch's first commit, after its last one, below its GC cutoff, or the branch has no commit
   */
  public static Lsn resolve(Repository repo, String branch, Instant time, String what) {
    return resolve(repo, repo.config().tenant(), branch, time, what);
  }

  /** {@link #resolve(Repository, String, Instant, String)} for a branch of {@code tenant}. */
  public static Lsn resolve(
      Repository repo, TenantId tenant, String branch, Instant time, String what) {
    TimelineId timeline = repo.branches(tenant).get(branch);
    String cannot = "cannot " + what + " " + branch + " at " + time + ": ";
    ApiModel.LsnByTimestamp r;
    try {
      r = repo.pageserver().lsnByTimestamp(tenant, timeline, time);
    } catch (JsonHttpClient.ApiError e) {
      throw new ControlPlaneException(cannot + e.getMessage());
    }
    return switch (r.kind()) {
      case "present" -> Lsn.parse(r.lsn());
      case "past" ->
          throw new ControlPlaneException(
              cannot + "that is before its first commit (" + r.commitTime() + ")");
      case "future" ->
          throw new ControlPlaneException(
              cannot
                  + "that is after its last commit ("
                  + r.commitTime()
                  + ", at "
                  + r.lsn()
                  + ")");
      case "below_gc_cutoff" ->
          throw new ControlPlaneException(
              cannot + "that is below its GC cutoff " + r.lsn() + " (that history is gone)");
      case "nodata" ->
          throw new ControlPlaneException(cannot + branch + " has no commit to tell the time by");
      default ->
          throw new ControlPlaneException(
              cannot + "the pageserver answered an unknown kind '" + r.kind() + "'");
    };
  }
}
