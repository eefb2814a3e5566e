package io.zenith.page;

import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.CheckPointData;
import io.zenith.ingest.pg.PgControl;
import io.zenith.layer.Timeline;
import io.zenith.layer.TimelineView;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalSegmentName;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * A complete PostgreSQL 15 data directory as of an LSN, as a tar stream (DESIGN §7): standard
 * directories, {@code PG_VERSION}, a {@code pg_control} describing a clean shutdown at the LSN,
 * relation maps, SLRU segments, two-phase state files, every relation file at the LSN (unlogged
 * relations already reset to their init fork), and one WAL segment holding a synthesized shutdown
 * checkpoint record at the LSN, so that stock PostgreSQL starts without redo and writes its next
 * record right after it. Configuration files are the control plane's to add.
 *
 * <p>The stream is produced in parts (a file, or 32 pages of a relation), in order, at most a
 * bounded window of parts ahead of demand ({@link Reading}), so memory stays bounded whatever the
 * database size. Blocking: subscribe on a scheduler that may block (page reconstruction reads the
 * index and runs WAL redo). Stateless and thread-safe; each stream has one subscriber.
 */
public final class Basebackup {
  private Basebackup() {}

  /** Completes a page before it goes to the compute (e.g. sets its checksum). */
  @FunctionalInterface
  public interface PageFinisher {
    void finish(byte[] page, int block);
  }

  static final List<String> DIRECTORIES =
      List.of(
          "global",
          "base",
          "pg_commit_ts",
          "pg_dynshmem",
          "pg_logical",
          "pg_logical/mappings",
          "pg_logical/snapshots",
          "pg_multixact",
          "pg_multixact/members",
          "pg_multixact/offsets",
          "pg_notify",
          "pg_replslot",
          "pg_serial",
          "pg_snapshots",
          "pg_stat",
          "pg_stat_tmp",
          "pg_subtrans",
          "pg_tblspc",
          "pg_twophase",
          "pg_wal",
          "pg_wal/archive_status",
          "pg_xact");

  /** Pages of a relation read as one part of the tar. */
  static final int PAGES_PER_STEP = 32;

  /** Where the synthesized checkpoint goes and what it says. */
  public record Checkpoint(
      Lsn recordLsn,
      Lsn prev,
      CheckPointData data,
      byte[] controlFile,
      int segmentSize,
      long systemId) {}

  /**
   * Plans the checkpoint for a basebackup at {@code lsn}: the record goes at {@code lsn}, or just
   * after the page header when {@code lsn} is a page boundary.
   */
  public static Checkpoint checkpointAt(TimelineView t, Lsn lsn) {
    byte[] controlImage =
        Catalog.image(t, KeySpace.CONTROL_FILE, lsn)
            .orElseThrow(
                () -> new IllegalStateException("timeline " + t + " has no pg_control at " + lsn));
    PgControl control = PgControl.parse(controlImage);
    CheckPointData cp =
        Catalog.image(t, KeySpace.CHECKPOINT, lsn)
            .map(CheckPointData::decode)
            .orElseThrow(
                () -> new IllegalStateException("timeline " + t + " has no checkpoint at " + lsn));
    int segmentSize = control.walSegmentSize();
    Lsn at = lsn;
    if (at.pageOffset() == 0) {
      at =
          at.plus(
              at.segmentOffset(segmentSize) == 0
                  ? WalFormat.LONG_PAGE_HEADER_SIZE
                  : WalFormat.SHORT_PAGE_HEADER_SIZE);
    }
    Timeline.RecordPosition pos = t.position();
    Lsn prev =
        lsn.equals(pos.last()) && pos.prev().isValid() && pos.prev().isBefore(at)
            ? pos.prev()
            : Lsn.INVALID;
    cp.redo = at.value();
    cp.thisTimeLineId = 1;
    cp.prevTimeLineId = 1;
    cp.oldestActiveXid = 0;
    cp.time = System.currentTimeMillis() / 1000;
    control.setCheckPoint(at.value());
    control.setCheckPointCopy(cp);
    control.setState(PgControl.DB_SHUTDOWNED);
    control.setTime(cp.time);
    control.clearRecoveryAndBackup();
    return new Checkpoint(at, prev, cp, control.toBytes(), segmentSize, control.systemId());
  }

