package io.zenith.page.stream;

import io.zenith.ingest.keys.Catalog;
import io.zenith.ingest.keys.KeySpace;
import io.zenith.ingest.pg.PgControl;
import io.zenith.layer.TimelineView;
import io.zenith.page.PageChecksum;
import io.zenith.page.PageReconstructor;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;

/**
 * Answers pagestream requests of one timeline at a given LSN, from the layer store and the page
 * reconstructor. Relation pages get their checksum when the cluster has data checksums, as in a
 * basebackup, so a compute can read them as its own files. An answer for something that does not
 * exist is an {@link PagestreamResponse.Error} with PostgreSQL's SQLSTATE; store failures ({@code
 * LayerStoreException}: an LSN below the GC cutoff, a corrupt file) are thrown for the caller to
 * map.
 *
 * <p>Blocking (index reads, WAL redo): call on a thread that may block. Thread-safe.
 */
public final class PagestreamReader {
  /** {@code undefined_table}: a relation fork that does not exist. */
  static final String UNDEFINED_TABLE = "42P01";

  /** {@code invalid_catalog_name}: a database that does not exist. */
  static final String INVALID_CATALOG_NAME = "3D000";

  /** {@code undefined_file}: an SLRU segment that does not exist. */
  static final String UNDEFINED_FILE = "58P01";

  private final TimelineView timeline;
  private final PageReconstructor pages;
  private volatile Boolean checksums;

  public PagestreamReader(TimelineView timeline, PageReconstructor pages) {
    this.timeline = timeline;
    this.pages = pages;
  }

  /** The answer to {@code r}, read at {@code at}. */
  public PagestreamResponse answer(PagestreamRequest r, Lsn at) {
    TimelineView t = timeline;
    return switch (r) {
      case PagestreamRequest.Exists e ->
          new PagestreamResponse.Exists(
              e.id(), Catalog.relSize(t, e.rel(), e.fork(), at).isPresent());
      case PagestreamRequest.Nblocks n -> {
        OptionalInt size = Catalog.relSize(t, n.rel(), n.fork(), at);
        yield size.isPresent()
            ? new PagestreamResponse.Nblocks(n.id(), size.getAsInt())
            : noRelation(n.id(), n.rel(), n.fork().pgName(), at);
      }
      case PagestreamRequest.GetPage g ->
          new PagestreamResponse.Page(g.id(), relPage(g.rel(), g.fork(), g.block(), at));
      case PagestreamRequest.GetPages g -> {
        List<byte[]> out = new ArrayList<>(g.count());
        for (int i = 0; i < g.count(); i++) {
          out.add(relPage(g.rel(), g.fork(), g.block() + i, at));
        }
        yield new PagestreamResponse.Pages(g.id(), out);
      }
      case PagestreamRequest.DbSize d -> {
        if (!databaseExists(d.spcOid(), d.dbOid(), at)) {
          yield noDatabase(d.id(), d.spcOid(), d.dbOid(), at);
        }
        long bytes = 0;
        for (Catalog.RelFork f : Catalog.relationsOf(t, d.spcOid(), d.dbOid(), at)) {
          bytes += Integer.toUnsignedLong(f.blocks()) * PagestreamResponse.PAGE_SIZE;
        }
        yield new PagestreamResponse.DbSize(d.id(), bytes);
      }
      case PagestreamRequest.ListRelations l -> {
        if (!databaseExists(l.spcOid(), l.dbOid(), at)) {
          yield noDatabase(l.id(), l.spcOid(), l.dbOid(), at);
        }
        List<PagestreamResponse.Relation> out = new ArrayList<>();
        for (Catalog.RelFork f : Catalog.relationsOf(t, l.spcOid(), l.dbOid(), at)) {
          out.add(new PagestreamResponse.Relation(f.rel().relNumber(), f.fork(), f.blocks()));
        }
        yield new PagestreamResponse.Relations(l.id(), out);
      }
      case PagestreamRequest.SlruSegment s -> {
        OptionalInt size = Catalog.slruSegmentSize(t, s.slru(), s.segno(), at);
        if (size.isEmpty()) {
          yield new PagestreamResponse.Error(
              s.id(),
              UNDEFINED_FILE,
              "SLRU segment "
                  + s.slru().dir()
                  + "/"
                  + String.format("%04X", s.segno())
                  + " does not exist at "
                  + at);
        }
        int n = size.getAsInt();
        byte[] data = new byte[n * PagestreamResponse.PAGE_SIZE];
        for (int blk = 0; blk < n; blk++) {
          byte[] page = pages.page(t, KeySpace.slruBlock(s.slru(), s.segno(), blk), at);
          System.arraycopy(page, 0, data, blk * page.length, page.length);
        }
        yield new PagestreamResponse.SlruSegment(s.id(), data);
      }
    };
  }

  private byte[] relPage(RelTag rel, io.zenith.wal.ForkNumber fork, int block, Lsn at) {
    byte[] page = pages.getPage(timeline, KeySpace.relBlock(rel, fork, block), at);
    if (checksums(at)) {
      PageChecksum.set(page, block);
    }
    return page;
  }

  /** Whether the cluster has data checksums: fixed at initdb, so read once. */
  private boolean checksums(Lsn at) {
    Boolean c = checksums;
    if (c == null) {
      c =
          Catalog.image(timeline, KeySpace.CONTROL_FILE, at)
              .map(b -> PgControl.parse(b).dataChecksumVersion() != 0)
              .orElse(false);
      checksums = c;
    }
    return c;
  }

  /** Shared catalogs ({@code global/}) have no database directory of their own to check. */
  private boolean databaseExists(int spc, int db, Lsn at) {
    return spc == RelTag.GLOBAL_TABLESPACE
        || timeline.newest(KeySpace.dbDir(spc, db), at).isPresent();
  }

  private static PagestreamResponse noRelation(long id, RelTag rel, String fork, Lsn at) {
    return new PagestreamResponse.Error(
        id, UNDEFINED_TABLE, "relation " + rel + " fork " + fork + " does not exist at " + at);
  }

  private static PagestreamResponse noDatabase(long id, int spc, int db, Lsn at) {
    return new PagestreamResponse.Error(
        id,
        INVALID_CATALOG_NAME,
        "database "
            + Integer.toUnsignedString(spc)
            + "/"
            + Integer.toUnsignedString(db)
            + " does not exist at "
            + at);
  }
}
