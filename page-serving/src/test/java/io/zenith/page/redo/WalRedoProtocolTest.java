package io.zenith.page.redo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalRecord;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The byte layout of docs/formats/walredo-protocol.md, without a process. */
class WalRedoProtocolTest {
  private static final RelTag REL = new RelTag(1663, 5, 16384);

  private static RedoRequest request(byte[] base) {
    WalRecord a = TestRecords.fpiWithoutImage(REL, 7, Lsn.parse("0/1000028"));
    WalRecord b = TestRecords.fpiWithoutImage(REL, 7, Lsn.parse("0/1000058"));
    return new RedoRequest(REL, ForkNumber.VISIBILITY_MAP, 7, base, List.of(a, b));
  }

  @Test
  void aRequestIsLaidOutAsDocumented() throws Exception {
    byte[] base = new byte[8192];
    base[100] = 42;
    RedoRequest r = request(base);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    WalRedoProtocol.writeRequest(out, r);
    byte[] bytes = out.toByteArray();
    ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);

    assertThat(bytes).hasSize(1 + 4 + 24 + 8192 + 2 * (20 + 44));
    assertThat(b.get(0)).isEqualTo((byte) 'R');
    assertThat(b.getInt(1)).isEqualTo(bytes.length - 5).isEqualTo(WalRedoProtocol.bodySize(r));
    assertThat(b.getInt(5)).isEqualTo(1663);
    assertThat(b.getInt(9)).isEqualTo(5);
    assertThat(b.getInt(13)).isEqualTo(16384);
    assertThat(b.get(17)).isEqualTo((byte) 2); // vm
    assertThat(b.get(18)).isEqualTo((byte) 1); // base image present
    assertThat(b.getShort(19)).isZero();
    assertThat(b.getInt(21)).isEqualTo(7);
    assertThat(b.getInt(25)).isEqualTo(2);
    assertThat(Arrays.copyOfRange(bytes, 29, 29 + 8192)).isEqualTo(base);
    int rec = 29 + 8192;
    assertThat(b.getLong(rec)).isEqualTo(0x1000028L);
    assertThat(b.getLong(rec + 8)).isEqualTo(0x1000058L);
    assertThat(b.getInt(rec + 16)).isEqualTo(44);
    assertThat(Arrays.copyOfRange(bytes, rec + 20, rec + 64))
        .isEqualTo(r.records().getFirst().copyBytes());
    assertThat(b.getLong(rec + 64)).isEqualTo(0x1000058L);
  }

  @Test
  void withoutABaseImageTheFlagIsClearAndNoPageIsSent() throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    WalRedoProtocol.writeRequest(out, request(null));
    byte[] bytes = out.toByteArray();
    assertThat(bytes).hasSize(1 + 4 + 24 + 2 * (20 + 44));
    assertThat(bytes[18]).isZero();
  }

  private static byte[] handshake(int version, int flags) {
    ByteBuffer b = ByteBuffer.allocate(28).order(ByteOrder.LITTLE_ENDIAN);
    b.put(WalRedoProtocol.MAGIC);
    b.putShort((short) version).putShort((short) flags);
    b.putInt(150020).putInt(8192).putInt(0xD110).putInt(4242);
    return b.array();
  }

  @Test
  void theHandshakeIsFoundAfterTheBackendsOwnOutput() throws Exception {
    ByteArrayOutputStream s = new ByteArrayOutputStream();
    s.write(
        "\nPostgreSQL stand-alone backend 15.20\nbackend> \t 1: zenith_walredo_loop\n"
            .getBytes(StandardCharsets.US_ASCII));
    s.write(new byte[] {(byte) 0x89, 'Z', 'W', (byte) 0x89}); // a false start
    s.write(handshake(1, 3));
    WalRedoProtocol.Handshake h =
        WalRedoProtocol.readHandshake(new ByteArrayInputStream(s.toByteArray()), 4096);
    assertThat(h.version()).isEqualTo(1);
    assertThat(h.dataChecksums()).isTrue();
    assertThat(h.walLogHints()).isTrue();
    assertThat(h.pgVersionNum()).isEqualTo(150020);
    assertThat(h.blockSize()).isEqualTo(8192);
    assertThat(h.xlogPageMagic()).isEqualTo(0xD110);
    assertThat(h.pid()).isEqualTo(4242);
  }

  @Test
  void noHandshakeIsAnError() {
    assertThatThrownBy(
            () ->
                WalRedoProtocol.readHandshake(
                    new ByteArrayInputStream("FATAL: boom\n".getBytes(StandardCharsets.UTF_8)),
                    4096))
        .isInstanceOf(EOFException.class)
        .hasMessageContaining("FATAL: boom");
    assertThatThrownBy(
            () -> WalRedoProtocol.readHandshake(new ByteArrayInputStream(new byte[100]), 50))
        .isInstanceOf(WalRedoProtocol.ProtocolException.class)
        .hasMessageContaining("no handshake in the first 50 bytes");
  }

  @Test
  void repliesAreAPageOrAnError() throws Exception {
    byte[] page = new byte[8193];
    page[0] = 'P';
    page[8192] = 9;
    WalRedoProtocol.Reply r = WalRedoProtocol.readReply(new ByteArrayInputStream(page));
    assertThat(r).isInstanceOf(WalRedoProtocol.Reply.Page.class);
    assertThat(((WalRedoProtocol.Reply.Page) r).page()[8191]).isEqualTo((byte) 9);

    byte[] msg = "record 0 at 0/10: bad".getBytes(StandardCharsets.UTF_8);
    ByteBuffer e = ByteBuffer.allocate(6 + msg.length).order(ByteOrder.LITTLE_ENDIAN);
    e.put((byte) 'E').put((byte) 1).putInt(msg.length).put(msg);
    r = WalRedoProtocol.readReply(new ByteArrayInputStream(e.array()));
    assertThat(r).isEqualTo(new WalRedoProtocol.Reply.Error(1, "record 0 at 0/10: bad"));
  }

  @Test
  void malformedRepliesAreProtocolErrors() {
    assertThatThrownBy(() -> WalRedoProtocol.readReply(new ByteArrayInputStream(new byte[] {'Q'})))
        .isInstanceOf(WalRedoProtocol.ProtocolException.class)
        .hasMessageContaining("0x51");
    assertThatThrownBy(
            () ->
                WalRedoProtocol.readReply(
                    new ByteArrayInputStream(new byte[] {'E', 9, 0, 0, 0, 0})))
        .isInstanceOf(WalRedoProtocol.ProtocolException.class);
    assertThatThrownBy(
            () -> WalRedoProtocol.readReply(new ByteArrayInputStream(new byte[] {'P', 1, 2})))
        .isInstanceOf(EOFException.class);
    assertThatThrownBy(() -> WalRedoProtocol.readReply(new ByteArrayInputStream(new byte[0])))
        .isInstanceOf(EOFException.class);
  }

  @Test
  void requestsAreCheckedWhenMade() {
    WalRecord a = TestRecords.fpiWithoutImage(REL, 7, Lsn.parse("0/1000058"));
    WalRecord b = TestRecords.fpiWithoutImage(REL, 7, Lsn.parse("0/1000028"));
    assertThatThrownBy(() -> new RedoRequest(REL, ForkNumber.MAIN, 7, null, List.of(a, b)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("out of order");
    assertThatThrownBy(() -> new RedoRequest(REL, ForkNumber.MAIN, 7, new byte[10], List.of()))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> new RedoRequest(REL, ForkNumber.MAIN, -1, null, List.of()))
        .isInstanceOf(IllegalArgumentException.class);
    RedoRequest r = new RedoRequest(REL, ForkNumber.MAIN, 7, null, List.of(b, a));
    assertThat(r.describe())
        .isEqualTo(
            "rel 1663/5/16384 fork main blk 7 from a zero page, 2 records 0/1000028..0/1000088");
  }

  @Test
  void longRequestsSplitIntoPartsThatChainTheirPages() {
    RedoRequest r = request(new byte[8192]);
    List<RedoRequest> parts = WalRedoProcess.split(r, 100);
    assertThat(parts).hasSize(2);
    assertThat(parts.get(0).baseImage()).isSameAs(r.baseImage());
    assertThat(parts.get(1).baseImage()).isNull(); // filled in with the first part's result
    assertThat(parts.get(0).records()).containsExactly(r.records().get(0));
    assertThat(parts.get(1).records()).containsExactly(r.records().get(1));
    assertThat(WalRedoProcess.split(r, 1 << 20)).containsExactly(r);
  }
}
