package io.zenith.replication.pgwire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderException;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationCleartextPassword;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationMd5Password;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationOk;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationOther;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationSasl;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationSaslContinue;
import io.zenith.replication.pgwire.BackendMessage.AuthenticationSaslFinal;
import io.zenith.replication.pgwire.BackendMessage.BackendKeyData;
import io.zenith.replication.pgwire.BackendMessage.CommandComplete;
import io.zenith.replication.pgwire.BackendMessage.CopyBothResponse;
import io.zenith.replication.pgwire.BackendMessage.CopyInResponse;
import io.zenith.replication.pgwire.BackendMessage.CopyOutResponse;
import io.zenith.replication.pgwire.BackendMessage.DataRow;
import io.zenith.replication.pgwire.BackendMessage.EmptyQueryResponse;
import io.zenith.replication.pgwire.BackendMessage.ErrorResponse;
import io.zenith.replication.pgwire.BackendMessage.Field;
import io.zenith.replication.pgwire.BackendMessage.NegotiateProtocolVersion;
import io.zenith.replication.pgwire.BackendMessage.NoticeResponse;
import io.zenith.replication.pgwire.BackendMessage.NotificationResponse;
import io.zenith.replication.pgwire.BackendMessage.ParameterStatus;
import io.zenith.replication.pgwire.BackendMessage.ReadyForQuery;
import io.zenith.replication.pgwire.BackendMessage.RowDescription;
import io.zenith.replication.testing.NettyLeakCheck;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** Backend messages through {@link BackendMessageEncoder} and {@link BackendMessageDecoder}. */
@ExtendWith(NettyLeakCheck.class)
class BackendMessageCodecTest {

  static List<BackendMessage> everyMessage() {
    Map<Character, String> all = new LinkedHashMap<>();
    for (char t : "SVCMDHPpqWstcdnFLR".toCharArray()) {
      all.put(t, "field " + t);
    }
    all.put('C', "42P01");
    return List.of(
        AuthenticationOk.INSTANCE,
        AuthenticationCleartextPassword.INSTANCE,
        new AuthenticationMd5Password(new byte[] {1, 2, 3, 4}),
        new AuthenticationSasl(List.of("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS")),
        new AuthenticationSaslContinue("r=abc".getBytes(StandardCharsets.US_ASCII)),
        new AuthenticationSaslFinal("v=xyz".getBytes(StandardCharsets.US_ASCII)),
        new AuthenticationOther(7, new byte[0]),
        new ParameterStatus("server_version", "15.4"),
        new BackendKeyData(4242, -17),
        new ReadyForQuery('I'),
        new ReadyForQuery('T'),
        new ReadyForQuery('E'),
        new RowDescription(
            List.of(
                Field.text("a"), new Field("bee", 16384, (short) 2, 23, (short) 4, -1, (short) 1))),
        new DataRow(Arrays.asList("1".getBytes(StandardCharsets.UTF_8), null, new byte[0])),
        new CommandComplete("SELECT 3"),
        EmptyQueryResponse.INSTANCE,
        new ErrorResponse(PgNotice.fromFields(all)),
        new NoticeResponse(PgNotice.of("WARNING", "01000", "ünïcode wärning")),
        new CopyInResponse(0, List.of(0, 0)),
        new CopyOutResponse(1, List.of(1)),
        new CopyBothResponse(0, List.of()),
        new CopyData(new byte[] {'w', 0, 1, 2}),
        CopyDone.INSTANCE,
        new NotificationResponse(99, "chan", "payload"),
        new NegotiateProtocolVersion(0, List.of("_pq_.foo")));
  }

  @Test
  void everyMessageRoundTrips() {
    EmbeddedChannel ch = new EmbeddedChannel(new BackendMessageEncoder());
    EmbeddedChannel in = new EmbeddedChannel(new BackendMessageDecoder());
    for (BackendMessage m : everyMessage()) {
      assertThat(ch.writeOutbound(m)).isTrue();
      ByteBuf wire = ch.readOutbound();
      in.writeInbound(wire);
      BackendMessage back = in.readInbound();
      assertThat(back).as("%s", m).isEqualTo(m);
    }
    assertThat(in.<Object>readInbound()).isNull();
    assertThat(ch.finishAndReleaseAll()).isFalse();
    assertThat(in.finishAndReleaseAll()).isFalse();
  }

