package io.zenith.gateway.pageserver;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.zenith.gateway.http.Json;
import io.zenith.ingest.keys.CommitTimestamps;
import java.util.List;

/**
 * The JSON bodies of the pageserver's HTTP API ({@code docs/api/pageserver.yaml}): snake_case
 * names, LSNs as PostgreSQL prints them. Requests are read strictly by {@link Json#parseRequest}.
 */
public final class ApiModel {
  private ApiModel() {}

  /** The API's mapper for answers and files ({@link Json#MAPPER}). */
  public static final ObjectMapper JSON = Json.MAPPER;

  /**
   * The pageserver's identity, and its remote deletion queue (ADR 0024; null without remote
   * storage).
   */
  public record Status(
      String id, String version, int pgVersion, RemoteDeletionInfo remoteDeletion) {}

  /**
   * The store's remote deletion queue (ADR 0024).
   *
   * @param pendingLists durable deletion lists not executed yet
   * @param deletions objects deleted since the start
   * @param failures executions that failed and were retried
   * @param setAside lists not executed because they failed their checks
   * @param failure why executions fail now, null while they work
   */
  public record RemoteDeletionInfo(
      long pendingLists, long deletions, long failures, long setAside, String failure) {}

  /** A tenant: its id, number of timelines and attach generation (ADR 0026). */
  public record TenantInfo(String id, int timelines, int generation) {}

  /**
   * A new tenant: its id (generated if absent), if given the id of its root timeline, and the
   * generation the control plane issued (1 if absent).
   */
  public record TenantCreateRequest(String newTenantId, String rootTimelineId, Integer generation) {
    public TenantCreateRequest(String newTenantId, String rootTimelineId) {
      this(newTenantId, rootTimelineId, null);
    }
  }

  /** An attach of a tenant in the generation the control plane issued (ADR 0026). */
  public record TenantAttachRequest(Integer generation) {}

  /** The answer to a tenant's deletion. */
  public record TenantDeleted(String tenantId) {}

  /**
   * A tenant on this pageserver.
   *
   * @param state {@code attaching} while an attach runs, then {@code attached}
   * @param generation its attach generation (ADR 0026); null while attaching
   * @param attach what the attach that brought it here did; null if it was created here, or
   *     attached before the last restart
   */
  public record TenantDetail(
      String id, String state, int timelines, Integer generation, AttachInfo attach) {}

  /** What an attach did: its generation, its time, and each timeline it attached. */
  public record AttachInfo(int generation, long millis, List<AttachedTimeline> timelines) {}

  /**
   * One attached timeline.
   *
   * @param indexGeneration the generation of the index object it was attached from
   * @param layerBytes its layer files' bytes, in remote storage until read
   */
  public record AttachedTimeline(
      String timelineId,
      String ancestorTimelineId,
      String diskConsistentLsn,
      int indexGeneration,
      int layers,
      long layerBytes) {}

  /** The answer to a detach: the timelines removed locally and the time it took. */
  public record TenantDetached(String tenantId, List<String> timelines, long millis) {}

  /** The answer to a timeline's deletion. */
  public record TimelineDeleted(String tenantId, String timelineId) {}

  public record TimelineCreateRequest(
      String newTimelineId, String ancestorTimelineId, String ancestorStartLsn) {}

  /**
   * Where a snapshot to share is (ADR 0028): an absolute directory ({@code local_path}) or an S3
   * bucket with an optional prefix, endpoint and region; credentials are the pageserver's own (the
   * AWS SDK's default chain).
   */
  public record SnapshotLocation(
      String localPath, String bucket, String prefix, String endpoint, String region) {}

  /** Push a snapshot of a timeline at {@code lsn} (default: its last record) to {@code to}. */
  public record SnapshotPushRequest(String lsn, String branch, SnapshotLocation destination) {}

  /**
   * A snapshot written: its LSN, image layer files, their bytes and keys, and the PostgreSQL system
   * id (a decimal string: it exceeds 2^53).
   */
  public record SnapshotPushed(
      String tenantId,
      String timelineId,
      String lsn,
      int files,
      long bytes,
      long keys,
      String systemId) {}

  /** Import the snapshot at {@code source} as the new root timeline {@code newTimelineId}. */
  public record SnapshotPullRequest(String newTimelineId, SnapshotLocation source) {}

