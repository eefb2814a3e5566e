package io.zenith.ingest.wal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.RecordHeader;
import io.zenith.wal.RelTag;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalRecord;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class RecordDecoderTest {

  /** Builds a record body byte by byte, little-endian, the way XLogRecordAssemble lays it out. */
  static final class Body {
    final ByteArrayOutputStream headers = new ByteArrayOutputStream();
    final ByteArrayOutputStream payload = new ByteArrayOutputStream();

    Body u8(int v) {
      headers.write(v);
      return this;
    }

    Body u16(int v) {
      headers.write(v);
      headers.write(v >>> 8);
      return this;
    }

    Body u32(int v) {
      u16(v);
      u16(v >>> 16);
      return this;
    }

    Body payload(byte[] b) {
      payload.writeBytes(b);
      return this;
    }

    WalRecord record(int rmid, int info, int xid) {
      byte[] h = headers.toByteArray();
      byte[] p = payload.toByteArray();
      int total = 24 + h.length + p.length;
      ByteBuffer b = ByteBuffer.allocate(total).order(ByteOrder.LITTLE_ENDIAN);
      b.putInt(total)
          .putInt(xid)
          .putLong(0x1000000L)
          .put((byte) info)
          .put((byte) rmid)
          .putShort((short) 0)
          .putInt(0);
      b.put(h).put(p);
      byte[] bytes = b.array();
      return new WalRecord(
          Lsn.of(0x2000028L),
          Lsn.of(0x2000028L + ((total + 7) & ~7)),
          RecordHeader.read(bytes, 0),
          bytes);
    }
  }

  private static byte[] bytes(int n, int seed) {
    byte[] b = new byte[n];
    for (int i = 0; i < n; i++) {
      b[i] = (byte) (seed + i * 7);
    }
    return b;
  }

  @Test
  void decodesBlocksDataImagesOriginXidAndMainData() {
    byte[] img = bytes(8192 - 100, 1);
    byte[] data0 = bytes(10, 2);
    byte[] data2 = bytes(3, 3);
    byte[] main = bytes(300, 4);
    Body body = new Body();
    // block 0: image with a hole (uncompressed: hole length = BLCKSZ - bimg_len), data, full rel
    body.u8(0).u8(0x10 | 0x20 | 0).u16(data0.length).u16(img.length).u16(200).u8(0x01 | 0x02);
    body.u32(1663).u32(5).u32(16384).u32(7);
    // block 2 (id 1 unused): same rel, vm fork, will-init, data
    body.u8(2).u8(0x80 | 0x40 | 0x20 | 2).u16(data2.length).u32(0xFFFFFFFE);
    body.u8(253).u16(42); // origin
    body.u8(252).u32(900); // top-level xid
    body.u8(254).u32(main.length); // long main data
    body.payload(img).payload(data0).payload(data2).payload(main);
    DecodedRecord r = RecordDecoder.decode(body.record(10, 0x80, 901));

    assertThat(r.blocks()).extracting(BlockRef::id).containsExactly(0, 2);
    BlockRef b0 = r.block(0);
    assertThat(b0.rel()).isEqualTo(new RelTag(1663, 5, 16384));
    assertThat(b0.fork()).isEqualTo(ForkNumber.MAIN);
    assertThat(b0.blockNumber()).isEqualTo(7);
    assertThat(b0.appliesImage()).isTrue();
    assertThat(b0.image().holeOffset()).isEqualTo(200);
    assertThat(b0.image().holeLength()).isEqualTo(100);
    assertThat(b0.image().compression()).isEqualTo(BlockImage.Compression.NONE);
    assertThat(toArray(b0.data())).isEqualTo(data0);
    BlockRef b2 = r.block(2);
    assertThat(b2.rel()).isEqualTo(b0.rel());
    assertThat(b2.fork()).isEqualTo(ForkNumber.VISIBILITY_MAP);
    assertThat(b2.willInit()).isTrue();
    assertThat(b2.blockNumberUnsigned()).isEqualTo(0xFFFFFFFEL);
    assertThat(toArray(b2.data())).isEqualTo(data2);
    assertThat(r.block(1)).isNull();
    assertThat(r.origin()).isEqualTo(42);
    assertThat(r.toplevelXid()).isEqualTo(900);
    assertThat(toArray(r.mainData())).isEqualTo(main);
    assertThat(r.imageBytes()).isEqualTo(img.length);
    assertThat(r.typeName()).isEqualTo("INSERT+INIT");

    byte[] page = FullPageImages.restore(r, b0);
    assertThat(Arrays.copyOfRange(page, 0, 200)).isEqualTo(Arrays.copyOfRange(img, 0, 200));
    assertThat(Arrays.copyOfRange(page, 200, 300)).containsOnly(0);
    assertThat(Arrays.copyOfRange(page, 300, 8192))
        .isEqualTo(Arrays.copyOfRange(img, 200, img.length));
  }

  @Test
  void decodesARecordSharingALargerArray() {
    byte[] data = bytes(10, 2);
    byte[] main = bytes(7, 4);
    Body body = new Body();
    body.u8(0).u8(0x20).u16(data.length).u32(1663).u32(5).u32(16384).u32(3);
    body.u8(255).u8(main.length).payload(data).payload(main);
    WalRecord alone = body.record(10, 0, 1);
    byte[] shared = new byte[alone.totalLength() + 300];
    System.arraycopy(alone.array(), 0, shared, 123, alone.totalLength());
    WalRecord inPlace = new WalRecord(alone.lsn(), alone.end(), alone.header(), shared, 123);
    DecodedRecord r = RecordDecoder.decode(inPlace);
    assertThat(toArray(r.block(0).data())).isEqualTo(data);
    assertThat(toArray(r.mainData())).isEqualTo(main);
    assertThat(r.block(0).blockNumber()).isEqualTo(3);
  }

  @Test
  void decodesShortMainDataOnly() {
    DecodedRecord r =
        RecordDecoder.decode(new Body().u8(255).u8(4).payload(bytes(4, 9)).record(1, 0, 5));
    assertThat(r.blocks()).isEmpty();
    assertThat(r.mainDataLength()).isEqualTo(4);
    assertThat(r.typeName()).isEqualTo("COMMIT");
  }

  @Test
  void rejectsOutOfOrderBlockIds() {
    Body body = new Body();
    body.u8(1).u8(0).u16(0).u32(1).u32(2).u32(3).u32(0);
    body.u8(0).u8(0x80).u16(0).u32(0);
    assertBad(body, "out-of-order block_id");
  }

  @Test
  void rejectsSameRelWithoutPreviousRel() {
    assertBad(new Body().u8(0).u8(0x80).u16(0).u32(0), "BKPBLOCK_SAME_REL set but no previous rel");
  }

  @Test
  void rejectsDataFlagWithoutData() {
    assertBad(
        new Body().u8(0).u8(0x20).u16(0).u32(1).u32(2).u32(3).u32(0), "BKPBLOCK_HAS_DATA set");
    assertBad(
        new Body().u8(0).u8(0).u16(5).u32(1).u32(2).u32(3).u32(0).payload(bytes(5, 0)),
        "BKPBLOCK_HAS_DATA not set");
  }

  @Test
  void rejectsInconsistentImageHeaders() {
    // hole flag with zero hole offset
    assertBad(
        new Body()
            .u8(0)
            .u8(0x10)
            .u16(0)
            .u16(8000)
            .u16(0)
            .u8(0x01)
            .u32(1)
            .u32(2)
            .u32(3)
            .u32(0)
            .payload(bytes(8000, 0)),
        "BKPIMAGE_HAS_HOLE set");
    // no hole, not compressed, short image
    assertBad(
        new Body()
            .u8(0)
            .u8(0x10)
            .u16(0)
            .u16(100)
            .u16(0)
            .u8(0x02)
            .u32(1)
            .u32(2)
            .u32(3)
            .u32(0)
            .payload(bytes(100, 0)),
        "BKPIMAGE_HAS_HOLE not set");
    // compressed but full size
    assertBad(
        new Body()
            .u8(0)
            .u8(0x10)
            .u16(0)
            .u16(8192)
            .u16(0)
            .u8(0x08)
            .u32(1)
            .u32(2)
            .u32(3)
            .u32(0)
            .payload(bytes(8192, 0)),
        "BKPIMAGE_COMPRESSED set");
  }

  @Test
  void rejectsInvalidBlockIdAndForkAndLengths() {
    assertBad(new Body().u8(40), "invalid block_id 40");
    assertBad(new Body().u8(0).u8(7).u16(0).u32(1).u32(2).u32(3).u32(0), "invalid fork number 7");
    assertBad(new Body().u8(255).u8(10).payload(bytes(4, 0)), "invalid length");
    assertBad(new Body().u8(0).u8(0).u16(0).u32(1), "invalid length");
  }

  @Test
  void corruptCompressedImageIsAnErrorNotAGarbagePage() {
    byte[] junk = bytes(500, 17);
    for (int method : new int[] {0x04, 0x08, 0x10}) {
      Body body = new Body();
      body.u8(0)
          .u8(0x10)
          .u16(0)
          .u16(junk.length)
          .u16(0)
          .u8(0x02 | method)
          .u32(1)
          .u32(2)
          .u32(3)
          .u32(0)
          .payload(junk);
      DecodedRecord r = RecordDecoder.decode(body.record(0, 0xB0, 0));
      assertThatThrownBy(() -> FullPageImages.restore(r, r.block(0)))
          .isInstanceOfSatisfying(
              WalFormatException.class,
              e -> {
                assertThat(e.kind()).isEqualTo(WalFormatException.Kind.BAD_RECORD_CONTENT);
                assertThat(e.getMessage()).contains("could not decompress").contains("0/2000028");
              });
    }
  }

  private static void assertBad(Body body, String message) {
    WalRecord rec = body.record(10, 0, 1);
    assertThatThrownBy(() -> RecordDecoder.decode(rec))
        .isInstanceOfSatisfying(
            WalFormatException.class,
            e -> {
              assertThat(e.kind()).isEqualTo(WalFormatException.Kind.BAD_RECORD_CONTENT);
              assertThat(e.getMessage()).contains(message).contains("0/2000028");
            });
  }

  private static byte[] toArray(ByteBuffer b) {
    byte[] out = new byte[b.remaining()];
    b.get(out);
    return out;
  }
}
