package io.zenith.replication.pgwire;

import static io.zenith.replication.pgwire.BackendMessageCodecTest.hex;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.zenith.replication.pgwire.ReplicationMessage.HotStandbyFeedback;
import io.zenith.replication.pgwire.ReplicationMessage.PrimaryKeepalive;
import io.zenith.replication.pgwire.ReplicationMessage.StandbyStatusUpdate;
import io.zenith.replication.pgwire.ReplicationMessage.XLogData;
import io.zenith.replication.testing.NettyLeakCheck;
import io.zenith.wal.Lsn;
import java.time.Instant;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(NettyLeakCheck.class)
class ReplicationMessageTest {

  @Test
  void xlogDataSharesTheArrayAfterItsHeader() {
    byte[] wire = hex("77 0000000001000000 0000000001000010 0000000000000001 deadbeef");
    XLogData x = (XLogData) ReplicationMessage.parseServerMessage(wire);
    assertThat(x.dataStart()).isEqualTo(Lsn.parse("0/1000000"));
    assertThat(x.walEnd()).isEqualTo(Lsn.parse("0/1000010"));
    assertThat(x.sendTimeMicros()).isEqualTo(1);
    assertThat(x.array()).isSameAs(wire);
    assertThat(x.offset()).isEqualTo(25);
    assertThat(x.length()).isEqualTo(4);
    assertThat(x.data().getInt()).isEqualTo(0xdeadbeef);
    assertThat(x.toCopyData().data()).isEqualTo(wire);
  }

  @Test
  void keepaliveAndStatusUpdateWireFormats() {
    PrimaryKeepalive k =
        (PrimaryKeepalive)
            ReplicationMessage.parseServerMessage(hex("6b 0000000002000000 0000000000000002 01"));
    assertThat(k).isEqualTo(new PrimaryKeepalive(Lsn.parse("0/2000000"), 2, true));
    assertThat(k.toCopyData().data()).isEqualTo(hex("6b 0000000002000000 0000000000000002 01"));

    StandbyStatusUpdate r =
        StandbyStatusUpdate.of(
            Lsn.parse("1/10"),
            Lsn.parse("1/8"),
            Lsn.parse("0/0"),
            Instant.parse("2000-01-01T00:00:01Z"));
    assertThat(HexFormat.of().formatHex(r.toCopyData().data()))
        .isEqualTo(
            "72"
                + "0000000100000010"
                + "0000000100000008"
                + "0000000000000000"
                + "00000000000f4240"
                + "00");
    assertThat(ReplicationMessage.parseStatusUpdate(r.toCopyData().data())).isEqualTo(r);
  }

  @Test
  void malformedStreamingMessagesAreProtocolErrors() {
    assertThatThrownBy(() -> ReplicationMessage.parseServerMessage(hex("77 00")))
        .isInstanceOf(PgWireException.class)
        .hasMessage("XLogData message of 2 bytes is shorter than its 25-byte header");
    assertThatThrownBy(() -> ReplicationMessage.parseServerMessage(hex("6b 00")))
        .hasMessage("primary keepalive message of 2 bytes, expected 18");
    assertThatThrownBy(() -> ReplicationMessage.parseServerMessage(hex("71")))
        .hasMessage("unknown streaming replication message type 0x71 in CopyData");
    assertThatThrownBy(() -> ReplicationMessage.parseServerMessage(new byte[0]))
        .hasMessage("empty CopyData message during streaming replication");
  }

  @Test
  void standbyMessagesAsTheServerReadsThem() {
    byte[] h = hex("68 0000000000000007 fffffffe 00000001 000002bc 00000000");
    HotStandbyFeedback f = (HotStandbyFeedback) ReplicationMessage.parseStandbyMessage(h);
    assertThat(f).isEqualTo(new HotStandbyFeedback(7, -2, 1, 700, 0));
    assertThat(f.toCopyData().data()).isEqualTo(h);
    assertThat(f.toString()).contains("xmin=4294967294");
    StandbyStatusUpdate r =
        new StandbyStatusUpdate(Lsn.parse("0/30"), Lsn.parse("0/20"), Lsn.INVALID, 5, true);
    assertThat(ReplicationMessage.parseStandbyMessage(r.toCopyData().data())).isEqualTo(r);

    assertThatThrownBy(() -> ReplicationMessage.parseStandbyMessage(hex("68 00")))
        .isInstanceOf(PgWireException.class)
        .hasMessage("hot standby feedback message of 2 bytes, expected 25");
    assertThatThrownBy(() -> ReplicationMessage.parseStandbyMessage(hex("72 00")))
        .hasMessage("not a standby status update: 2 bytes (expected 34), type 0x72");
    assertThatThrownBy(() -> ReplicationMessage.parseStandbyMessage(hex("77 00")))
        .hasMessage("unknown standby message type 0x77 in CopyData");
    assertThatThrownBy(() -> ReplicationMessage.parseStandbyMessage(new byte[0]))
        .hasMessage("empty CopyData message from the standby");
  }

  @Test
  void xlogDataHeadersBeforeABufferMakeTheMessageAClientReads() {
    ByteBuf wire = Unpooled.buffer();
    try {
      BackendMessageEncoder.xLogDataHeader(
          wire, Lsn.parse("0/1000000"), Lsn.parse("0/1000010"), 1, 4);
      assertThat(wire.readableBytes()).isEqualTo(BackendMessageEncoder.XLOG_DATA_FRAME_HEADER_SIZE);
      wire.writeInt(0xdeadbeef);
      EmbeddedChannel in = new EmbeddedChannel(new BackendMessageDecoder());
      in.writeInbound(wire.retain());
      CopyData d = in.readInbound();
      assertThat(d.data())
          .isEqualTo(hex("77 0000000001000000 0000000001000010 0000000000000001 deadbeef"));
      assertThat(in.finish()).isFalse();
    } finally {
      wire.release();
    }
  }

  @Test
  void pgTimestampsCountMicrosecondsFrom2000() {
    assertThat(PgWire.toPgMicros(Instant.parse("2000-01-01T00:00:00.000001Z"))).isEqualTo(1);
    assertThat(PgWire.fromPgMicros(86_400_000_000L))
        .isEqualTo(Instant.parse("2000-01-02T00:00:00Z"));
  }
}
