package io.zenith.replication.offload;

import io.zenith.replication.offload.RemoteWalException.Kind;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalSegmentName;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.remote.RemoteStorage;
import io.zenith.wal.remote.RemoteStorageException;
import java.nio.ByteBuffer;
import java.time.Duration;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Where offloaded WAL segments live in remote storage and how they are read back (ADR 0025): {@code
 * tenants/<tenant>/timelines/<timeline>/wal/<segment file name>-lz4}, each a {@link
 * WalSegmentObject}. The safekeepers' uploader writes them; a pageserver reads them when no
 * safekeeper still holds the WAL it needs ({@link #read}). Static and stateless; thread-safe.
 */
public final class RemoteWal {
  private RemoteWal() {}

  /** PostgreSQL's timeline id in segment file names: Zenith timelines are all 1 there. */
  private static final int PG_TIMELINE = 1;

  /** The prefix of a timeline's offloaded segments: {@code tenants/<t>/timelines/<tl>/wal/}. */
  public static String prefix(TenantId tenant, TimelineId timeline) {
    return "tenants/" + tenant + "/timelines/" + timeline + "/wal/";
  }

  /** The key of segment {@code segmentNumber}. */
  public static RemoteKey segmentKey(
      TenantId tenant, TimelineId timeline, long segmentNumber, int segmentSize) {
    String name = new WalSegmentName(PG_TIMELINE, segmentNumber).fileName(segmentSize);
    return RemoteKey.of(prefix(tenant, timeline) + name + WalSegmentObject.SUFFIX);
  }

  /**
   * The bytes of segment {@code segmentNumber}, verified (header, size, start LSN, CRC32C) and
   * decompressed; the call bounded by {@code timeout}.
   *
   * @return a {@link RemoteWalException}: NOT_FOUND if the segment is not there, CORRUPT if it is
   *     damaged, UNAVAILABLE if the storage failed or did not answer in time
   */
  public static Mono<byte[]> readSegment(
      RemoteStorage storage,
      TenantId tenant,
      TimelineId timeline,
      long segmentNumber,
      int segmentSize,
      Duration timeout) {
    RemoteKey key = segmentKey(tenant, timeline, segmentNumber, segmentSize);
    Lsn start = Lsn.of(segmentNumber * segmentSize);
    return storage
        .get(key)
        .timeout(timeout)
        .onErrorMap(
            e -> !(e instanceof RemoteWalException),
            e ->
                e instanceof RemoteStorageException r
                        && r.kind() == RemoteStorageException.Kind.NOT_FOUND
                    ? new RemoteWalException(
                        Kind.NOT_FOUND, key, "WAL segment " + key + " is not in remote storage")
                    : new RemoteWalException(
                        Kind.UNAVAILABLE,
                        key,
                        "cannot read WAL segment " + key + ": " + e.getMessage(),
                        e))
        .map(bytes -> WalSegmentObject.decode(key, bytes, start, segmentSize));
  }

  /**
   * The timeline's offloaded WAL from {@code from} on, as far as it goes: one buffer per segment
   * (the first from {@code from}), read one at a time as requested, completing before the first
   * segment that is not in remote storage (at once if {@code from}'s is not). For a pageserver
   * whose start the safekeepers no longer hold: it ingests this, then streams from the safekeepers
   * at the end (which they hold: their retention keeps everything above {@code backup_lsn}).
   * Damaged objects and storage failures fail the stream ({@link RemoteWalException}).
   */
  public static Flux<ByteBuffer> readOffloaded(
      RemoteStorage storage,
      TenantId tenant,
      TimelineId timeline,
      int segmentSize,
      Lsn from,
      Duration timeout) {
    long first = from.value() / segmentSize;
    return Flux.<Long, Long>generate(
            () -> first,
            (n, sink) -> {
              sink.next(n);
              return n + 1;
            })
        .concatMap(
            n ->
                readSegment(storage, tenant, timeline, n, segmentSize, timeout)
                    .map(
                        bytes -> {
                          int off = (int) Math.max(0, from.value() - n * segmentSize);
                          return ByteBuffer.wrap(bytes, off, segmentSize - off).slice();
                        })
                    .onErrorResume(
                        e ->
                            e instanceof RemoteWalException r
                                && r.kind() == RemoteWalException.Kind.NOT_FOUND,
                        e -> Mono.just(END)),
            0)
        .takeWhile(b -> b != END);
  }

  /** Marks the first missing segment in {@link #readOffloaded} (compared by identity). */
  private static final ByteBuffer END = ByteBuffer.allocate(0);

  /**
   * The timeline's offloaded WAL from {@code from} up to {@code upTo} (exclusive), as one buffer
   * per segment (a slice of the segment's bytes), read one segment at a time as the subscriber
   * requests (at most one decompressed segment in memory beyond what the subscriber holds). Fails
   * with the first segment's {@link RemoteWalException} (NOT_FOUND where the offloaded WAL ends).
   */
  public static Flux<ByteBuffer> read(
      RemoteStorage storage,
      TenantId tenant,
      TimelineId timeline,
      int segmentSize,
      Lsn from,
      Lsn upTo,
      Duration timeout) {
    if (!from.isBefore(upTo)) {
      return Flux.empty();
    }
    long first = from.value() / segmentSize;
    long last = (upTo.value() - 1) / segmentSize;
    return Flux.<Long, Long>generate(
            () -> first,
            (n, sink) -> {
              sink.next(n);
              if (n == last) {
                sink.complete();
              }
              return n + 1;
            })
        .concatMap(
            n ->
                readSegment(storage, tenant, timeline, n, segmentSize, timeout)
                    .map(
                        bytes -> {
                          long segStart = n * segmentSize;
                          int off = (int) Math.max(0, from.value() - segStart);
                          int end = (int) Math.min(segmentSize, upTo.value() - segStart);
                          return ByteBuffer.wrap(bytes, off, end - off).slice();
                        }),
            0);
  }
}
