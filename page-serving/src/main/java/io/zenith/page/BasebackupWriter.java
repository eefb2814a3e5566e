package io.zenith.page;

import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.PageLayout;
import io.zenith.ingest.pg.SlruLayout;
import io.zenith.layer.Key;
import io.zenith.layer.TimelineView;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.IntFunction;
import java.util.function.Supplier;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The tar of a {@link Basebackup}: a plan of parts in tar order (directories, files, batches of
 * {@value Basebackup#PAGES_PER_STEP} pages of a relation or SLRU segment), read ahead in a bounded
 * window (pages in parallel on the reading scheduler), and assembled in order into chunks of about
 * 256 KiB.
 *
 * <p>Threads: the plan runs on the subscribing thread; each part is read on {@link
 * Basebackup.Reading#readers()}; the assembly runs on whichever thread drains the window (one at a
 * time, Reactor serializes it). Demand: at most {@code window} parts are read or held before the
 * consumer asks for them, whatever it requests; a chunk goes out per request. Errors from any part
 * fail the stream (parts read ahead are dropped; they hold heap arrays only). Stateless.
 */
final class BasebackupWriter {
  private BasebackupWriter() {}

  private static final int CHUNK = 256 * 1024;

  /** What one part of the tar puts there: an entry's header, some of its bytes, its end. */
  private record Piece(TarArchiveEntry begin, byte[] data, boolean end) {}

  /** A part of the tar, read when its turn in the window comes. */
  @FunctionalInterface
  private interface Part {
    Piece read();
  }

  static Flux<ByteBuffer> stream(
      TimelineView t,
      Lsn lsn,
      PageReconstructor pages,
      Basebackup.PageFinisher finisher,
      Basebackup.Reading reading,
      boolean relations) {
    return Flux.defer(
        () -> {
          List<Part> parts = plan(t, lsn, pages, finisher, relations);
          Assembler tar = new Assembler();
          return Flux.fromIterable(parts)
              .flatMapSequential(
                  p -> Mono.fromCallable(p::read).subscribeOn(reading.readers()),
                  reading.window(),
                  1)
              .concatMapIterable(tar::add, 1)
              .concatWith(Flux.defer(() -> Flux.fromIterable(tar.finish())));
        });
  }

  private static List<Part> plan(
      TimelineView t,
      Lsn lsn,
      PageReconstructor pages,
      Basebackup.PageFinisher finisher,
      boolean withRelations) {
    List<Part> parts = new ArrayList<>();
    Basebackup.Checkpoint cp = Basebackup.checkpointAt(t, lsn);
    for (String d : Basebackup.DIRECTORIES) {
      parts.add(dir(d));
    }
    parts.add(file("PG_VERSION", () -> "15\n".getBytes(StandardCharsets.US_ASCII)));
    parts.add(file("global/pg_control", cp::controlFile));
    parts.add(
        file(
            "global/pg_filenode.map",
            () ->
                Catalog.image(t, KeySpace.relmap(RelTag.GLOBAL_TABLESPACE, 0), lsn).orElseThrow()));
    for (KeySpace.Slru slru : KeySpace.Slru.values()) {
      for (int[] seg : Catalog.slruSegments(t, slru, lsn)) {
        int segno = seg[0];
        addPages(
            parts,
            slru.dir() + "/" + SlruLayout.segmentFileName(segno),
            0,
            seg[1],
            blk -> KeySpace.slruBlock(slru, segno, blk),
            t,
            lsn,
            pages,
            null);
      }
    }
    for (int xid : Catalog.twoPhaseXids(t, lsn)) {
      parts.add(
          file(
              String.format(Locale.ROOT, "pg_twophase/%08X", xid),
              () -> Catalog.image(t, KeySpace.twoPhase(xid), lsn).orElseThrow()));
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
      parts.add(dir(d));
      parts.add(
          file(
              d + "/PG_VERSION",
              () -> Catalog.image(t, KeySpace.dbDir(db.spcOid(), db.dbOid()), lsn).orElseThrow()));
      Catalog.image(t, KeySpace.relmap(db.spcOid(), db.dbOid()), lsn)
          .ifPresent(map -> parts.add(file(d + "/pg_filenode.map", () -> map)));
    }
    List<Catalog.RelFork> rels =
        withRelations ? Catalog.relations(t, KeySpace.ALL_RELATIONS, lsn) : List.of();
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
          relation(
              parts,
              rf.rel(),
              ForkNumber.INIT,
              ForkNumber.INIT,
              rf.blocks(),
              t,
              lsn,
              pages,
              finisher);
          relation(
              parts,
              rf.rel(),
              ForkNumber.INIT,
              ForkNumber.MAIN,
              rf.blocks(),
              t,
              lsn,
              pages,
              finisher);
        }
        continue;
      }
      relation(parts, rf.rel(), rf.fork(), rf.fork(), rf.blocks(), t, lsn, pages, finisher);
    }
    for (Basebackup.WalFile f : Basebackup.checkpointSegments(cp)) {
      parts.add(file("pg_wal/" + f.name(), f::bytes));
    }
    return parts;
  }

  /** Fork {@code source}'s pages as the files (1 GiB segments) of fork {@code target}. */
  private static void relation(
      List<Part> parts,
      RelTag rel,
      ForkNumber source,
      ForkNumber target,
      int blocks,
      TimelineView t,
      Lsn lsn,
      PageReconstructor pages,
      Basebackup.PageFinisher finisher) {
    int segments =
        Math.max(
            1,
            (int)
                ((Integer.toUnsignedLong(blocks) + PageLayout.RELSEG_SIZE - 1)
                    / PageLayout.RELSEG_SIZE));
    for (int segno = 0; segno < segments; segno++) {
      int first = segno * PageLayout.RELSEG_SIZE;
      int count = (int) Math.min(PageLayout.RELSEG_SIZE, Integer.toUnsignedLong(blocks) - first);
      addPages(
          parts,
          Basebackup.relationPath(rel, target, segno),
          first,
          count,
          blk -> KeySpace.relBlock(rel, source, blk),
          t,
          lsn,
          pages,
          finisher);
    }
  }

  /**
   * A file of {@code count} pages, blocks {@code first}.. of {@code key}, as parts of up to {@value
   * Basebackup#PAGES_PER_STEP} pages; {@code finisher} null: the pages are not finished (SLRU pages
   * carry no checksum).
   */
  private static void addPages(
      List<Part> parts,
      String path,
      int first,
      int count,
      IntFunction<Key> key,
      TimelineView t,
      Lsn lsn,
      PageReconstructor pages,
      Basebackup.PageFinisher finisher) {
    if (count == 0) {
      TarArchiveEntry e = entry(path, 0);
      parts.add(() -> new Piece(e, new byte[0], true));
      return;
    }
    for (int done = 0; done < count; done += Basebackup.PAGES_PER_STEP) {
      int n = Math.min(Basebackup.PAGES_PER_STEP, count - done);
      parts.add(
          new RelationPages(
              done == 0 ? path : null,
              (long) count * PageLayout.BLCKSZ,
              first + done,
              n,
              done + n == count,
              key,
              t,
              lsn,
              pages,
              finisher));
    }
  }

  /**
   * Pages {@code from}..{@code from + n} of a file; the first part of the file starts its entry.
   */
  private record RelationPages(
      String beginPath,
      long fileSize,
      int from,
      int n,
      boolean last,
      IntFunction<Key> key,
      TimelineView t,
      Lsn lsn,
      PageReconstructor pages,
      Basebackup.PageFinisher finisher)
      implements Part {

    @Override
    public Piece read() {
      byte[] out = new byte[n * PageLayout.BLCKSZ];
      for (int i = 0; i < n; i++) {
        int blk = from + i;
        byte[] page = pages.pageForScan(t, key.apply(blk), lsn);
        if (page.length != PageLayout.BLCKSZ) {
          throw new IllegalStateException(
              "page " + key.apply(blk) + " at " + lsn + " has " + page.length + " bytes");
        }
        if (finisher != null) {
          finisher.finish(page, blk);
        }
        System.arraycopy(page, 0, out, i * PageLayout.BLCKSZ, PageLayout.BLCKSZ);
      }
      return new Piece(beginPath == null ? null : entry(beginPath, fileSize), out, last);
    }
  }

  private static Part dir(String name) {
    return () -> {
      TarArchiveEntry e = new TarArchiveEntry(name + "/");
      e.setMode(040700);
      wholeSeconds(e);
      return new Piece(e, new byte[0], true);
    };
  }

  private static Part file(String name, Supplier<byte[]> content) {
    return () -> {
      byte[] b = content.get();
      return new Piece(entry(name, b.length), b, true);
    };
  }

  private static TarArchiveEntry entry(String name, long size) {
    TarArchiveEntry e = new TarArchiveEntry(name);
    e.setSize(size);
    e.setMode(0600);
    wholeSeconds(e);
    return e;
  }

  /**
   * An entry's time in whole seconds: with a fraction (a new entry's default) the POSIX big-number
   * mode writes a PAX header (1 KiB and a decimal time to parse) before every entry.
   */
  private static void wholeSeconds(TarArchiveEntry e) {
    e.setLastModifiedTime(FileTime.from(Instant.now().truncatedTo(ChronoUnit.SECONDS)));
  }

  /** Writes pieces into the tar and cuts it into chunks. Not thread-safe (one drain at a time). */
  private static final class Assembler {
    private final ByteArrayOutputStream buf = new ByteArrayOutputStream(CHUNK + 64 * 1024);
    private final TarArchiveOutputStream tar = new TarArchiveOutputStream(buf);

    Assembler() {
      tar.setLongFileMode(TarArchiveOutputStream.LONGFILE_POSIX);
      tar.setBigNumberMode(TarArchiveOutputStream.BIGNUMBER_POSIX);
    }

    List<ByteBuffer> add(Piece p) {
      try {
        if (p.begin() != null) {
          tar.putArchiveEntry(p.begin());
        }
        tar.write(p.data());
        if (p.end()) {
          tar.closeArchiveEntry();
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return buf.size() >= CHUNK ? List.of(take()) : List.of();
    }

    List<ByteBuffer> finish() {
      try {
        tar.finish();
        tar.close();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return buf.size() > 0 ? List.of(take()) : List.of();
    }

    private ByteBuffer take() {
      ByteBuffer out = ByteBuffer.wrap(buf.toByteArray());
      buf.reset();
      return out;
    }
  }
}
