package io.zenith.page;

import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.CheckPointData;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.ingest.pg.PgControl;
import io.zenith.ingest.pg.SlruLayout;
import io.zenith.layer.Timeline;
import io.zenith.layer.TimelineView;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalFormat;
import io.zenith.wal.WalSegmentName;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.zip.CRC32C;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import reactor.core.publisher.Flux;

/**
 * A complete PostgreSQL 15 data directory as of an LSN, as a tar stream (DESIGN §7): standard
 * directories, {@code PG_VERSION}, a {@code pg_control} describing a clean shutdown at the LSN,
 * relation maps, SLRU segments, two-phase state files, every relation file at the LSN (unlogged
 * relations already reset to their init fork), and one WAL segment holding a synthesized shutdown
 * checkpoint record at the LSN, so that stock PostgreSQL starts without redo and writes its next
 * record right after it. Configuration files are the control plane's to add.
 *
 * <p>The stream is produced on demand, one step (a file, or 32 pages of a relation) per request, so
 * memory stays bounded whatever the database size. Blocking: subscribe on a scheduler that may
 * block (page reconstruction reads the index and runs WAL redo).
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

  private static final int PAGES_PER_STEP = 32;
  private static final int CHUNK = 256 * 1024;

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

  /** The tar stream of the data directory of {@code t} at {@code lsn}. */
  public static Flux<ByteBuffer> stream(
      TimelineView t, Lsn lsn, PageReconstructor pages, PageFinisher finisher) {
    return Flux.generate(
        () -> new Writer(t, lsn, pages, finisher),
        (w, sink) -> {
          ByteBuffer b = w.next();
          if (b == null) {
            sink.complete();
          } else {
            sink.next(b);
          }
          return w;
        },
        Writer::close);
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

  /** Produces the tar in steps; not thread-safe (one subscriber). */
  private static final class Writer {
    private final TimelineView t;
    private final Lsn lsn;
    private final PageReconstructor pages;
    private final PageFinisher finisher;
    private final ByteArrayOutputStream buf = new ByteArrayOutputStream(CHUNK + 64 * 1024);
    private final TarArchiveOutputStream tar;
    private final Deque<Step> steps = new ArrayDeque<>();
    private boolean finished;

    @FunctionalInterface
    private interface Step {
      /** Does some work; returns true when done (false: call again). */
      boolean run() throws IOException;
    }

    Writer(TimelineView t, Lsn lsn, PageReconstructor pages, PageFinisher finisher) {
      this.t = t;
      this.lsn = lsn;
      this.pages = pages;
      this.finisher = finisher;
      this.tar = new TarArchiveOutputStream(buf);
      tar.setLongFileMode(TarArchiveOutputStream.LONGFILE_POSIX);
      tar.setBigNumberMode(TarArchiveOutputStream.BIGNUMBER_POSIX);
      plan();
    }

    private void plan() {
      Checkpoint cp = checkpointAt(t, lsn);
      for (String d : DIRECTORIES) {
        steps.add(() -> dir(d));
      }
      steps.add(() -> file("PG_VERSION", "15\n".getBytes(StandardCharsets.US_ASCII)));
      steps.add(() -> file("global/pg_control", cp.controlFile()));
      steps.add(
          () ->
              file(
                  "global/pg_filenode.map",
                  Catalog.image(t, KeySpace.relmap(RelTag.GLOBAL_TABLESPACE, 0), lsn)
                      .orElseThrow()));
      for (KeySpace.Slru slru : KeySpace.Slru.values()) {
        for (int[] seg : Catalog.slruSegments(t, slru, lsn)) {
          steps.add(() -> slruSegment(slru, seg[0], seg[1]));
        }
      }
      for (int xid : Catalog.twoPhaseXids(t, lsn)) {
        steps.add(
            () ->
                file(
                    String.format(Locale.ROOT, "pg_twophase/%08X", xid),
                    Catalog.image(t, KeySpace.twoPhase(xid), lsn).orElseThrow()));
      }
      for (Catalog.Database db : Catalog.databases(t, lsn)) {
        if (db.spcOid() != RelTag.DEFAULT_TABLESPACE) {
          throw new IllegalStateException(
              "database "
                  + db.dbOid()
                  + " is in tablespace "
                  + db.spcOid()
                  + "; Zenith does not support tablespaces");
        }
        String d = "base/" + Integer.toUnsignedString(db.dbOid());
        steps.add(() -> dir(d));
        steps.add(
            () ->
                file(
                    d + "/PG_VERSION",
                    Catalog.image(t, KeySpace.dbDir(db.spcOid(), db.dbOid()), lsn).orElseThrow()));
        Catalog.image(t, KeySpace.relmap(db.spcOid(), db.dbOid()), lsn)
            .ifPresent(map -> steps.add(() -> file(d + "/pg_filenode.map", map)));
      }
      List<Catalog.RelFork> rels = Catalog.relations(t, KeySpace.ALL_RELATIONS, lsn);
      Set<RelTag> unlogged = new HashSet<>();
      for (Catalog.RelFork rf : rels) {
        if (rf.fork() == ForkNumber.INIT) {
          unlogged.add(rf.rel());
        }
      }
      for (Catalog.RelFork rf : rels) {
        if (unlogged.contains(rf.rel())) {
          // No recovery runs on the compute: reset unlogged relations here, as PostgreSQL would.
          if (rf.fork() == ForkNumber.INIT) {
            planRelation(rf.rel(), ForkNumber.INIT, ForkNumber.INIT, rf.blocks());
            planRelation(rf.rel(), ForkNumber.INIT, ForkNumber.MAIN, rf.blocks());
          }
          continue;
        }
        planRelation(rf.rel(), rf.fork(), rf.fork(), rf.blocks());
      }
      for (WalFile f : checkpointSegments(cp)) {
        steps.add(() -> file("pg_wal/" + f.name(), f.bytes()));
      }
    }

    /** Writes fork {@code source}'s pages as the files of fork {@code target}. */
    private void planRelation(RelTag rel, ForkNumber source, ForkNumber target, int blocks) {
      int segments =
          Math.max(
              1,
              (int)
                  ((Integer.toUnsignedLong(blocks) + PageLayout.RELSEG_SIZE - 1)
                      / PageLayout.RELSEG_SIZE));
      for (int segno = 0; segno < segments; segno++) {
        int first = segno * PageLayout.RELSEG_SIZE;
        int count = (int) Math.min(PageLayout.RELSEG_SIZE, Integer.toUnsignedLong(blocks) - first);
        String path = relationPath(rel, target, segno);
        int[] done = {-1};
        steps.add(
            () -> {
              if (done[0] < 0) {
                TarArchiveEntry e = new TarArchiveEntry(path);
                e.setSize((long) count * PageLayout.BLCKSZ);
                e.setMode(0600);
                tar.putArchiveEntry(e);
                done[0] = 0;
              }
              int until = Math.min(count, done[0] + PAGES_PER_STEP);
              for (int i = done[0]; i < until; i++) {
                int blk = first + i;
                byte[] page = pages.page(t, KeySpace.relBlock(rel, source, blk), lsn);
                finisher.finish(page, blk);
                tar.write(page);
              }
              done[0] = until;
              if (until == count) {
                tar.closeArchiveEntry();
                return true;
              }
              return false;
            });
      }
    }

    private boolean slruSegment(KeySpace.Slru slru, int segno, int pagesInSegment)
        throws IOException {
      TarArchiveEntry e = new TarArchiveEntry(slru.dir() + "/" + SlruLayout.segmentFileName(segno));
      e.setSize((long) pagesInSegment * PageLayout.BLCKSZ);
      e.setMode(0600);
      tar.putArchiveEntry(e);
      for (int blk = 0; blk < pagesInSegment; blk++) {
        tar.write(pages.page(t, KeySpace.slruBlock(slru, segno, blk), lsn));
      }
      tar.closeArchiveEntry();
      return true;
    }

    private boolean dir(String name) throws IOException {
      TarArchiveEntry e = new TarArchiveEntry(name + "/");
      e.setMode(040700);
      tar.putArchiveEntry(e);
      tar.closeArchiveEntry();
      return true;
    }

    private boolean file(String name, byte[] content) throws IOException {
      TarArchiveEntry e = new TarArchiveEntry(name);
      e.setSize(content.length);
      e.setMode(0600);
      tar.putArchiveEntry(e);
      tar.write(content);
      tar.closeArchiveEntry();
      return true;
    }

    /** The next chunk of the tar, or null at its end. */
    ByteBuffer next() {
      try {
        while (buf.size() < CHUNK && !steps.isEmpty()) {
          if (steps.peekFirst().run()) {
            steps.removeFirst();
          }
        }
        if (steps.isEmpty() && !finished) {
          tar.finish();
          finished = true;
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      if (buf.size() == 0) {
        return null;
      }
      ByteBuffer out = ByteBuffer.wrap(buf.toByteArray());
      buf.reset();
      return out;
    }

    void close() {
      try {
        tar.close();
      } catch (IOException e) {
        // closing an in-memory stream loses nothing
      }
    }
  }
}