  @Test
  void errorResponseKeepsEveryFieldAndIgnoresUnknownOnes() {
    ByteBuf b = Unpooled.buffer();
    b.writeByte('E').writeInt(0);
    for (String f :
        List.of(
            "SERROR",
            "VERROR",
            "C42P01",
            "Mrelation \"x\" does not exist",
            "Dsome detail",
            "Hsome hint",
            "P15",
            "p3",
            "qselect 1",
            "Wwhere",
            "spublic",
            "tx",
            "ccol",
            "dint4",
            "ncons",
            "Fparse_relation.c",
            "L1384",
            "RparserOpenTable",
            "Zfuture field")) {
      b.writeCharSequence(f, StandardCharsets.UTF_8);
      b.writeByte(0);
    }
    b.writeByte(0);
    b.setInt(1, b.writerIndex() - 1);
    EmbeddedChannel in = new EmbeddedChannel(new BackendMessageDecoder());
    in.writeInbound(b);
    ErrorResponse e = in.readInbound();
    PgNotice n = e.notice();
    assertThat(n.severity()).isEqualTo("ERROR");
    assertThat(n.severityNonLocalized()).isEqualTo("ERROR");
    assertThat(n.sqlState()).isEqualTo("42P01");
    assertThat(n.message()).isEqualTo("relation \"x\" does not exist");
    assertThat(n.detail()).isEqualTo("some detail");
    assertThat(n.hint()).isEqualTo("some hint");
    assertThat(n.position()).isEqualTo("15");
    assertThat(n.internalPosition()).isEqualTo("3");
    assertThat(n.internalQuery()).isEqualTo("select 1");
    assertThat(n.where()).isEqualTo("where");
    assertThat(n.schema()).isEqualTo("public");
    assertThat(n.table()).isEqualTo("x");
    assertThat(n.column()).isEqualTo("col");
    assertThat(n.dataType()).isEqualTo("int4");
    assertThat(n.constraint()).isEqualTo("cons");
    assertThat(n.file()).isEqualTo("parse_relation.c");
    assertThat(n.line()).isEqualTo("1384");
    assertThat(n.routine()).isEqualTo("parserOpenTable");
    assertThat(n.fields()).doesNotContainKey('Z').hasSize(18);
    assertThat(n.isError()).isTrue();
    assertThat(in.finishAndReleaseAll()).isFalse();
  }

  @Test
  void messagesSplitAtEveryByteAndConcatenatedDecodeTheSame() {
    ByteBuf all = Unpooled.buffer();
    for (BackendMessage m : everyMessage()) {
      BackendMessageEncoder.encode(m, all);
    }
    byte[] bytes = new byte[all.readableBytes()];
    all.readBytes(bytes);
    all.release();
    // one byte at a time
    EmbeddedChannel in = new EmbeddedChannel(new BackendMessageDecoder());
    for (byte x : bytes) {
      in.writeInbound(Unpooled.wrappedBuffer(new byte[] {x}));
    }
    assertThat(drain(in)).isEqualTo(everyMessage());
    // random splits
    Random rnd = new Random(7);
    for (int round = 0; round < 20; round++) {
      EmbeddedChannel r = new EmbeddedChannel(new BackendMessageDecoder());
      int pos = 0;
      while (pos < bytes.length) {
        int n = Math.min(bytes.length - pos, 1 + rnd.nextInt(40));
        r.writeInbound(Unpooled.wrappedBuffer(Arrays.copyOfRange(bytes, pos, pos + n)));
        pos += n;
      }
      assertThat(drain(r)).isEqualTo(everyMessage());
      assertThat(r.finishAndReleaseAll()).isFalse();
    }
    assertThat(in.finishAndReleaseAll()).isFalse();
  }

  private static List<Object> drain(EmbeddedChannel ch) {
    List<Object> out = new ArrayList<>();
    for (Object o = ch.readInbound(); o != null; o = ch.readInbound()) {
      out.add(o);
    }
    return out;
  }

  @Test
  void oversizedLengthIsRejectedBeforeTheBodyArrives() {
    EmbeddedChannel in = new EmbeddedChannel(new BackendMessageDecoder(64 * 1024));
    ByteBuf b = Unpooled.buffer().writeByte('d').writeInt(64 * 1024 + 1);
    assertThatThrownBy(() -> in.writeInbound(b))
        .isInstanceOf(DecoderException.class)
        .cause()
        .isInstanceOf(PgWireException.class)
        .hasMessage("message type 'd' of 65537 bytes exceeds the limit of 65536 bytes")
        .extracting(e -> ((PgWireException) e).kind())
        .isEqualTo(PgWireException.Kind.PROTOCOL);
    in.finishAndReleaseAll();
  }

