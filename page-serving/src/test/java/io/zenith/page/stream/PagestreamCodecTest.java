package io.zenith.page.stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.ingest.keys.KeySpace;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The byte layouts of docs/formats/pagestream.md: round trips, sizes and malformed input. */
class PagestreamCodecTest {
  private static final RelTag REL = new RelTag(1663, 5, 16384);
  private static final Lsn AT = Lsn.parse("0/16B3748");
  private static final Lsn NMS = Lsn.parse("0/16B0000");

  private static List<PagestreamRequest> requests() {
    return List.of(
        new PagestreamRequest.Exists(1, AT, NMS, REL, ForkNumber.MAIN),
        new PagestreamRequest.Nblocks(2, AT, NMS, REL, ForkNumber.VISIBILITY_MAP),
        new PagestreamRequest.GetPage(3, AT, NMS, REL, ForkNumber.MAIN, -2),
        new PagestreamRequest.GetPages(
            4, PagestreamRequest.LATEST, NMS, REL, ForkNumber.INIT, 7, 32),
        new PagestreamRequest.DbSize(5, AT, NMS, 1663, 5),
        new PagestreamRequest.ListRelations(6, AT, Lsn.INVALID, 1664, 0),
        new PagestreamRequest.SlruSegment(7, AT, NMS, KeySpace.Slru.MULTIXACT_MEMBERS, 0x1234));
  }

  @Test
  void requestsRoundTripWithTheDocumentedSizes() throws Exception {
    List<Integer> sizes = new ArrayList<>();
    for (PagestreamRequest r : requests()) {
      byte[] b = PagestreamRequest.encode(r);
      sizes.add(b.length);
      assertThat(PagestreamRequest.decode(b)).isEqualTo(r);
    }
    assertThat(sizes).containsExactly(38, 38, 42, 44, 33, 33, 30);
    byte[] get = PagestreamRequest.encode(requests().get(2));
    // tag, id, request LSN, not-modified-since, big-endian
    assertThat(Arrays.copyOf(get, 9)).containsExactly(0x03, 0, 0, 0, 0, 0, 0, 0, 3);
    assertThat(Arrays.copyOfRange(get, 9, 17)).containsExactly(0, 0, 0, 0, 0x01, 0x6B, 0x37, 0x48);
  }

  @Test
  void malformedRequestsAreRefusedWithTheReason() {
    byte[] good = PagestreamRequest.encode(requests().get(0));
    byte[] badTag = good.clone();
    badTag[0] = 0x5A;
    assertThatThrownBy(() -> PagestreamRequest.decode(badTag))
        .isInstanceOf(PagestreamException.class)
        .hasMessageContaining("unknown request tag 0x5a");
    assertThatThrownBy(() -> PagestreamRequest.decode(Arrays.copyOf(good, good.length - 1)))
        .hasMessageContaining("13-byte body, got 12");
    assertThatThrownBy(() -> PagestreamRequest.decode(new byte[3]))
        .hasMessageContaining("at least 25 bytes");
    byte[] badFork = good.clone();
    badFork[good.length - 1] = 9;
    assertThatThrownBy(() -> PagestreamRequest.decode(badFork))
        .hasMessageContaining("fork number 9");
    byte[] batch = PagestreamRequest.encode(requests().get(3));
    batch[batch.length - 1] = 33;
    assertThatThrownBy(() -> PagestreamRequest.decode(batch)).hasMessageContaining("1 to 32");
    byte[] later =
        PagestreamRequest.encode(new PagestreamRequest.Exists(1, NMS, AT, REL, ForkNumber.MAIN));
    assertThatThrownBy(() -> PagestreamRequest.decode(later))
        .hasMessageContaining("above the request LSN");
    byte[] slru = PagestreamRequest.encode(requests().get(6));
    slru[PagestreamRequest.HEADER_SIZE] = 7;
    assertThatThrownBy(() -> PagestreamRequest.decode(slru)).hasMessageContaining("SLRU kind 7");
  }

  @Test
  void answersRoundTripAndLongListingsSpanMessages() throws Exception {
    byte[] page = new byte[8192];
    page[100] = 42;
    List<PagestreamResponse> answers =
        List.of(
            new PagestreamResponse.Exists(1, true),
            new PagestreamResponse.Nblocks(2, -1),
            new PagestreamResponse.DbSize(5, 1L << 40),
            new PagestreamResponse.Error(9, "42P01", "relation … does not exist"));
    for (PagestreamResponse a : answers) {
      List<byte[]> m = PagestreamResponse.encode(a);
      assertThat(m).hasSize(1);
      assertThat(PagestreamResponse.decode(m.get(0)).response()).isEqualTo(a);
    }
    var p = (PagestreamResponse.Page) decodeOne(new PagestreamResponse.Page(3, page));
    assertThat(p.page()).isEqualTo(page);
    var ps =
        (PagestreamResponse.Pages)
            decodeOne(new PagestreamResponse.Pages(4, List.of(page, new byte[8192])));
    assertThat(ps.pages()).hasSize(2);
    assertThat(ps.pages().get(0)).isEqualTo(page);
    byte[] segment = new byte[32 * 8192];
    List<byte[]> seg = PagestreamResponse.encode(new PagestreamResponse.SlruSegment(7, segment));
    assertThat(seg.get(0).length).isEqualTo(262_157);

    List<PagestreamResponse.Relation> many = new ArrayList<>();
    for (int i = 0; i < 40_000; i++) {
      many.add(new PagestreamResponse.Relation(i, ForkNumber.MAIN, i * 2));
    }
    List<byte[]> parts = PagestreamResponse.encode(new PagestreamResponse.Relations(6, many));
    assertThat(parts).hasSize(3);
    assertThat(parts).allSatisfy(b -> assertThat(b.length).isLessThanOrEqualTo(256 * 1024));
    List<PagestreamResponse.Relation> joined = new ArrayList<>();
    for (int i = 0; i < parts.size(); i++) {
      PagestreamResponse.Decoded d = PagestreamResponse.decode(parts.get(i));
      assertThat(d.more()).isEqualTo(i < parts.size() - 1);
      joined.addAll(((PagestreamResponse.Relations) d.response()).relations());
    }
    assertThat(joined).isEqualTo(many);
    List<byte[]> empty = PagestreamResponse.encode(new PagestreamResponse.Relations(8, List.of()));
    assertThat(empty).hasSize(1);
    assertThat(PagestreamResponse.decode(empty.get(0)).response())
        .isEqualTo(new PagestreamResponse.Relations(8, List.of()));
  }

  @Test
  void malformedAnswersAreRefused() {
    byte[] page = PagestreamResponse.encode(new PagestreamResponse.Page(3, new byte[8192])).get(0);
    assertThatThrownBy(() -> PagestreamResponse.decode(Arrays.copyOf(page, 100)))
        .isInstanceOf(PagestreamException.class)
        .hasMessageContaining("truncated");
    byte[] longer = Arrays.copyOf(page, page.length + 1);
    assertThatThrownBy(() -> PagestreamResponse.decode(longer)).hasMessageContaining("too many");
    byte[] tag = page.clone();
    tag[0] = 0x11;
    assertThatThrownBy(() -> PagestreamResponse.decode(tag))
        .hasMessageContaining("unknown answer tag");
  }

  private static PagestreamResponse decodeOne(PagestreamResponse r) throws Exception {
    List<byte[]> m = PagestreamResponse.encode(r);
    assertThat(m).hasSize(1);
    return PagestreamResponse.decode(m.get(0)).response();
  }
}
