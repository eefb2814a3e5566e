package io.zenith.page.stream;

import io.zenith.wal.ForkNumber;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * An answer of the pagestream protocol ({@code docs/formats/pagestream.md}): a tag byte (the
 * request's tag with the high bit set, or {@code 0xFF} for an error), the request's id, then the
 * body; big-endian. One message per answer, except {@link Relations}, which may span several (each
 * says whether more follow). Immutable, but page arrays are shared, not copied.
 */
public sealed interface PagestreamResponse {
  int PAGE_SIZE = 8192;
  byte ERROR = (byte) 0xFF;

  /** Relations listed per message: 9 bytes each, so a message stays within 256 KiB. */
  int RELATIONS_PER_MESSAGE = 16_384;

  /** The id of the request this answers. */
  long id();

  record Exists(long id, boolean exists) implements PagestreamResponse {}

  record Nblocks(long id, int blocks) implements PagestreamResponse {}

  record Page(long id, byte[] page) implements PagestreamResponse {
    public Page {
      checkPage(page);
    }
  }

  record Pages(long id, List<byte[]> pages) implements PagestreamResponse {
    public Pages {
      pages = List.copyOf(pages);
      pages.forEach(PagestreamResponse::checkPage);
    }
  }

  record DbSize(long id, long bytes) implements PagestreamResponse {}

  /** One relation fork of a database and its size in blocks. */
  record Relation(int relNumber, ForkNumber fork, int blocks) {
    public Relation {
      Objects.requireNonNull(fork);
    }
  }

  record Relations(long id, List<Relation> relations) implements PagestreamResponse {
    public Relations {
      relations = List.copyOf(relations);
    }
  }

  /** The segment's pages, concatenated (at most 32 pages). */
  record SlruSegment(long id, byte[] data) implements PagestreamResponse {
    public SlruSegment {
      if (data.length % PAGE_SIZE != 0 || data.length > 32 * PAGE_SIZE) {
        throw new IllegalArgumentException("an SLRU segment of " + data.length + " bytes");
      }
    }
  }

  /**
   * The request failed; the stream goes on.
   *
   * @param sqlState why, as PostgreSQL's SQLSTATE (five characters)
   */
  record Error(long id, String sqlState, String message) implements PagestreamResponse {
    public Error {
      if (sqlState.length() != 5) {
        throw new IllegalArgumentException("SQLSTATE has 5 characters: " + sqlState);
      }
      Objects.requireNonNull(message);
    }
  }

  private static void checkPage(byte[] page) {
    if (page.length != PAGE_SIZE) {
      throw new IllegalArgumentException("a page has " + PAGE_SIZE + " bytes, not " + page.length);
    }
  }

  /** The answer's tag for a request's tag. */
  private static byte tagFor(byte requestTag) {
    return (byte) (requestTag | 0x80);
  }

  /**
   * The messages of an answer: one, or for {@link Relations} one per {@value
   * #RELATIONS_PER_MESSAGE}.
   */
  static List<byte[]> encode(PagestreamResponse r) {
    return switch (r) {
      case Exists e ->
          List.of(
              header(PagestreamRequest.EXISTS, e.id(), 1).put((byte) (e.exists() ? 1 : 0)).array());
      case Nblocks n ->
          List.of(header(PagestreamRequest.NBLOCKS, n.id(), 4).putInt(n.blocks()).array());
      case Page p ->
          List.of(header(PagestreamRequest.GET_PAGE, p.id(), PAGE_SIZE).put(p.page()).array());
      case Pages p -> {
        ByteBuffer b =
            header(PagestreamRequest.GET_PAGES, p.id(), 2 + p.pages().size() * PAGE_SIZE);
        b.putShort((short) p.pages().size());
        p.pages().forEach(b::put);
        yield List.of(b.array());
      }
      case DbSize d ->
          List.of(header(PagestreamRequest.DB_SIZE, d.id(), 8).putLong(d.bytes()).array());
      case Relations l -> {
        List<byte[]> out = new ArrayList<>();
        List<Relation> all = l.relations();
        int from = 0;
        do {
          int n = Math.min(RELATIONS_PER_MESSAGE, all.size() - from);
          boolean more = from + n < all.size();
          ByteBuffer b = header(PagestreamRequest.LIST_RELATIONS, l.id(), 1 + 4 + 9 * n);
          b.put((byte) (more ? 1 : 0)).putInt(n);
          for (Relation rel : all.subList(from, from + n)) {
            b.putInt(rel.relNumber()).put((byte) rel.fork().ordinal()).putInt(rel.blocks());
          }
          out.add(b.array());
          from += n;
        } while (from < all.size());
        yield out;
      }
      case SlruSegment s ->
          List.of(
              header(PagestreamRequest.SLRU_SEGMENT, s.id(), 4 + s.data().length)
                  .putInt(s.data().length / PAGE_SIZE)
                  .put(s.data())
                  .array());
      case Error e -> {
        byte[] msg = e.message().getBytes(StandardCharsets.UTF_8);
        int len = Math.min(msg.length, 4000);
        ByteBuffer b = ByteBuffer.allocate(1 + 8 + 5 + 2 + len);
        b.put(ERROR).putLong(e.id()).put(e.sqlState().getBytes(StandardCharsets.US_ASCII));
        b.putShort((short) len).put(msg, 0, len);
        yield List.of(b.array());
      }
    };
  }

  private static ByteBuffer header(byte requestTag, long id, int body) {
    return ByteBuffer.allocate(1 + 8 + body).put(tagFor(requestTag)).putLong(id);
  }

  /**
   * Parses one message; a {@link Relations} message that says more follow is returned with {@code
   * more} set, and the caller joins the parts.
   */
  static Decoded decode(byte[] message) throws PagestreamException {
    ByteBuffer b = ByteBuffer.wrap(message);
    try {
      byte tag = b.get();
      long id = b.getLong();
      Decoded d =
          switch (tag) {
            case (byte) 0x81 -> whole(new Exists(id, b.get() != 0));
            case (byte) 0x82 -> whole(new Nblocks(id, b.getInt()));
            case (byte) 0x83 -> whole(new Page(id, bytes(b, PAGE_SIZE)));
            case (byte) 0x84 -> {
              int n = Short.toUnsignedInt(b.getShort());
              List<byte[]> pages = new ArrayList<>(n);
              for (int i = 0; i < n; i++) {
                pages.add(bytes(b, PAGE_SIZE));
              }
              yield whole(new Pages(id, pages));
            }
            case (byte) 0x85 -> whole(new DbSize(id, b.getLong()));
            case (byte) 0x86 -> {
              boolean more = b.get() != 0;
              int n = b.getInt();
              if (n < 0 || n > RELATIONS_PER_MESSAGE) {
                throw new PagestreamException(null, "a relations answer lists " + n + " relations");
              }
              List<Relation> rels = new ArrayList<>(n);
              for (int i = 0; i < n; i++) {
                int rel = b.getInt();
                int fork = b.get();
                ForkNumber f = ForkNumber.ofNumber(fork);
                if (f == null) {
                  throw new PagestreamException(null, "unknown fork number " + fork);
                }
                rels.add(new Relation(rel, f, b.getInt()));
              }
              yield new Decoded(new Relations(id, rels), more);
            }
            case (byte) 0x87 -> {
              int n = b.getInt();
              if (n < 0 || n > 32) {
                throw new PagestreamException(null, "an SLRU segment of " + n + " pages");
              }
              yield whole(new SlruSegment(id, bytes(b, n * PAGE_SIZE)));
            }
            case ERROR -> {
              String state = new String(bytes(b, 5), StandardCharsets.US_ASCII);
              int len = Short.toUnsignedInt(b.getShort());
              yield whole(new Error(id, state, new String(bytes(b, len), StandardCharsets.UTF_8)));
            }
            default ->
                throw new PagestreamException(
                    null, String.format("unknown answer tag 0x%02x", tag & 0xFF));
          };
      if (b.hasRemaining()) {
        throw new PagestreamException(
            null, "answer " + d.response() + " has " + b.remaining() + " bytes too many");
      }
      return d;
    } catch (BufferUnderflowException e) {
      throw new PagestreamException(null, "truncated answer of " + message.length + " bytes");
    }
  }

  /** A decoded message; {@code more}: a relations answer continues in the next message. */
  record Decoded(PagestreamResponse response, boolean more) {}

  private static Decoded whole(PagestreamResponse r) {
    return new Decoded(r, false);
  }

  private static byte[] bytes(ByteBuffer b, int n) {
    byte[] out = new byte[n];
    b.get(out);
    return out;
  }
}
