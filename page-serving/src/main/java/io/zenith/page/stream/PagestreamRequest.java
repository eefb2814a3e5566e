package io.zenith.page.stream;

import io.zenith.ingest.keys.KeySpace;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * A request of the pagestream protocol ({@code docs/formats/pagestream.md}): a tag byte, the
 * client's request id, the LSN to read at and the not-modified-since LSN, then the body of its
 * kind; big-endian. Immutable.
 */
public sealed interface PagestreamRequest {
  /** {@code request_lsn} that means "the latest LSN the pageserver has". */
  Lsn LATEST = Lsn.MAX;

  /** Most pages one {@link GetPages} asks for: 32 × 8 KiB = 256 KiB, one CopyData message. */
  int MAX_BATCH = 32;

  /** Bytes before the body: tag, request id, request LSN, not-modified-since LSN. */
  int HEADER_SIZE = 1 + 8 + 8 + 8;

  byte EXISTS = 0x01;
  byte NBLOCKS = 0x02;
  byte GET_PAGE = 0x03;
  byte GET_PAGES = 0x04;
  byte DB_SIZE = 0x05;
  byte LIST_RELATIONS = 0x06;
  byte SLRU_SEGMENT = 0x07;

  /** The client's id for the request, echoed in the answer (answers come in request order). */
  long id();

  /**
   * The LSN to read at, or {@link #LATEST}. The server waits until it has ingested up to {@link
   * #notModifiedSince()}, then reads at this LSN or its last record LSN, whichever is lower.
   */
  Lsn lsn();

  /**
   * The client knows that what it asks for did not change between this LSN and {@link #lsn()}: the
   * server need only wait for this one. At most {@link #lsn()}.
   */
  Lsn notModifiedSince();

  /** Whether the relation fork exists. */
  record Exists(long id, Lsn lsn, Lsn notModifiedSince, RelTag rel, ForkNumber fork)
      implements PagestreamRequest {}

  /** The size of a relation fork in blocks; an error if it does not exist. */
  record Nblocks(long id, Lsn lsn, Lsn notModifiedSince, RelTag rel, ForkNumber fork)
      implements PagestreamRequest {}

  /** One page of a relation fork (a zero page where the fork has no version of the block). */
  record GetPage(long id, Lsn lsn, Lsn notModifiedSince, RelTag rel, ForkNumber fork, int block)
      implements PagestreamRequest {}

  /** {@code count} consecutive pages from {@code block}, 1 to {@value #MAX_BATCH}. */
  record GetPages(
      long id, Lsn lsn, Lsn notModifiedSince, RelTag rel, ForkNumber fork, int block, int count)
      implements PagestreamRequest {
    public GetPages {
      if (count < 1 || count > MAX_BATCH) {
        throw new IllegalArgumentException(
            "a batch has 1 to " + MAX_BATCH + " pages, not " + count);
      }
      if (Integer.toUnsignedLong(block) + count - 1 > 0xFFFF_FFFEL) {
        throw new IllegalArgumentException("blocks " + block + " + " + count + " out of range");
      }
    }
  }

  /** The size in bytes of a database's relations (all forks). An error if it does not exist. */
  record DbSize(long id, Lsn lsn, Lsn notModifiedSince, int spcOid, int dbOid)
      implements PagestreamRequest {}

  /** Every relation fork of a database with its size. An error if the database does not exist. */
  record ListRelations(long id, Lsn lsn, Lsn notModifiedSince, int spcOid, int dbOid)
      implements PagestreamRequest {}

  /** A whole SLRU segment file. An error if it does not exist. */
  record SlruSegment(long id, Lsn lsn, Lsn notModifiedSince, KeySpace.Slru slru, int segno)
      implements PagestreamRequest {
    public SlruSegment {
      Objects.requireNonNull(slru);
    }
  }

