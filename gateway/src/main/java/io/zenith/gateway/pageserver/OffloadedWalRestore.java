package io.zenith.gateway.pageserver;

import io.micrometer.core.instrument.MeterRegistry;
import io.zenith.gateway.http.ApiException;
import io.zenith.ingest.IngestPipeline;
import io.zenith.ingest.IngestStart;
import io.zenith.ingest.WalIngest;
import io.zenith.layer.Timeline;
import io.zenith.page.PageReconstructor;
import io.zenith.replication.offload.RemoteWal;
import io.zenith.replication.offload.RemoteWalException;
import io.zenith.wal.LogContext;
import io.zenith.wal.Lsn;
import io.zenith.wal.remote.RemoteStorage;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Restore from remote storage alone (ADR 0029): after an attach, a timeline's layers end at its
 * index's {@code disk_consistent_lsn}, and the safekeepers that offloaded its WAL further are gone.
 * This ingests the offloaded WAL ({@link RemoteWal#readOffloaded}) from the timeline's last record
 * through the timeline's ordinary ingest pipeline until the first segment remote storage does not
 * have, and makes it durable. The pipeline's record assembler ingests complete records only, so the
 * timeline then ends at the end of the last record that lies wholly in offloaded segments; a record
 * that crosses into a segment that was never uploaded is not ingested. Wiring of two libraries
 * (replication's reader, ingest-pipeline's pipeline), which meet only in the pageserver.
 *
 * <p>Thread-safe; one restore per timeline at a time, refused while the timeline has a WAL receiver
 * (two pipelines must never write one timeline).
 */
final class OffloadedWalRestore {
  private static final Logger log = LoggerFactory.getLogger(OffloadedWalRestore.class);

  /** Bounds one segment's read from remote storage. */
  static final Duration SEGMENT_TIMEOUT = Duration.ofMinutes(2);

  /** Bounds the whole ingest: a restore of much WAL is a long request; the client waits as long. */
  static final Duration INGEST_TIMEOUT = Duration.ofMinutes(30);

  private final Set<String> running = ConcurrentHashMap.newKeySet();

  /** What {@link #ingest} did: where the timeline started and where it ends now. */
  record Result(Lsn from, Lsn to, long records) {}

  /**
   * Ingests the offloaded WAL of {@code timeline} after its last record; blocks until it is
   * durable.
   *
   * @throws ApiException 409 without remote storage or while another restore of it runs, 500 with
   *     the reason when a segment is damaged or unreadable (nothing after the last good record is
   *     ingested; the call can be repeated)
   */
  @SuppressWarnings("try")
  Result ingest(
      Timeline timeline,
      PageReconstructor pages,
      MeterRegistry meters,
      IngestPipeline.@Nullable Compactor compactor,
      @Nullable RemoteStorage remote) {
    if (remote == null) {
      throw new ApiException(
          409, "the pageserver has no remote storage: there is no offloaded WAL to restore");
    }
    String key = timeline.tenant() + "/" + timeline.id();
    if (!running.add(key)) {
      throw new ApiException(409, "the offloaded WAL of " + timeline + " is being restored");
    }
    try (LogContext.Scope c = LogContext.scope(timeline.tenant(), timeline.id())) {
      IngestStart start = IngestStart.read(timeline, pages::page);
      Lsn from = start.lsn();
      int segmentSize = start.segmentSize();
      log.info("restoring the offloaded WAL of {} from {}", timeline, from);
      WalIngest ingest = start.ingest();
      try (IngestPipeline pipeline =
          new IngestPipeline(timeline, ingest, IngestPipeline.Options.DEFAULT, meters, compactor)) {
        pipeline
            .run(
                RemoteWal.readOffloaded(
                    remote, timeline.tenant(), timeline.id(), segmentSize, from, SEGMENT_TIMEOUT),
                segmentSize,
                timeline.metadata().systemId(),
                (written, flushed) -> {})
            .then(pipeline.checkpoint())
            .block(INGEST_TIMEOUT);
      } catch (RuntimeException e) {
        RemoteWalException r = find(e);
        if (r != null) {
          throw new ApiException(
              500, "cannot restore the offloaded WAL of " + timeline + ": " + r.getMessage());
        }
        throw e;
      }
      Lsn to = timeline.lastRecordLsn();
      log.info(
          "restored the offloaded WAL of {}: {} records, {} → {}",
          timeline,
          ingest.recordsIngested(),
          from,
          to);
      return new Result(from, to, ingest.recordsIngested());
    } finally {
      running.remove(key);
    }
  }

  private static @Nullable RemoteWalException find(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof RemoteWalException r) {
        return r;
      }
    }
    return null;
  }
}