  @Test
  void negativeAndHugeLengthsAndSmallMessagesWithBigLengthsAreRejected() {
    assertRejected(hex("64 ffffffff"), "message type 'd' has invalid length -1");
    assertRejected(hex("5a 00000003"), "message type 'Z' has invalid length 3");
    // a ReadyForQuery claiming 1 MiB: small message types have a 10000-byte limit
    assertRejected(
        hex("5a 00100000"), "message type 'Z' of 1048576 bytes exceeds the limit of 10000 bytes");
    // "HTTP/1.1 400" from a web server: 'H' (CopyOutResponse) with length "TTP/"
    assertRejected(
        "HTTP/1.1 400 Bad Request\r\n".getBytes(StandardCharsets.US_ASCII),
        "message type 'H' of 1414811695 bytes exceeds the limit of 16777216 bytes");
  }

  @Test
  void unknownTypesAndMalformedBodiesAreRejected() {
    assertRejected(hex("7a 00000004"), "unknown backend message type 'z'");
    assertRejected(hex("00 00000004"), "unknown backend message type 0x00");
    // ReadyForQuery with status 'X'
    assertRejected(
        hex("5a 00000005 58"),
        "malformed ReadyForQuery ('Z') message: transaction status 'X' is not I, T or E");
    // ReadyForQuery with a trailing byte
    assertRejected(
        hex("5a 00000006 49 00"),
        "malformed ReadyForQuery ('Z') message: 1 unexpected bytes at the end");
    // CommandComplete without the zero byte
    assertRejected(
        hex("43 00000008 53454c45"),
        "malformed CommandComplete ('C') message: string without terminating zero byte");
    // DataRow claiming 2 columns but holding one
    assertRejected(
        hex("44 0000000e 0002 00000004 61626364"),
        "malformed DataRow ('D') message: expected an int32 but only 0 bytes of the message are"
            + " left");
    // DataRow with a column length of -2
    assertRejected(
        hex("44 0000000a 0001 fffffffe"),
        "malformed DataRow ('D') message: column 0 has length -2");
    // RowDescription with a negative count
    assertRejected(
        hex("54 00000006 ffff"),
        "malformed RowDescription ('T') message: negative number of fields: -1");
    // MD5 request with a 3-byte salt
    assertRejected(
        hex("52 0000000b 00000005 010203"),
        "malformed Authentication ('R') message: expected 4 bytes but only 3 bytes of the message"
            + " are left");
  }

  @Test
  void afterAnErrorFurtherInputIsDropped() {
    EmbeddedChannel in = new EmbeddedChannel(new BackendMessageDecoder());
    assertThatThrownBy(() -> in.writeInbound(Unpooled.wrappedBuffer(hex("7a 00000004"))))
        .isInstanceOf(DecoderException.class);
    ByteBuf ok = Unpooled.buffer();
    BackendMessageEncoder.encode(ReadyForQuery.IDLE, ok);
    in.writeInbound(ok);
    assertThat(in.<Object>readInbound()).isNull();
    assertThat(in.finishAndReleaseAll()).isFalse();
  }

  private static void assertRejected(byte[] input, String message) {
    EmbeddedChannel in = new EmbeddedChannel(new BackendMessageDecoder());
    assertThatThrownBy(() -> in.writeInbound(Unpooled.wrappedBuffer(input)))
        .isInstanceOf(DecoderException.class)
        .cause()
        .isInstanceOf(PgWireException.class)
        .hasMessage(message);
    assertThat(in.<Object>readInbound()).isNull();
    in.finishAndReleaseAll();
  }

  static byte[] hex(String s) {
    return HexFormat.of().parseHex(s.replace(" ", ""));
  }

  @Test
  void aNoticeCarriesAPositionForPsqlToPointAt() {
    PgNotice n = PgNotice.error("42601", "syntax error").withPosition(3);
    assertThat(n.position()).isEqualTo("3");
    assertThat(n.fields()).containsEntry('P', "3");
    assertThatThrownBy(() -> n.withPosition(0)).isInstanceOf(IllegalArgumentException.class);
  }
}