  /** The message's bytes (the payload of one CopyData). */
  static byte[] encode(PagestreamRequest r) {
    int body =
        switch (r) {
          case Exists e -> 13;
          case Nblocks n -> 13;
          case GetPage g -> 17;
          case GetPages g -> 19;
          case DbSize d -> 8;
          case ListRelations l -> 8;
          case SlruSegment s -> 5;
        };
    ByteBuffer b = ByteBuffer.allocate(HEADER_SIZE + body);
    byte tag =
        switch (r) {
          case Exists e -> EXISTS;
          case Nblocks n -> NBLOCKS;
          case GetPage g -> GET_PAGE;
          case GetPages g -> GET_PAGES;
          case DbSize d -> DB_SIZE;
          case ListRelations l -> LIST_RELATIONS;
          case SlruSegment s -> SLRU_SEGMENT;
        };
    b.put(tag).putLong(r.id()).putLong(r.lsn().value()).putLong(r.notModifiedSince().value());
    switch (r) {
      case Exists e -> putRel(b, e.rel(), e.fork());
      case Nblocks n -> putRel(b, n.rel(), n.fork());
      case GetPage g -> putRel(b, g.rel(), g.fork()).putInt(g.block());
      case GetPages g -> putRel(b, g.rel(), g.fork()).putInt(g.block()).putShort((short) g.count());
      case DbSize d -> b.putInt(d.spcOid()).putInt(d.dbOid());
      case ListRelations l -> b.putInt(l.spcOid()).putInt(l.dbOid());
      case SlruSegment s -> b.put((byte) s.slru().code()).putInt(s.segno());
    }
    return b.array();
  }

  private static ByteBuffer putRel(ByteBuffer b, RelTag rel, ForkNumber fork) {
    return b.putInt(rel.spcOid())
        .putInt(rel.dbOid())
        .putInt(rel.relNumber())
        .put((byte) fork.ordinal());
  }

  /**
   * Parses one message.
   *
   * @throws PagestreamException (no SQLSTATE) for an unknown tag, a message of the wrong length, an
   *     unknown fork or SLRU kind, a batch count out of range, or {@code notModifiedSince} above
   *     {@code lsn}
   */
  static PagestreamRequest decode(byte[] message) throws PagestreamException {
    if (message.length < HEADER_SIZE) {
      throw bad(
          "a request has at least " + HEADER_SIZE + " bytes, got " + message.length + " bytes");
    }
    ByteBuffer b = ByteBuffer.wrap(message);
    byte tag = b.get();
    long id = b.getLong();
    Lsn lsn = Lsn.of(b.getLong());
    Lsn nms = Lsn.of(b.getLong());
    int expected =
        switch (tag) {
          case EXISTS, NBLOCKS -> 13;
          case GET_PAGE -> 17;
          case GET_PAGES -> 19;
          case DB_SIZE, LIST_RELATIONS -> 8;
          case SLRU_SEGMENT -> 5;
          default -> throw bad(String.format("unknown request tag 0x%02x", tag & 0xFF));
        };
    if (b.remaining() != expected) {
      throw bad(
          String.format(
              "request 0x%02x has a %d-byte body, got %d bytes", tag, expected, b.remaining()));
    }
    if (Long.compareUnsigned(nms.value(), lsn.value()) > 0) {
      throw bad("not-modified-since LSN " + nms + " is above the request LSN " + lsn);
    }
    try {
      return switch (tag) {
        case EXISTS -> new Exists(id, lsn, nms, rel(b), fork(b));
        case NBLOCKS -> new Nblocks(id, lsn, nms, rel(b), fork(b));
        case GET_PAGE -> new GetPage(id, lsn, nms, rel(b), fork(b), b.getInt());
        case GET_PAGES ->
            new GetPages(
                id, lsn, nms, rel(b), fork(b), b.getInt(), Short.toUnsignedInt(b.getShort()));
        case DB_SIZE -> new DbSize(id, lsn, nms, b.getInt(), b.getInt());
        case LIST_RELATIONS -> new ListRelations(id, lsn, nms, b.getInt(), b.getInt());
        default -> new SlruSegment(id, lsn, nms, KeySpace.Slru.of(b.get()), b.getInt());
      };
    } catch (IllegalArgumentException | BufferUnderflowException e) {
      throw bad(e.getMessage());
    }
  }

  private static RelTag rel(ByteBuffer b) {
    return new RelTag(b.getInt(), b.getInt(), b.getInt());
  }

  private static ForkNumber fork(ByteBuffer b) {
    int n = b.get();
    ForkNumber f = ForkNumber.ofNumber(n);
    if (f == null) {
      throw new IllegalArgumentException("unknown fork number " + n);
    }
    return f;
  }

  private static PagestreamException bad(String message) {
    return new PagestreamException(null, message);
  }
}