  /**
   * Where a timeline's WAL comes from: a compute's walsender ({@code host}, {@code port}, optional
   * {@code user}, {@code slot}, {@code applicationName}) or its safekeepers' libpq WAL services
   * ({@code safekeepers}, non-empty), never both ({@code HttpApi.checkSource}).
   */
  public record WalSource(
      String host,
      Integer port,
      String user,
      String slot,
      String applicationName,
      @JsonInclude(JsonInclude.Include.NON_NULL) List<SafekeeperEndpoint> safekeepers) {

    /** A source of safekeepers only (the control plane's shape). */
    public static WalSource fromSafekeepers(List<SafekeeperEndpoint> safekeepers) {
      return new WalSource(null, null, null, null, null, List.copyOf(safekeepers));
    }

    /** A compute's walsender. */
    public static WalSource fromCompute(
        String host, int port, String user, String slot, String applicationName) {
      return new WalSource(host, port, user, slot, applicationName, null);
    }

    /** Whether the WAL comes from safekeepers. */
    public boolean usesSafekeepers() {
      return safekeepers != null;
    }
  }

  /** A safekeeper's libpq WAL service. */
  public record SafekeeperEndpoint(Integer id, String host, Integer port) {}

  /**
   * @param host the compute's host, or the safekeeper's streamed from (tried last)
   * @param safekeeperId that safekeeper's id; null for a compute
   */
  public record WalReceiverInfo(
      String host, int port, Integer safekeeperId, String state, String lastError) {}

  /**
   * Where a timeline shows its state at a time ({@code GET …/lsn_by_timestamp}): {@code kind} is
   * {@code present} ({@code lsn} shows exactly the commits up to the time; {@code commit_time} is
   * the last of them), {@code past} (before the first commit, at {@code commit_time}; {@code lsn}
   * is the earliest readable), {@code future} (after the last commit, at {@code lsn} and {@code
   * commit_time}), {@code below_gc_cutoff} ({@code lsn} is the cutoff) or {@code nodata} (no commit
   * at all; {@code lsn} is the start).
   */
  public record LsnByTimestamp(
      String kind, String lsn, @JsonInclude(JsonInclude.Include.NON_NULL) String commitTime) {

    public static LsnByTimestamp of(CommitTimestamps.Result r) {
      return switch (r) {
        case CommitTimestamps.Found f ->
            new LsnByTimestamp("present", f.lsn().toString(), time(f.commit()));
        case CommitTimestamps.BeforeStart b ->
            new LsnByTimestamp("past", b.start().toString(), time(b.firstCommit()));
        case CommitTimestamps.AfterEnd a ->
            new LsnByTimestamp("future", a.lastCommit().lsn().toString(), time(a.lastCommit()));
        case CommitTimestamps.BelowGcCutoff c ->
            new LsnByTimestamp("below_gc_cutoff", c.cutoff().toString(), null);
        case CommitTimestamps.NoCommits n ->
            new LsnByTimestamp("nodata", n.start().toString(), null);
      };
    }

    private static String time(CommitTimestamps.Commit c) {
      return c.time().toString();
    }
  }

  public record TimelineInfo(
      String tenantId,
      String timelineId,
      String ancestorTimelineId,
      String ancestorLsn,
      String initdbLsn,
      String lastRecordLsn,
      String prevRecordLsn,
      String diskConsistentLsn,
      String remoteConsistentLsn,
      @JsonInclude(JsonInclude.Include.NON_NULL) Long logicalSize,
      String state,
      String brokenReason,
      String flushError,
      WalReceiverInfo walReceiver,
      String gcCutoff,
      String pitrStart,
      LayerCounts layers,
      RemoteUploadInfo remoteUpload) {}

  /**
   * A timeline's upload queue (ADR 0023); null without remote storage.
   *
   * @param queueLength committed layer files not uploaded yet
   * @param failure why uploads fail now (they are retried), null while they work
   * @param remoteLayers layer files the last uploaded index names
   * @param remoteBytes their bytes
   */
  public record RemoteUploadInfo(
      int queueLength,
      long uploads,
      long uploadedBytes,
      long retries,
      String failure,
      int remoteLayers,
      long remoteBytes) {}

  /**
   * A timeline's own layer files.
   *
   * @param bytes their size on disk
   */
  public record LayerCounts(int l0, int l1, int image, long bytes) {}

  /** A timeline's own layer files ({@code GET …/layer}), oldest first. */
  public record LayerList(String tenantId, String timelineId, List<LayerFileEntry> layers) {}

  /**
   * One registered layer file.
   *
   * @param kind {@code delta} or {@code image}
   * @param level 0 (a flushed delta layer) or 1 (compacted delta, or image)
   */
  public record LayerFileEntry(
      String fileName, String kind, int level, String lsnStart, String lsnEnd, long size) {}

  /** What a compaction pass did ({@code POST …/compact}). */
  public record CompactionInfo(
      int l0Merged,
      int l1Written,
      int imageLayers,
      long imagePages,
      int layersRemoved,
      long bytesRemoved,
      TimelineInfo timeline) {}

  /** What a GC pass did ({@code POST …/do_gc}). */
  public record GcInfo(
      String cutoff,
      long versionsRemoved,
      int layersRemoved,
      long bytesRemoved,
      TimelineInfo timeline) {}
}
