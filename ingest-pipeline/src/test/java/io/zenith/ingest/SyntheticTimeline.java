package io.zenith.ingest;

import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.CheckPointData;
import io.zenith.ingest.wal.records.TypedRecord;
import io.zenith.layer.LayerDisk;
import io.zenith.layer.LayerStore;
import io.zenith.layer.LayerStoreConfig;
import io.zenith.layer.Timeline;
import io.zenith.layer.Value;
import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalRecord;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.testing.SyntheticWal;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * A timeline in a real layer store, as an import leaves it (checkpoint data at its last record,
 * durable), and synthetic WAL after it: XLOG NOOP records whose fresh xids each change the
 * checkpoint data, so that every record writes a version (about 100 bytes) and layers fill at a
 * known pace. Not thread-safe.
 */
final class SyntheticTimeline implements AutoCloseable {
  static final TenantId TENANT = TenantId.parse("0123456789abcdef0123456789abcdef");
  static final TimelineId MAIN = TimelineId.parse("33333333333333333333333333333333");
  static final int XLOG_NOOP = 0x20;

  final LayerStore store;
  final Timeline timeline;
  final SyntheticWal wal = SyntheticWal.small();
  private final Lsn start;
  private final List<SyntheticWal.Written> records = new ArrayList<>();
  private int xid = 1000;

  SyntheticTimeline(Path dir, LayerStoreConfig config, LayerDisk disk) {
    store = LayerStore.open(dir, config, disk);
    store.createTenant(TENANT);
    SyntheticWal.Written first = appendNoop();
    timeline = store.createRootTimeline(TENANT, MAIN, wal.startLsn(), wal.systemId(), 15);
    timeline.put(KeySpace.CHECKPOINT, first.end(), new Value.Image(new byte[CheckPointData.SIZE]));
    timeline.finishRecord(first.end(), first.lsn());
    timeline.checkpoint();
    start = first.end();
  }

  /** A WAL ingest for the timeline (no page is ever read). */
  WalIngest ingest() {
    return new WalIngest(
        timeline,
        (t, k, l) -> {
          throw new AssertionError("no page is read");
        });
  }

  private SyntheticWal.Written appendNoop() {
    byte[] body = new byte[2 + 16];
    body[0] = (byte) 0xFF; // XLR_BLOCK_ID_DATA_SHORT
    body[1] = 16;
    return wal.append(WalFormat.RM_XLOG_ID, XLOG_NOOP, xid++, body);
  }

  /** Appends {@code n} records after the timeline's start; returns them. */
  List<SyntheticWal.Written> append(int n) {
    List<SyntheticWal.Written> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      out.add(appendNoop());
    }
    records.addAll(out);
    return out;
  }

  /** Where ingest starts (the timeline's last record end when it was made). */
  Lsn start() {
    return start;
  }

  /** The records appended, in order. */
  List<SyntheticWal.Written> records() {
    return List.copyOf(records);
  }

  /** The WAL from {@link #start()} to the last record's end, one chunk per record. */
  List<ByteBuffer> chunksPerRecord() {
    byte[] all = wal.bytes();
    List<ByteBuffer> out = new ArrayList<>();
    long from = start.value();
    for (SyntheticWal.Written w : records) {
      long to = w.end().value();
      int off = (int) (from - wal.startLsn().value());
      out.add(ByteBuffer.wrap(all, off, (int) (to - from)).slice());
      from = to;
    }
    return out;
  }

  /** The appended records, assembled and decoded as the decode stage does. */
  List<TypedRecord> typedRecords() {
    WalRecordAssembler a =
        new WalRecordAssembler(
            start, new WalRecordAssembler.Options(wal.segmentSize(), wal.systemId(), true));
    List<TypedRecord> out = new ArrayList<>();
    for (ByteBuffer chunk : chunksPerRecord()) {
      for (Iterator<WalRecord> it = a.feed(chunk.duplicate()); it.hasNext(); ) {
        out.add(TypedRecord.decode(it.next()));
      }
    }
    return out;
  }

  @Override
  public void close() {
    store.close();
  }
}