  /**
   * How a basebackup reads its pages: up to {@code window} parts of the tar (a file, or {@value
   * #PAGES_PER_STEP} pages of a relation) are read ahead of the tar's consumer, the page batches
   * among them on {@code readers}, which may block and whose threads bound how many are
   * reconstructed at once. The parts still go out in order. Memory: about {@code window} × 256 KiB
   * (a part is at most {@value #PAGES_PER_STEP} pages) besides the one WAL segment.
   */
  public record Reading(Scheduler readers, int window) {
    public Reading {
      if (window < 1) {
        throw new IllegalArgumentException("window must be at least 1, got " + window);
      }
    }

    /**
     * One part at a time on the subscribing thread, read only when asked for: no read-ahead, no
     * other threads.
     */
    public static Reading sequential() {
      return new Reading(Schedulers.immediate(), 1);
    }
  }

  /**
   * The tar stream of the data directory of {@code t} at {@code lsn}, each page read only when the
   * stream is asked for it ({@link Reading#sequential()}).
   */
  public static Flux<ByteBuffer> stream(
      TimelineView t, Lsn lsn, PageReconstructor pages, PageFinisher finisher) {
    return stream(t, lsn, pages, finisher, Reading.sequential());
  }

  /**
   * The tar stream of the data directory of {@code t} at {@code lsn}, its pages read ahead as
   * {@code reading} says. Subscribe on a scheduler that may block: the plan (which files, how many
   * pages) reads the index on the subscribing thread, and so do the small files. Pages are read
   * through {@link PageReconstructor#pageForScan} (the page cache is read, not filled: a basebackup
   * would evict what GetPage needs). Chunks are at most 256 KiB except a WAL segment's (16 MiB). An
   * error reading any part fails the stream; cancelling it cancels the reads under way.
   */
  public static Flux<ByteBuffer> stream(
      TimelineView t, Lsn lsn, PageReconstructor pages, PageFinisher finisher, Reading reading) {
    return BasebackupWriter.stream(t, lsn, pages, finisher, reading, true);
  }

  /**
   * The slim basebackup of {@code t} at {@code lsn}: everything {@link #stream(TimelineView, Lsn,
   * PageReconstructor, PageFinisher, Reading)} puts in the tar except relation files (directories,
   * {@code PG_VERSION} files, {@code pg_control}, relation maps, SLRU segments, two-phase files,
   * the WAL segment with the checkpoint). For a compute whose relation files are read through
   * pagestream (issue 13): whoever serves them resets unlogged relations to their init fork, as the
   * full tar does. Same threads, bounds and errors as the full stream.
   */
  public static Flux<ByteBuffer> streamSlim(
      TimelineView t, Lsn lsn, PageReconstructor pages, Reading reading) {
    return BasebackupWriter.stream(t, lsn, pages, (page, blk) -> {}, reading, false);
  }

  /** The relative path of a relation fork's segment file. */
  static String relationPath(RelTag rel, ForkNumber fork, int segno) {
    String dir;
    if (rel.spcOid() == RelTag.GLOBAL_TABLESPACE) {
      dir = "global";
    } else if (rel.spcOid() == RelTag.DEFAULT_TABLESPACE) {
      dir = "base/" + Integer.toUnsignedString(rel.dbOid());
    } else {
      throw new IllegalStateException(
          "relation " + rel + " is in a tablespace; Zenith does not support tablespaces");
    }
    String name =
        Integer.toUnsignedString(rel.relNumber())
            + (fork == ForkNumber.MAIN ? "" : "_" + fork.pgName());
    return dir + "/" + name + (segno == 0 ? "" : "." + segno);
  }

  /** A WAL segment file of the basebackup. */
  public record WalFile(String name, byte[] bytes) {}

