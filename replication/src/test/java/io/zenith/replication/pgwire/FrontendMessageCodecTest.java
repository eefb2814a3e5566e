package io.zenith.replication.pgwire;

import static io.zenith.replication.pgwire.BackendMessageCodecTest.hex;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderException;
import io.zenith.replication.pgwire.FrontendMessage.CancelRequest;
import io.zenith.replication.pgwire.FrontendMessage.CopyFail;
import io.zenith.replication.pgwire.FrontendMessage.GssEncRequest;
import io.zenith.replication.pgwire.FrontendMessage.PasswordMessage;
import io.zenith.replication.pgwire.FrontendMessage.Query;
import io.zenith.replication.pgwire.FrontendMessage.SslRequest;
import io.zenith.replication.pgwire.FrontendMessage.StartupMessage;
import io.zenith.replication.pgwire.FrontendMessage.Terminate;
import io.zenith.replication.testing.NettyLeakCheck;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** Frontend messages through {@link FrontendMessageEncoder} and {@link FrontendMessageDecoder}. */
@ExtendWith(NettyLeakCheck.class)
class FrontendMessageCodecTest {

  private static StartupMessage startup() {
    Map<String, String> p = new LinkedHashMap<>();
    p.put("user", "postgres");
    p.put("database", "db");
    p.put("application_name", "zenith_test");
    p.put("replication", "true");
    return new StartupMessage(PgWire.PROTOCOL_3_0, p);
  }

  @Test
  void aSessionRoundTrips() {
    List<FrontendMessage> session =
        List.of(
            SslRequest.INSTANCE,
            GssEncRequest.INSTANCE,
            startup(),
            new PasswordMessage("md5abc"),
            new Query("IDENTIFY_SYSTEM"),
            new CopyData(new byte[] {'r', 1, 2}),
            CopyDone.INSTANCE,
            new CopyFail("gave up"),
            Terminate.INSTANCE);
    EmbeddedChannel out = new EmbeddedChannel(new FrontendMessageEncoder());
    EmbeddedChannel in = new EmbeddedChannel(new FrontendMessageDecoder());
    for (FrontendMessage m : session) {
      out.writeOutbound(m);
      in.writeInbound((ByteBuf) out.readOutbound());
      assertThat(in.<Object>readInbound()).as("%s", m).isEqualTo(m);
    }
    assertThat(out.finishAndReleaseAll()).isFalse();
    assertThat(in.finishAndReleaseAll()).isFalse();
  }

  @Test
  void startupWireFormatIsPostgres() {
    ByteBuf b = Unpooled.buffer();
    FrontendMessageEncoder.encode(new StartupMessage(PgWire.PROTOCOL_3_0, Map.of("user", "u")), b);
    // length 4 + version 4 + "user\0u\0" 7 + terminator 1 = 16
    assertThat(ByteBufHex.of(b)).isEqualTo("00000010" + "00030000" + "7573657200" + "7500" + "00");
    b.release();
    ByteBuf ssl = Unpooled.buffer();
    FrontendMessageEncoder.encode(SslRequest.INSTANCE, ssl);
    assertThat(ByteBufHex.of(ssl)).isEqualTo("0000000804d2162f");
    ssl.release();
  }

  @Test
  void cancelRequestEndsTheStartupPhase() {
    EmbeddedChannel in = new EmbeddedChannel(new FrontendMessageDecoder());
    ByteBuf b = Unpooled.buffer();
    FrontendMessageEncoder.encode(new CancelRequest(7, 9), b);
    in.writeInbound(b);
    assertThat(in.<Object>readInbound()).isEqualTo(new CancelRequest(7, 9));
    in.finishAndReleaseAll();
  }

  @Test
  void garbageStartupPacketsAreRejected() {
    // PostgreSQL's limits: at least 8 bytes, at most 10000 + length word
    assertRejected(
        hex("ffffffff"), "invalid length of startup packet: 4294967295 bytes (must be 8 to 10004)");
    assertRejected(
        hex("00000004"), "invalid length of startup packet: 4 bytes (must be 8 to 10004)");
    assertRejected(
        "GET / HTTP/1.1\r\n".getBytes(StandardCharsets.US_ASCII),
        "invalid length of startup packet: 1195725856 bytes (must be 8 to 10004)");
    // startup packet whose parameter list is not terminated
    assertRejected(
        hex("0000000f 00030000 7573657200 7500"),
        "malformed startup packet message: string without terminating zero byte");
    // the same parameter twice
    assertRejected(
        hex("00000011 00030000 7500 7800 7500 7900 00"),
        "malformed startup packet message: parameter \"u\" given twice");
  }

  @Test
  void unknownAndMalformedMessagesAfterStartupAreRejected() {
    ByteBuf start = Unpooled.buffer();
    FrontendMessageEncoder.encode(startup(), start);
    byte[] startup = new byte[start.readableBytes()];
    start.readBytes(startup);
    start.release();
    // Parse ('P') of the extended query protocol
    assertRejectedAfter(startup, hex("50 00000008 00000000"), "unknown frontend message type 'P'");
    // a Query without its terminating zero
    assertRejectedAfter(
        startup,
        hex("51 00000008 73656c65"),
        "malformed Query ('Q') message: string without terminating zero byte");
    // a Query longer than the configured maximum
    assertRejectedAfter(
        startup,
        hex("51 01000001"),
        "message type 'Q' of 16777217 bytes exceeds the limit of 16777216 bytes");
    // Terminate with a body
    assertRejectedAfter(
        startup,
        hex("58 00000005 00"),
        "malformed Terminate ('X') message: 1 unexpected bytes at the end");
  }

  private static void assertRejected(byte[] input, String message) {
    assertRejectedAfter(new byte[0], input, message);
  }

  private static void assertRejectedAfter(byte[] prefix, byte[] input, String message) {
    EmbeddedChannel in = new EmbeddedChannel(new FrontendMessageDecoder());
    if (prefix.length > 0) {
      in.writeInbound(Unpooled.wrappedBuffer(prefix));
      assertThat(in.<Object>readInbound()).isInstanceOf(StartupMessage.class);
    }
    assertThatThrownBy(() -> in.writeInbound(Unpooled.wrappedBuffer(input)))
        .isInstanceOf(DecoderException.class)
        .cause()
        .isInstanceOf(PgWireException.class)
        .hasMessage(message);
    in.finishAndReleaseAll();
  }

  /** Hex of a buffer's readable bytes (without consuming them). */
  static final class ByteBufHex {
    static String of(ByteBuf b) {
      byte[] bytes = new byte[b.readableBytes()];
      b.getBytes(b.readerIndex(), bytes);
      return java.util.HexFormat.of().formatHex(bytes);
    }
  }
}
