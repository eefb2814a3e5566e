package io.zenith.replication.offload;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.zenith.wal.Lsn;
import io.zenith.wal.TenantId;
import io.zenith.wal.TimelineId;
import io.zenith.wal.remote.RemoteKey;
import io.zenith.wal.testing.SyntheticWal;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * The offloaded segment's object format ({@code docs/formats/wal-offload.md}): a round trip of a
 * WAL segment, and each kind of damage refused as CORRUPT with the key and what differs.
 */
class WalSegmentObjectTest {
  private static final int SEG = 1 << 20;
  private static final Lsn START = Lsn.of(3L * SEG);
  private static final RemoteKey KEY =
      RemoteWal.segmentKey(TenantId.generate(), TimelineId.generate(), 3, SEG);

  private static byte[] segment() {
    SyntheticWal w = new SyntheticWal(SEG, 42, 1, START);
    int i = 0;
    while (w.position().segmentNumber(SEG) < 4) {
      w.append(10, 0, 100 + i, 500 + (i * 37) % 3000);
      i++;
    }
    return Arrays.copyOf(w.bytes(), SEG);
  }

  @Test
  void roundTripsASegmentCompressed() {
    byte[] seg = segment();
    byte[] object = WalSegmentObject.encode(START, seg);
    assertThat(object.length).as("compressed").isLessThan(SEG / 2);
    assertThat(Arrays.equals(WalSegmentObject.decode(KEY, object, START, SEG), seg)).isTrue();
    assertThat(KEY.path()).endsWith("/wal/000000010000000000000003-lz4");
  }

  @Test
  void refusesEachKindOfDamageNamingTheKey() {
    byte[] good = WalSegmentObject.encode(START, segment());
    assertCorrupt(Arrays.copyOf(good, 20), "shorter than its header");
    byte[] magic = good.clone();
    magic[0] = 'X';
    assertCorrupt(magic, "has magic");
    byte[] header = good.clone();
    header[9] ^= 1; // inside the start LSN: only the header's checksum can tell
    assertCorrupt(header, "damaged header");
    assertCorrupt(Arrays.copyOf(good, good.length - 1), "truncated");
    byte[] data = good.clone();
    data[data.length - 3] ^= 0x10; // a literal byte near the end: decompresses, wrongly
    assertCorrupt(data, "CRC32C of the WAL bytes");
    assertThatThrownBy(() -> WalSegmentObject.decode(KEY, good, Lsn.of(4L * SEG), SEG))
        .isInstanceOf(RemoteWalException.class)
        .hasMessageContaining("expected " + SEG + " from 0/400000");
  }

  private static void assertCorrupt(byte[] object, String what) {
    assertThatThrownBy(() -> WalSegmentObject.decode(KEY, object, START, SEG))
        .isInstanceOfSatisfying(
            RemoteWalException.class,
            e -> assertThat(e.kind()).isEqualTo(RemoteWalException.Kind.CORRUPT))
        .hasMessageStartingWith("remote WAL segment " + KEY.path())
        .hasMessageContaining(what);
  }
}