  /**
   * The WAL segment holding the synthesized checkpoint record (two if the record crosses into the
   * next segment): valid page headers, the record, zeros elsewhere.
   */
  public static List<WalFile> checkpointSegments(Checkpoint c) {
    int segSize = c.segmentSize();
    byte[] rec = checkpointRecord(c);
    List<WalFile> out = new ArrayList<>();
    long pos = c.recordLsn().value();
    int off = 0;
    byte[] seg = null;
    while (off < rec.length) {
      long segStart = pos - (pos & (segSize - 1));
      if (seg == null) {
        seg = new byte[segSize];
        out.add(
            new WalFile(WalSegmentName.of(1, Lsn.of(segStart), segSize).fileName(segSize), seg));
        pageHeader(
            ByteBuffer.wrap(seg).order(ByteOrder.LITTLE_ENDIAN),
            0,
            Lsn.of(segStart),
            true,
            off == 0 ? 0 : rec.length - off,
            c);
      }
      ByteBuffer b = ByteBuffer.wrap(seg).order(ByteOrder.LITTLE_ENDIAN);
      int inSeg = (int) (pos - segStart);
      if (inSeg % WalFormat.XLOG_BLCKSZ == 0) {
        int header =
            inSeg == 0 ? WalFormat.LONG_PAGE_HEADER_SIZE : WalFormat.SHORT_PAGE_HEADER_SIZE;
        if (inSeg != 0) {
          pageHeader(b, inSeg, Lsn.of(pos), false, off == 0 ? 0 : rec.length - off, c);
        }
        pos += header;
        inSeg += header;
      } else if (off == 0 && inSeg >= WalFormat.XLOG_BLCKSZ) {
        int page = inSeg - inSeg % WalFormat.XLOG_BLCKSZ;
        pageHeader(b, page, Lsn.of(segStart + page), false, 0, c);
      }
      int n = Math.min(rec.length - off, WalFormat.XLOG_BLCKSZ - inSeg % WalFormat.XLOG_BLCKSZ);
      System.arraycopy(rec, off, seg, inSeg, n);
      off += n;
      pos += n;
      if ((pos & (segSize - 1)) == 0) {
        seg = null;
      }
    }
    return out;
  }

  private static void pageHeader(
      ByteBuffer b, int at, Lsn addr, boolean isLong, int remaining, Checkpoint c) {
    int info =
        (isLong ? WalFormat.XLP_LONG_HEADER : 0)
            | (remaining > 0 ? WalFormat.XLP_FIRST_IS_CONTRECORD : 0);
    b.putShort(at, (short) WalFormat.XLOG_PAGE_MAGIC);
    b.putShort(at + 2, (short) info);
    b.putInt(at + 4, 1);
    b.putLong(at + 8, addr.value());
    b.putInt(at + 16, remaining);
    if (isLong) {
      b.putLong(at + 24, c.systemId());
      b.putInt(at + 32, c.segmentSize());
      b.putInt(at + 36, WalFormat.XLOG_BLCKSZ);
    }
  }

  /** XLOG_CHECKPOINT_SHUTDOWN: header, a short main-data header, the CheckPoint struct. */
  static byte[] checkpointRecord(Checkpoint c) {
    int total = WalFormat.RECORD_HEADER_SIZE + 2 + CheckPointData.SIZE;
    ByteBuffer b = ByteBuffer.allocate(total).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(total)
        .putInt(0)
        .putLong(c.prev().value())
        .put((byte) 0x00)
        .put((byte) 0)
        .putShort((short) 0)
        .putInt(0);
    b.put((byte) 255).put((byte) CheckPointData.SIZE).put(c.data().encode());
    byte[] rec = b.array();
    CRC32C crc = new CRC32C();
    crc.update(rec, WalFormat.RECORD_HEADER_SIZE, total - WalFormat.RECORD_HEADER_SIZE);
    crc.update(rec, 0, WalFormat.RECORD_CRC_OFFSET);
    ByteBuffer.wrap(rec)
        .order(ByteOrder.LITTLE_ENDIAN)
        .putInt(WalFormat.RECORD_CRC_OFFSET, (int) crc.getValue());
    return rec;
  }
}
